"""XAF 3.2: a small year of a sponsor's books, validated against the XSD, and every refusal by its code."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import date

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from settlement.config import REPO_ROOT
from settlement.reports.xaf import (
    ID_MAX,
    SCHEMA_PATH,
    XAF_NAMESPACE,
    XafAccount,
    XafError,
    XafHeader,
    XafJournal,
    XafLine,
    XafPeriod,
    XafTransaction,
    build_xaf,
    monthly_periods,
    validate_xaf,
    write_xaf,
    xaf_id,
)

SHARED_XSD = REPO_ROOT.parent / "shared" / "bank-files" / "xsd" / "XmlAuditfileFinancieel3.2.xsd"
NS = {"x": XAF_NAMESPACE}

IBAN = "NL91ABNA0417164300"
SUPPLIER = "payable:3f2a1b7c-9d4e-4a5b-8c6d-0123456789ab"  # 44 characters: too long for accID
VOUCHER = "voucher:V-2026-0001"
HEADER = XafHeader(
    fiscal_year="2026",
    start_date=date(2026, 1, 1),
    end_date=date(2026, 12, 31),
    company_name="Stichting Leergeld Zwolle",
    company_ident="41234567",
    software_version="0.1.0",
    date_created=date(2027, 1, 15),
)
ACCOUNTS = (
    XafAccount(code="funding:rijk", name="Rijksbijdrage kinderarmoede", kind="B"),
    XafAccount(code="fund:3", name="Fonds sport 2026", kind="B"),
    XafAccount(code=VOUCHER, name="Voucher V-2026-0001", kind="B"),
    XafAccount(code=SUPPLIER, name="Fietsenwinkel De Spaak", kind="B"),
    XafAccount(code=f"in_transit:{IBAN}", name="Onderweg", kind="B"),
    XafAccount(code=f"bank:{IBAN}", name="ABN AMRO betaalrekening", kind="B"),
)


def entry(nr: str, day: date, description: str, debit: str, credit: str, cents: int) -> XafTransaction:
    """One journal entry of one transfer: what the ledger posts for each event."""
    return XafTransaction(
        nr=nr,
        description=description,
        date=day,
        period=day.month,
        lines=(
            XafLine(
                nr=1, account_code=debit, description=description, amount_cents=cents, side="D", effective_date=day
            ),
            XafLine(
                nr=2, account_code=credit, description=description, amount_cents=cents, side="C", effective_date=day
            ),
        ),
    )


def the_year() -> list[XafJournal]:
    memorial = [
        entry("1", date(2026, 1, 5), "Budget granted to fund 3", "funding:rijk", "fund:3", 1_000_000),
        entry("3", date(2026, 2, 1), "Voucher issued", "fund:3", VOUCHER, 15_000),
        entry("4", date(2026, 3, 14), "Redemption at De Spaak", VOUCHER, SUPPLIER, 12_500),
        entry("5", date(2026, 3, 20), "Payout P2026032001", SUPPLIER, f"in_transit:{IBAN}", 12_500),
    ]
    bank = [
        entry("2", date(2026, 1, 20), "Received RF18FUND3", f"bank:{IBAN}", "funding:rijk", 1_000_000),
        entry("6", date(2026, 3, 23), "Booked on statement", f"in_transit:{IBAN}", f"bank:{IBAN}", 12_500),
    ]
    return [
        XafJournal(id="M", description="Memoriaal", kind="M", transactions=iter(memorial)),
        XafJournal(id="B", description="Bank", kind="B", transactions=iter(bank)),
    ]


OPENING = [(f"bank:{IBAN}", 50_000), ("fund:3", -50_000)]


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))


def texts(root: etree._Element, path: str) -> list[str]:
    return [e.text or "" for e in root.iterfind(path, NS)]


def cents(text: str) -> int:
    whole, frac = text.split(".")
    return int(whole) * 100 + int(frac)


def test_a_year_validates_against_the_shipped_and_the_shared_xsd() -> None:
    data = build_xaf(HEADER, ACCOUNTS, OPENING, the_year())
    validate_xaf(data)
    if not SHARED_XSD.exists():
        pytest.skip(f"{SHARED_XSD} absent (shared bank files are beside the repo in CI only)")
    schema = etree.XMLSchema(etree.parse(str(SHARED_XSD), parser=etree.XMLParser(resolve_entities=False)))
    assert schema.validate(parse(data)), str(schema.error_log)
    assert SHARED_XSD.read_bytes() == SCHEMA_PATH.read_bytes()  # the shipped copy is the published schema


def test_totals_are_the_sums_of_the_lines() -> None:
    root = parse(build_xaf(HEADER, ACCOUNTS, OPENING, the_year()))
    block = root.find("x:company/x:transactions", NS)
    assert block is not None
    debit = sum(cents(a) for a in texts(block, ".//x:trLine[x:amntTp='D']/x:amnt"))
    credit = sum(cents(a) for a in texts(block, ".//x:trLine[x:amntTp='C']/x:amnt"))
    assert debit == credit == 1_000_000 + 15_000 + 12_500 + 12_500 + 1_000_000 + 12_500
    assert texts(block, "x:linesCount") == ["12"]
    assert texts(block, "x:totalDebit") == texts(block, "x:totalCredit") == ["20525.00"]
    assert texts(block, "x:journal/x:jrnTp") == ["M", "B"]
    assert len(block.findall("x:journal/x:transaction", NS)) == 6

    ob = root.find("x:company/x:openingBalance", NS)
    assert ob is not None
    assert texts(ob, "x:opBalDate") == ["2026-01-01"]
    assert texts(ob, "x:linesCount") == ["2"]
    assert texts(ob, "x:totalDebit") == texts(ob, "x:totalCredit") == ["500.00"]
    assert texts(ob, "x:obLine/x:amntTp") == ["D", "C"]


def test_every_line_names_a_ledger_account_and_a_period() -> None:
    # The XSD's keyrefs cannot check this (see the module docstring), so the test does.
    root = parse(build_xaf(HEADER, ACCOUNTS, OPENING, the_year()))
    acc_ids = texts(root, "x:company/x:generalLedger/x:ledgerAccount/x:accID")
    assert len(set(acc_ids)) == len(ACCOUNTS)
    assert set(texts(root, ".//x:trLine/x:accID")) | set(texts(root, ".//x:obLine/x:accID")) <= set(acc_ids)
    periods = texts(root, "x:company/x:periods/x:period/x:periodNumber")
    assert periods == [str(n) for n in range(1, 13)]
    assert set(texts(root, ".//x:transaction/x:periodNumber")) <= set(periods)


def test_an_unbalanced_transaction_is_refused_by_name() -> None:
    day = date(2026, 4, 1)
    lopsided = XafTransaction(
        nr="77",
        description="typo",
        date=day,
        period=4,
        lines=(
            XafLine(nr=1, account_code="fund:3", description="", amount_cents=1000, side="D", effective_date=day),
            XafLine(nr=2, account_code=VOUCHER, description="", amount_cents=999, side="C", effective_date=day),
        ),
    )
    journals = [XafJournal(id="M", description="Memoriaal", kind="M", transactions=[lopsided])]
    out = io.BytesIO()
    with pytest.raises(XafError, match=r"transaction '77'.*10\.00 != credit 9\.99") as e:
        write_xaf(out, HEADER, ACCOUNTS, (), journals)
    assert e.value.code == "transaction_unbalanced"
    assert out.getvalue() == b""  # nothing is written before every transaction is checked


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"account_code": "fund:999"}, "unknown_account"),
        ({"amount_cents": 0}, "amount_must_be_positive"),
        ({"amount_cents": -5}, "amount_must_be_positive"),
        ({"side": "X"}, "side_invalid"),
    ],
)
def test_bad_lines_are_refused(change: dict[str, object], code: str) -> None:
    day = date(2026, 4, 1)
    first = {"nr": 1, "account_code": "fund:3", "description": "", "amount_cents": 1000, "side": "D"}
    first.update(change)
    tx = XafTransaction(
        nr="9",
        description="",
        date=day,
        period=4,
        lines=(
            XafLine(**first, effective_date=day),  # type: ignore[arg-type]
            XafLine(nr=2, account_code=VOUCHER, description="", amount_cents=1000, side="C", effective_date=day),
        ),
    )
    with pytest.raises(XafError) as e:
        build_xaf(HEADER, ACCOUNTS, (), [XafJournal(id="M", description="", kind="M", transactions=[tx])])
    assert e.value.code == code


def test_other_refusals() -> None:
    tx = entry("1", date(2026, 5, 1), "x", "fund:3", VOUCHER, 100)
    with pytest.raises(XafError) as e:
        build_xaf(HEADER, ACCOUNTS, [("fund:3", -1)], [])
    assert e.value.code == "opening_unbalanced"
    with pytest.raises(XafError) as e:
        build_xaf(HEADER, ACCOUNTS, [("nope", 0)], [])
    assert e.value.code == "unknown_account"
    with pytest.raises(XafError) as e:
        build_xaf(HEADER, ACCOUNTS, (), [XafJournal(id="M", description="", kind="Q", transactions=[tx])])
    assert e.value.code == "journal_type_invalid"
    with pytest.raises(XafError) as e:
        build_xaf(HEADER, [*ACCOUNTS, ACCOUNTS[0]], (), [])
    assert e.value.code == "duplicate_account"
    short_year = [XafPeriod(number=1, description="Q1", start_date=date(2026, 1, 1), end_date=date(2026, 3, 31))]
    with pytest.raises(XafError) as e:
        build_xaf(HEADER, ACCOUNTS, (), [XafJournal(id="M", description="", kind="M", transactions=[tx])], short_year)
    assert e.value.code == "unknown_period"


def test_long_and_odd_account_codes_map_to_valid_stable_ids() -> None:
    odd = [
        SUPPLIER,
        "payable:Café Zoë & Zn.",
        "fund:a b",
        "funding:" + "x" * 150,
        "funding:" + "x" * 149 + "y",  # same cleaned head, different code
        "bank:NL91 ABNA 0417 1643 00",
        "fund:~tilde",
    ]
    ids = [xaf_id(code) for code in odd]
    assert ids == [xaf_id(code) for code in odd]  # deterministic
    assert len(set(ids)) == len(odd)
    for acc_id in ids:
        assert len(acc_id) <= ID_MAX
        assert re.fullmatch(r"[A-Za-z0-9:._/-]*~[A-Z2-7]{16}", acc_id), acc_id
    assert ids[0] == "payable:3f2a1b7c-9~XISR447WX6RKA3QJ"  # stable across runs and machines
    for plain in ("fund:3", f"bank:{IBAN}", "payable:17", "x" * ID_MAX):
        assert xaf_id(plain) == plain

    accounts = [XafAccount(code=code, name=f"n{i}", kind="P") for i, code in enumerate(odd)]
    day = date(2026, 6, 30)
    tx = entry("1", day, "odd", odd[1], odd[3], 4200)
    data = build_xaf(HEADER, accounts, (), [XafJournal(id="M", description="", kind="M", transactions=[tx])])
    root = parse(data)
    assert texts(root, ".//x:ledgerAccount/x:accID") == ids
    # our code survives in accDesc, so the auditor can read the way back
    assert texts(root, ".//x:ledgerAccount/x:accDesc")[1] == "n1 [payable:Café Zoë & Zn.]"
    assert texts(root, ".//x:trLine/x:accID") == [ids[1], ids[3]]


def test_dutch_and_odd_characters_survive_escaped() -> None:
    words = 'Café Zoë & Söhne <b>"€ 12,50"</b> ĳ'
    day = date(2026, 7, 1)
    tx = XafTransaction(
        nr="8",
        description=words + "\x00\x1b\r\n  end",  # controls XML cannot carry are dropped, whitespace collapsed
        date=day,
        period=7,
        lines=(
            XafLine(nr=1, account_code="fund:3", description=words, amount_cents=1250, side="D", effective_date=day),
            XafLine(
                nr=2,
                account_code=VOUCHER,
                description="x",
                amount_cents=1250,
                side="C",
                effective_date=day,
                doc_ref="<&>",
            ),
        ),
    )
    header = msgspec_replace(HEADER, company_name="Jeugdfonds Sport & Cultuur <Zwolle> – Zoë")
    data = build_xaf(header, ACCOUNTS, (), [XafJournal(id="M", description="Memoriaal é", kind="M", transactions=[tx])])
    assert b"&amp;" in data and b"&lt;b&gt;" in data
    root = parse(data)
    assert texts(root, ".//x:transaction/x:desc") == [words + " end"]
    assert texts(root, ".//x:trLine/x:desc")[0] == words
    assert texts(root, ".//x:trLine/x:docRef") == ["8", "<&>"]
    assert texts(root, "x:company/x:companyName") == ["Jeugdfonds Sport & Cultuur <Zwolle> – Zoë"]


def msgspec_replace(header: XafHeader, **changes: str) -> XafHeader:
    return msgspec.structs.replace(header, **changes)


def test_text_is_clipped_to_the_schema_lengths() -> None:
    long_name = "Ä" * 5000
    header = msgspec_replace(HEADER, company_name=long_name, software_version="v" * 40)
    accounts = [XafAccount(code="fund:3", name=long_name, kind="B")]
    root = parse(build_xaf(header, accounts, (), []))
    assert len(texts(root, "x:company/x:companyName")[0]) == 999
    assert len(texts(root, "x:header/x:softwareVersion")[0]) == 20
    desc = texts(root, ".//x:ledgerAccount/x:accDesc")[0]
    assert len(desc) == 999 and desc.endswith(" [fund:3]")


def test_default_periods_are_the_months_of_the_fiscal_year() -> None:
    year = monthly_periods(date(2026, 1, 1), date(2026, 12, 31))
    assert [p.number for p in year] == list(range(1, 13))
    assert (year[1].start_date, year[1].end_date) == (date(2026, 2, 1), date(2026, 2, 28))
    assert (year[11].start_date, year[11].end_date) == (date(2026, 12, 1), date(2026, 12, 31))
    short = monthly_periods(date(2026, 9, 15), date(2026, 12, 31))
    assert [(p.start_date, p.end_date) for p in short] == [
        (date(2026, 9, 15), date(2026, 9, 30)),
        (date(2026, 10, 1), date(2026, 10, 31)),
        (date(2026, 11, 1), date(2026, 11, 30)),
        (date(2026, 12, 1), date(2026, 12, 31)),
    ]


def test_tampered_bytes_fail_validation() -> None:
    data = build_xaf(HEADER, ACCOUNTS, OPENING, the_year())
    with pytest.raises(XafError) as e:
        validate_xaf(data.replace(b"<amnt>125.00</amnt>", b"<amnt>125.001</amnt>", 1))
    assert e.value.code == "schema_invalid"
    assert "fractional digits" in e.value.errors[0]
    with pytest.raises(XafError):
        validate_xaf(data.replace(b"<curCode>EUR</curCode>", b"<curCode>EUX</curCode>"))


def redemptions(n: int) -> Iterator[XafTransaction]:
    """A co-funded redemption a day: voucher debited, supplier and a second fund share the credit."""
    for i in range(n):
        day = date(2026, 1 + i % 12, 1 + i % 28)
        yield XafTransaction(
            nr=str(100_000 + i),
            description=f"Redemption {i}",
            date=day,
            period=day.month,
            lines=(
                XafLine(
                    nr=1, account_code=VOUCHER, description="", amount_cents=1250 + i, side="D", effective_date=day
                ),
                XafLine(
                    nr=2, account_code=SUPPLIER, description="", amount_cents=1000 + i, side="C", effective_date=day
                ),
                XafLine(nr=3, account_code="fund:3", description="", amount_cents=250, side="C", effective_date=day),
            ),
        )


@pytest.mark.slow
def test_fifty_thousand_transactions_from_a_generator() -> None:
    n = 50_000
    journals = [XafJournal(id="M", description="Memoriaal", kind="M", transactions=redemptions(n))]
    data = build_xaf(HEADER, ACCOUNTS, (), journals)  # validates, streaming
    expected = sum(1250 + i for i in range(n))
    head = data[: data.index(b"<journal>")].decode()
    assert f"<linesCount>{3 * n}</linesCount>" in head
    assert f"<totalDebit>{expected // 100}.{expected % 100:02d}</totalDebit>" in head
    assert f"<totalCredit>{expected // 100}.{expected % 100:02d}</totalCredit>" in head
    assert data.count(b"<transaction>") == n


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=4),
        min_size=0,
        max_size=20,
    )
)
def test_any_balanced_journal_validates_and_totals_add_up(shares: list[list[int]]) -> None:
    txs = []
    for i, parts in enumerate(shares):
        day = date(2026, 1 + i % 12, 1)
        credits = [
            XafLine(nr=k + 2, account_code=SUPPLIER, description="", amount_cents=c, side="C", effective_date=day)
            for k, c in enumerate(parts)
        ]
        debit = XafLine(
            nr=1, account_code=VOUCHER, description="", amount_cents=sum(parts), side="D", effective_date=day
        )
        txs.append(XafTransaction(nr=str(i), description="", date=day, period=day.month, lines=(debit, *credits)))
    root = parse(build_xaf(HEADER, ACCOUNTS, (), [XafJournal(id="M", description="", kind="M", transactions=txs)]))
    total = sum(sum(p) for p in shares)
    assert cents(texts(root, "x:company/x:transactions/x:totalDebit")[0]) == total
    assert cents(texts(root, "x:company/x:transactions/x:totalCredit")[0]) == total
    assert texts(root, "x:company/x:transactions/x:linesCount") == [str(sum(len(p) + 1 for p in shares))]
