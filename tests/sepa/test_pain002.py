"""pain.002: round trips, the banks' own reports, and hostile input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sepa import pain002
from sepa.errors import MalformedXml, SchemaInvalid, SepaError, UnsupportedMessage
from sepa.model import CreditTransferFile
from sepa.pain001 import build_pain001
from sepa.pain002 import Rejection, build_pain002, is_account_error, parse_pain002
from tests.sepa.helpers import BIKE_SHOP, LIBRARY, SPORTS_CLUB, bank_file, block, ctf, payment, shared_xsd_validate

VERSIONS = ("pain.002.001.03", "pain.002.001.10")
ANSWERED = datetime(2026, 11, 23, 7, 30, tzinfo=timezone(timedelta(hours=1)))


def _file() -> CreditTransferFile:
    return ctf(
        block(payment(1, 12_50, BIKE_SHOP), payment(2, 30_00, SPORTS_CLUB)),
        block(payment(3, 99, LIBRARY), pmt_inf_id="P2026112201-B2"),
    )


def _report(version: str, rejections: list[Rejection], **kw: object) -> bytes:
    f = _file()
    return build_pain002(f, msg_id="BANK-20261123-1", created_at=ANSWERED, version=version, rejections=rejections, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip_with_rejections(version: str) -> None:
    data = _report(
        version,
        [
            Rejection(end_to_end_id="P2026112201-000002", reason_code="AC04", additional_info="Rekening opgeheven"),
            Rejection(end_to_end_id="P2026112201-000003", reason_code="AM04"),
        ],
    )
    r = parse_pain002(data, strict=True)
    assert r.version == version
    assert (r.msg_id, r.original_msg_id, r.original_msg_name_id) == (
        "BANK-20261123-1",
        "P2026112201",
        "pain.001.001.09",
    )
    assert r.created_at == ANSWERED
    assert (r.group_status, r.original_count, r.original_ctrl_sum_cents) == ("PART", 3, 12_50 + 30_00 + 99)
    assert [(b.original_pmt_inf_id, b.status, b.original_count) for b in r.blocks] == [
        ("P2026112201-B1", "PART", 2),
        ("P2026112201-B2", "RJCT", 1),
    ]
    txs = list(r.transactions())
    assert [(t.original_pmt_inf_id, t.original_end_to_end_id, t.status, t.reason_codes) for t in txs] == [
        ("P2026112201-B1", "P2026112201-000002", "RJCT", ("AC04",)),
        ("P2026112201-B2", "P2026112201-000003", "RJCT", ("AM04",)),
    ]
    assert [t.original_instruction_id for t in txs] == ["P2026112201-000002", "P2026112201-000003"]
    assert [(t.original_amount_cents, t.original_currency) for t in txs] == [(30_00, "EUR"), (99, "EUR")]
    assert txs[0].reasons[0].additional_info == ("Rekening opgeheven",)
    assert [is_account_error(c) for t in txs for c in t.reason_codes] == [True, False]
    shared_xsd_validate(data, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_all_accepted_reports_only_the_group_unless_asked(version: str) -> None:
    r = parse_pain002(_report(version, []))
    assert (r.group_status, r.blocks) == ("ACCP", ())
    r = parse_pain002(_report(version, [], report_accepted=True, accepted_status="ACTC"))
    assert r.group_status == "ACTC"
    assert [(t.original_end_to_end_id, t.status) for t in r.transactions()] == [
        ("P2026112201-000001", "ACTC"),
        ("P2026112201-000002", "ACTC"),
        ("P2026112201-000003", "ACTC"),
    ]


def test_all_rejected_is_rjct() -> None:
    rej = [Rejection(end_to_end_id=f"P2026112201-00000{i}", reason_code="AC01") for i in (1, 2, 3)]
    r = parse_pain002(_report("pain.002.001.10", rej))
    assert r.group_status == "RJCT" and all(b.status == "RJCT" for b in r.blocks)


def test_report_for_a_generated_pain001_round_trips() -> None:
    f = ctf(block(*(payment(i, 100 * i) for i in range(1, 6))))
    build_pain001(f)
    r = parse_pain002(build_pain002(f, msg_id="B1", created_at=ANSWERED, report_accepted=True))
    assert sum(t.original_amount_cents or 0 for t in r.transactions()) == r.original_ctrl_sum_cents == 1500


def test_writer_refuses_unknown_end_to_end_ids() -> None:
    with pytest.raises(ValueError, match="not in the file"):
        _report("pain.002.001.10", [Rejection(end_to_end_id="NOPE", reason_code="AC01")])


def test_account_error_codes() -> None:
    for code in ("AC01", "AC03", "AC04", "AC06", "AC07", "AC14", "BE04", "MD07", "RC01", "ac01 "):
        assert is_account_error(code)
    for other in ("AM04", "MS02", "MS03", "AM05", "FF01", "", None):
        assert not is_account_error(other)
    # the debtor's (the sponsor's own) account: never a reason to block a supplier
    for debtor in ("AC02", "AC05", "AC10", "AC13"):
        assert not is_account_error(debtor)


# ---------------------------------------------------------------- the banks' own files


def test_bank_of_ireland_unpaid_report() -> None:
    r = parse_pain002(bank_file("test-sepa-pain-unpaid.xml"), strict=True)
    assert r.version == "pain.002.001.03"
    assert (r.original_msg_id, r.original_msg_name_id, r.group_status) == ("MSGID12345678912", "PAIN.008.001.02", None)
    assert (r.original_count, r.original_ctrl_sum_cents) == (4, 400_00)
    assert r.created_at == datetime(2016, 10, 8, 20, 49)
    assert [(b.original_pmt_inf_id, b.status, b.original_ctrl_sum_cents) for b in r.blocks] == [
        ("PMTINFID1", None, 200_00),
        ("PMTINFID2", None, 200_00),
    ]
    assert [
        (t.original_end_to_end_id, t.status, t.reason_codes, t.original_amount_cents) for t in r.transactions()
    ] == [
        ("E2EID1", "RJCT", ("AC01",), 100_00),
        ("E2EID2", "RJCT", ("MS02",), 100_00),
        ("E2EID3", "RJCT", ("MD06",), 100_00),
        ("E2EID4", "RJCT", ("AM04",), 100_00),
    ]
    first = next(r.transactions())
    assert first.reasons[0].additional_info == ("ACC NUMBER INVALID",)
    assert [is_account_error(t.reason_codes[0]) for t in r.transactions()] == [True, False, False, False]


def test_verification_of_payee_report() -> None:
    r = parse_pain002(
        bank_file("SendTransferVoPTest.VOP_REPORT_PARTIAL_MATCH_XML_PAYLOAD.pain.002.001.10.xml"), strict=True
    )
    assert r.version == "pain.002.001.10"
    assert (r.original_msg_id, r.group_status, r.original_ctrl_sum_cents) == ("M1234567890", "RVCM", 10_00)
    assert r.created_at is not None and r.created_at.utcoffset() == timedelta(hours=2)
    assert len(r.group_reasons) == 1 and len(r.group_reasons[0].additional_info) == 17
    [b] = r.blocks
    assert (b.original_pmt_inf_id, b.status, b.original_count) == ("1760093576", None, 1)
    [t] = b.transactions
    assert (t.original_end_to_end_id, t.status, t.reasons, t.original_amount_cents) == ("NOTPROVIDED", "RVNM", (), None)


# ---------------------------------------------------------------- hostile and broken input

NS03 = b"urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"
_BODY = (
    b'<Document xmlns="' + NS03 + b'"><CstmrPmtStsRpt><GrpHdr><MsgId>&x;</MsgId></GrpHdr></CstmrPmtStsRpt></Document>'
)

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE Document ['
    b'<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
    b'<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    b'<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">'
    b'<!ENTITY x "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>' + _BODY
)
EXTERNAL_ENTITY = b'<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + _BODY
EXTERNAL_DTD = b'<?xml version="1.0"?><!DOCTYPE Document SYSTEM "http://example.invalid/evil.dtd">' + _BODY


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (BILLION_LAUGHS, MalformedXml),
        (EXTERNAL_ENTITY, MalformedXml),
        (EXTERNAL_DTD, MalformedXml),
        (b"", MalformedXml),
        (b"not xml at all", MalformedXml),
        (b"\xff\xfe\x00<", MalformedXml),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>', UnsupportedMessage),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.14"/>', UnsupportedMessage),
        (b"<Document/>", UnsupportedMessage),
        (b'<Document xmlns="' + NS03 + b'"/>', MalformedXml),  # no CstmrPmtStsRpt
    ],
)
def test_hostile_or_broken_xml_is_refused(data: bytes, error: type[SepaError]) -> None:
    with pytest.raises(error) as e:
        parse_pain002(data)
    assert "root:" not in str(e.value)  # nothing from /etc/passwd leaks into the message


def test_truncated_report_is_refused() -> None:
    data = _report("pain.002.001.10", [Rejection(end_to_end_id="P2026112201-000001", reason_code="AC01")])
    with pytest.raises(MalformedXml, match="not well-formed"):
        parse_pain002(data[: len(data) // 2])


def test_a_pain001_is_not_a_status_report() -> None:
    with pytest.raises(UnsupportedMessage, match=r"pain\.001\.001\.09"):
        parse_pain002(build_pain001(ctf()))


def test_oversized_report_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _report("pain.002.001.10", [])
    monkeypatch.setattr(pain002, "MAX_STATUS_REPORT_BYTES", len(data) - 1)
    with pytest.raises(MalformedXml, match="more than"):
        parse_pain002(data)


def _tamper(old: bytes, new: bytes) -> bytes:
    data = _report("pain.002.001.03", [Rejection(end_to_end_id="P2026112201-000001", reason_code="AC01")])
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (b'Ccy="EUR">12.50<', b'Ccy="EUR">12.501<', "fractions of a cent"),
        (b'Ccy="EUR">12.50<', b'Ccy="EUR">12,50<', "not an amount"),
        (b"<OrgnlNbOfTxs>3</OrgnlNbOfTxs>", b"<OrgnlNbOfTxs>three</OrgnlNbOfTxs>", "not a count"),
        (b"<OrgnlNbOfTxs>3</OrgnlNbOfTxs>", "<OrgnlNbOfTxs>³</OrgnlNbOfTxs>".encode(), "not a count"),
        (b"<OrgnlMsgId>P2026112201</OrgnlMsgId>", b"", "OrgnlMsgId"),
        (b"<CreDtTm>2026-11-23T07:30:00+01:00</CreDtTm>", b"<CreDtTm>yesterday</CreDtTm>", "CreDtTm"),
    ],
)
def test_malformed_values_are_refused(old: bytes, new: bytes, match: str) -> None:
    with pytest.raises(MalformedXml, match=match):
        parse_pain002(_tamper(old, new))


def test_trailing_zero_decimals_are_fine() -> None:
    r = parse_pain002(_tamper(b'Ccy="EUR">12.50<', b'Ccy="EUR">12.50000<'))
    assert next(r.transactions()).original_amount_cents == 12_50


def test_strict_mode_validates_against_the_xsd() -> None:
    data = _tamper(b"<TxSts>RJCT</TxSts>", b"<TxSts>RVNM</TxSts>")  # not a .03 status code
    assert next(parse_pain002(data).transactions()).status == "RVNM"  # lenient by default
    with pytest.raises(SchemaInvalid):
        parse_pain002(data, strict=True)


# ---------------------------------------------------------------- reading a report against its file


def _sent(f: CreditTransferFile) -> list[pain002.SentBlock]:
    return [
        pain002.SentBlock(
            pmt_inf_id=b.pmt_inf_id,
            payments=tuple(
                pain002.SentPayment(end_to_end_id=p.end_to_end_id, amount_cents=p.amount_cents) for p in b.payments
            ),
        )
        for b in f.blocks
    ]


@st.composite
def _files_and_rejections(draw: st.DrawFn) -> tuple[CreditTransferFile, list[Rejection], bool, str]:
    sizes = draw(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=3))
    seq = 0
    blocks = []
    for bi, n in enumerate(sizes):
        pays = []
        for _ in range(n):
            seq += 1
            pays.append(payment(seq, draw(st.integers(min_value=1, max_value=10**9))))
        blocks.append(block(*pays, pmt_inf_id=f"P2026112201-B{bi + 1}"))
    f = ctf(*blocks)
    e2es = [p.end_to_end_id for b in f.blocks for p in b.payments]
    chosen = draw(st.lists(st.sampled_from(e2es), unique=True))
    codes = st.sampled_from(["AC04", "AM04", "AC02"])
    rejections = [Rejection(end_to_end_id=e, reason_code=draw(codes)) for e in chosen]
    return f, rejections, draw(st.booleans()), draw(st.sampled_from(["ACCP", "ACTC", "ACSC"]))


@given(_files_and_rejections(), st.sampled_from(VERSIONS))
@settings(max_examples=60, deadline=None)
def test_a_banks_report_reads_back_as_what_it_says(
    case: tuple[CreditTransferFile, list[Rejection], bool, str], version: str
) -> None:
    """parse(build(x)) read against the file: no mismatch, exactly the rejected
    payments rejected with their own reason, every other one accepted."""
    f, rejections, report_accepted, accepted_status = case
    data = build_pain002(
        f,
        msg_id="B1",
        created_at=ANSWERED,
        version=version,  # type: ignore[arg-type]
        rejections=rejections,
        report_accepted=report_accepted,
        accepted_status=accepted_status,
    )
    reading = pain002.read_against(parse_pain002(data), _sent(f))
    assert reading.mismatches == ()
    reasons = {r.end_to_end_id: r.reason_code for r in rejections}
    for e2e, verdict in reading.verdicts.items():
        if e2e in reasons:
            code = reasons[e2e]
            assert (verdict.outcome, verdict.reason_code, verdict.own_reason_code) == ("rejected", code, code)
        else:
            assert verdict.outcome == "accepted"
    assert set(reading.verdicts) == {p.end_to_end_id for b in f.blocks for p in b.payments}


def test_a_block_status_covers_its_block_only() -> None:
    f = _file()
    report = pain002.StatusReport(
        version="pain.002.001.10",
        msg_id="B1",
        created_at=None,
        original_msg_id=f.msg_id,
        original_msg_name_id=f.version,
        group_status=None,
        blocks=(
            pain002.PaymentBlockStatus(
                original_pmt_inf_id="P2026112201-B2",
                status="RJCT",
                reasons=(pain002.StatusReason(code="AC04"),),
            ),
        ),
    )
    reading = pain002.read_against(report, _sent(f))
    assert reading.mismatches == ()
    # the block's reason is shown, but it is not the transaction's own: it blocks no creditor
    assert {e: (v.outcome, v.reason_code, v.own_reason_code) for e, v in reading.verdicts.items()} == {
        "P2026112201-000003": ("rejected", "AC04", None)
    }


def test_a_report_without_counts_or_transactions_is_checked_for_what_it_has() -> None:
    f = _file()
    reading = pain002.read_against(parse_pain002(_report("pain.002.001.10", [])), _sent(f))
    assert reading.mismatches == ()
    other = ctf(block(payment(1, 12_50, BIKE_SHOP)))
    reading = pain002.read_against(parse_pain002(_report("pain.002.001.10", [])), _sent(other))
    assert reading.mismatches == (
        "group: OrgnlNbOfTxs is 3, the file has 1",
        "group: OrgnlCtrlSum is 43.49, the file has 12.50",
    )
