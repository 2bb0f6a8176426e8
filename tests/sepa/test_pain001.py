"""pain.001: golden files, schema validity, properties, and every refusal by its code."""

from __future__ import annotations

import os
import threading
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from ledger.money import parse_decimal
from sepa.errors import InvalidPaymentFile, MalformedXml, SchemaInvalid
from sepa.model import CreditTransferFile, Party, Payment, PaymentBlock
from sepa.pain001 import build_pain001, file_problems, read_pain001
from sepa.rules import INSTANT_MAX_CENTS, SCT_MAX_CENTS, build_remittance, epc_name
from sepa.xsd import validate
from tests.sepa.helpers import (
    BIKE_SHOP,
    CREATED,
    GOLDEN,
    IBAN_POOL,
    LIBRARY,
    MONDAY,
    SPONSOR,
    SPORTS_CLUB,
    bank_file,
    block,
    ctf,
    payment,
    shared_xsd_validate,
)

REGEN = os.environ.get("SEPA_REGEN_GOLDEN") == "1"  # SEPA_REGEN_GOLDEN=1 pytest tests/sepa rewrites them
VERSIONS = ("pain.001.001.09", "pain.001.001.03")


def _run(version: str) -> CreditTransferFile:
    """A payout run as a sponsor's finance team would send it: two debtor accounts."""
    remittance = build_remittance("Uitbetaling P2026112201", [f"RD-2026-{n:07d}" for n in range(12)])
    return ctf(
        block(
            payment(1, 12_50, BIKE_SHOP),
            payment(2, 2_345_67, SPORTS_CLUB, remittance=remittance.text),
            payment(3, 99, LIBRARY, structured_ref="1234567890123456"),
        ),
        block(
            payment(4, 100_000_000_00, BIKE_SHOP, structured_ref="RF18539007547034"),
            pmt_inf_id="P2026112201-B2",
            debtor=Party(name="Stichting Leergeld Utrecht", iban="NL36INGB0007654321"),
            batch_booking=False,
        ),
        version=version,
    )


def _instant() -> CreditTransferFile:
    return ctf(
        block(
            payment(1, INSTANT_MAX_CENTS, BIKE_SHOP),
            payment(2, 1, SPORTS_CLUB),
            instant=True,
            execution_date=CREATED.date(),  # a Sunday: instant runs any day
        ),
        msg_id="I2026112201",
    )


def _golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if REGEN:
        path.write_bytes(data)
    assert path.exists(), f"missing golden file {path}; run with SEPA_REGEN_GOLDEN=1"
    assert data == path.read_bytes(), f"{name} changed; if intended, regenerate with SEPA_REGEN_GOLDEN=1"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("run.pain.001.001.09.xml", lambda: _run("pain.001.001.09")),
        ("run.pain.001.001.03.xml", lambda: _run("pain.001.001.03")),
        ("instant.pain.001.001.09.xml", _instant),
    ],
)
def test_golden_files(name: str, make: object) -> None:
    assert callable(make)
    f = make()
    data = build_pain001(f)
    _golden(name, data)
    shared_xsd_validate(data, f.version)


# ---------------------------------------------------------------- what the XML says

NS = {"p09": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09", "p03": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}


def _xpath(data: bytes, version: str, path: str) -> list[str]:
    prefix = "p09" if version.endswith("09") else "p03"
    root = etree.fromstring(data)
    result = root.xpath(path.replace("p:", f"{prefix}:"), namespaces=NS)
    assert isinstance(result, list)
    return [str(x) for x in result]


@pytest.mark.parametrize("version", VERSIONS)
def test_version_specific_elements(version: str) -> None:
    data = build_pain001(_run(version))
    if version.endswith("09"):
        assert _xpath(data, version, "//p:PmtInf/p:ReqdExctnDt/p:Dt/text()") == ["2026-11-23", "2026-11-23"]
        assert _xpath(data, version, "//p:DbtrAgt/p:FinInstnId/p:BICFI/text()") == ["ABNANL2A"]
    else:
        assert _xpath(data, version, "//p:PmtInf/p:ReqdExctnDt/text()") == ["2026-11-23", "2026-11-23"]
        assert _xpath(data, version, "//p:DbtrAgt/p:FinInstnId/p:BIC/text()") == ["ABNANL2A"]
    # No BIC for the second debtor: EPC's NOTPROVIDED, and no creditor agent without a BIC.
    assert _xpath(data, version, "//p:DbtrAgt/p:FinInstnId/p:Othr/p:Id/text()") == ["NOTPROVIDED"]
    assert len(_xpath(data, version, "//p:CdtTrfTxInf[p:CdtrAgt]/p:PmtId/p:EndToEndId/text()")) == 3
    assert _xpath(data, version, "//p:BtchBookg/text()") == ["true", "false"]
    assert _xpath(data, version, "//p:GrpHdr/p:CtrlSum/text()") == [
        "100002359.16"
    ]  # 12.50 + 2345.67 + 0.99 + 100,000,000.00
    assert _xpath(data, version, "//p:CdtrRefInf/p:Tp/p:Issr/text()") == ["CUR", "ISO"]
    assert _xpath(data, version, "//p:Cdtr/p:Nm/text()")[:2] == [
        "Rijwielhandel Orsted + Zonen",
        "Voetbalvereniging Een Doel",
    ]
    assert _xpath(data, version, "//p:ChrgBr/text()") == ["SLEV", "SLEV"]
    assert _xpath(data, version, "//p:LclInstrm") == []
    shared_xsd_validate(data, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_iban_only_leaves_the_creditor_agent_out_inside_the_eea(version: str) -> None:
    """Since 2016 an SCT inside the EEA needs no BIC, and some banks want none: the
    creditor agent is left out (both XSDs make CdtrAgt optional, so no NOTPROVIDED),
    except for a creditor in a SEPA country outside the EEA (Switzerland here),
    whose BIC the scheme still requires. The debtor agent stays: both XSDs require it."""
    swiss = Party(name="Velo Zuerich AG", iban="CH9300762011623852957", bic="POFICHBEXXX")
    pays = (payment(1, 12_50, BIKE_SHOP), payment(2, 30_00, LIBRARY), payment(3, 5_00, swiss))
    default = build_pain001(ctf(block(*pays), version=version))
    assert len(_xpath(default, version, "//p:CdtTrfTxInf/p:CdtrAgt")) == 3
    data = build_pain001(ctf(block(*pays, iban_only=True), version=version))
    assert _xpath(data, version, "//p:CdtTrfTxInf[not(p:CdtrAgt)]/p:PmtId/p:EndToEndId/text()") == [
        "P2026112201-000001",
        "P2026112201-000002",
    ]
    bic = "BIC" if version.endswith("03") else "BICFI"
    assert _xpath(data, version, f"//p:CdtrAgt/p:FinInstnId/p:{bic}/text()") == ["POFICHBEXXX"]
    assert _xpath(data, version, "//p:NOTPROVIDED | //p:CdtrAgt//p:Othr") == []
    assert _xpath(data, version, f"//p:DbtrAgt/p:FinInstnId/p:{bic}/text()") == ["ABNANL2A"]
    shared_xsd_validate(data, version)
    # what is read back: the creditors inside the EEA have no BIC in the file
    back = read_pain001(data)
    assert [p.creditor.bic for p in back.blocks[0].payments] == [None, None, "POFICHBEXXX"]


def test_instant_has_local_instrument_inst() -> None:
    data = build_pain001(_instant())
    v = "pain.001.001.09"
    assert _xpath(data, v, "//p:PmtTpInf/p:SvcLvl/p:Cd/text()") == ["SEPA"]
    assert _xpath(data, v, "//p:PmtTpInf/p:LclInstrm/p:Cd/text()") == ["INST"]
    assert _xpath(data, v, "//p:InstdAmt/text()") == ["100000.00", "0.01"]
    shared_xsd_validate(data, v)


def test_instant_in_pain_001_001_03_too() -> None:
    data = build_pain001(ctf(block(payment(), instant=True), version="pain.001.001.03"))
    assert _xpath(data, "pain.001.001.03", "//p:LclInstrm/p:Cd/text()") == ["INST"]
    shared_xsd_validate(data, "pain.001.001.03")


@pytest.mark.parametrize("version", VERSIONS)
def test_remittance_too_long_is_refused_not_cut(version: str) -> None:
    with pytest.raises(InvalidPaymentFile) as e:
        build_pain001(ctf(block(payment(remittance="x" * 141)), version=version))
    assert e.value.codes == {"remittance_too_long"}


@pytest.mark.parametrize("version", VERSIONS)
def test_no_remittance_means_no_rmtinf(version: str) -> None:
    data = build_pain001(ctf(block(payment(remittance="")), version=version))
    assert _xpath(data, version, "//p:RmtInf") == []


# ---------------------------------------------------------------- properties

_names = st.text(min_size=1, max_size=90).filter(lambda s: epc_name(s) != "")
_payments = st.lists(
    st.tuples(st.integers(min_value=1, max_value=INSTANT_MAX_CENTS), _names, st.sampled_from(IBAN_POOL)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_payments, st.sampled_from(VERSIONS), st.booleans(), st.booleans())
def test_generated_file_adds_up_and_reads_back(
    rows: list[tuple[int, str, str]], version: str, instant: bool, batch: bool
) -> None:
    payments = tuple(
        Payment(
            end_to_end_id=f"E2E-{i}",
            amount_cents=amount,
            creditor=Party(name=name, iban=iban),
            remittance=build_remittance(f"Run {i}", [name]).text,
        )
        for i, (amount, name, iban) in enumerate(rows)
    )
    split = len(payments) // 2
    blocks = tuple(
        PaymentBlock(
            pmt_inf_id=f"B{k}", debtor=SPONSOR, execution_date=MONDAY, instant=instant, batch_booking=batch, payments=ps
        )
        for k, ps in enumerate((payments[:split], payments[split:]))
        if ps
    )
    data = build_pain001(
        CreditTransferFile(msg_id="M1", created_at=CREATED, initiating_party="Sponsor", version=version, blocks=blocks)  # type: ignore[arg-type]
    )
    total = sum(p.amount_cents for p in payments)
    assert [parse_decimal(x) for x in _xpath(data, version, "//p:GrpHdr/p:CtrlSum/text()")] == [total]
    assert _xpath(data, version, "//p:GrpHdr/p:NbOfTxs/text()") == [str(len(payments))]
    for b in blocks:
        pmt = f"//p:PmtInf[p:PmtInfId='{b.pmt_inf_id}']"
        assert parse_decimal(_xpath(data, version, f"{pmt}/p:CtrlSum/text()")[0]) == sum(
            p.amount_cents for p in b.payments
        )
        assert _xpath(data, version, f"{pmt}/p:NbOfTxs/text()") == [str(len(b.payments))]
    amounts = [parse_decimal(x) for x in _xpath(data, version, "//p:InstdAmt/text()")]
    assert amounts == [p.amount_cents for p in payments]
    assert _xpath(data, version, "//p:EndToEndId/text()") == [p.end_to_end_id for p in payments]
    assert _xpath(data, version, "//p:Cdtr/p:Nm/text()") == [epc_name(p.creditor.name) for p in payments]
    assert _xpath(data, version, "//p:CdtrAcct/p:Id/p:IBAN/text()") == [p.creditor.iban for p in payments]
    assert len(_xpath(data, version, "//p:LclInstrm")) == (len(blocks) if instant else 0)


# ---------------------------------------------------------------- refusals, each with its code


def _one(**changes: object) -> CreditTransferFile:
    """The default run with one thing changed: file, block or payment fields by prefix."""
    f = {k[2:]: v for k, v in changes.items() if k.startswith("f_")}
    b = {k[2:]: v for k, v in changes.items() if k.startswith("b_")}
    p = {k[2:]: v for k, v in changes.items() if k.startswith("p_")}
    pay = Payment(**{**dict(end_to_end_id="E1", amount_cents=100, creditor=BIKE_SHOP, remittance="R"), **p})  # type: ignore[arg-type]
    blk = PaymentBlock(**{**dict(pmt_inf_id="B1", debtor=SPONSOR, execution_date=MONDAY, payments=(pay,)), **b})  # type: ignore[arg-type]
    return CreditTransferFile(
        **{**dict(msg_id="M1", created_at=CREATED, initiating_party="Sponsor", blocks=(blk,)), **f}  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"f_msg_id": "M//1"}, "identifier_invalid"),
        ({"f_msg_id": "x" * 36}, "identifier_invalid"),
        ({"b_pmt_inf_id": "/B1"}, "identifier_invalid"),
        ({"p_end_to_end_id": "E 1"}, "identifier_invalid"),
        ({"p_end_to_end_id": ""}, "identifier_invalid"),
        ({"p_amount_cents": 0}, "amount_must_be_positive"),
        ({"p_amount_cents": -1250}, "amount_must_be_positive"),
        ({"p_amount_cents": 12.5}, "amount_not_int_cents"),
        ({"p_amount_cents": True}, "amount_not_int_cents"),
        ({"p_amount_cents": "1250"}, "amount_not_int_cents"),
        ({"p_amount_cents": SCT_MAX_CENTS + 1}, "amount_exceeds_maximum"),
        ({"b_instant": True, "p_amount_cents": INSTANT_MAX_CENTS + 1}, "instant_amount_exceeds_maximum"),
        ({"p_remittance": "RD-1 " * 29}, "remittance_too_long"),
        ({"p_creditor": Party(name="X", iban="NL91ABNA0417164301")}, "iban_invalid"),
        ({"p_creditor": Party(name="X", iban="not an iban")}, "iban_invalid"),
        ({"b_debtor": Party(name="X", iban="NL91")}, "iban_invalid"),
        ({"p_creditor": Party(name="X", iban="NL91ABNA0417164300", bic="ABNANL2")}, "bic_invalid"),
        ({"b_debtor": Party(name="X", iban="NL91ABNA0417164300", bic="ABNAXX2A")}, "bic_invalid"),
        ({"p_creditor": Party(name="東京", iban="NL91ABNA0417164300")}, "creditor_name_empty"),
        ({"b_debtor": Party(name=" ", iban="NL91ABNA0417164300")}, "debtor_name_empty"),
        ({"f_initiating_party": "🚲"}, "initiating_party_empty"),
        ({"p_structured_ref": "RF19539007547034"}, "structured_ref_invalid"),
        ({"p_structured_ref": "12AB"}, "structured_ref_invalid"),
        ({"b_payments": ()}, "empty_block"),
        ({"f_blocks": ()}, "empty_file"),
        ({"f_created_at": datetime(2026, 11, 22, 10, 0)}, "created_at_not_aware"),
        ({"f_version": "pain.001.001.11"}, "version_unsupported"),
        ({"b_execution_date": date(2026, 12, 25)}, "execution_date_not_business_day"),
        ({"b_execution_date": date(2026, 11, 20)}, "execution_date_in_past"),
        ({"b_execution_date": datetime(2026, 11, 23, 9, 0)}, "execution_date_not_date"),
    ],
)
def test_bad_input_refused_with_its_code(changes: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidPaymentFile) as e:
        build_pain001(_one(**changes))
    assert code in e.value.codes, e.value.problems
    assert code in str(e.value)


def test_limits_hold_exactly_at_the_boundary() -> None:
    build_pain001(_one(b_instant=True, p_amount_cents=INSTANT_MAX_CENTS))
    build_pain001(_one(p_amount_cents=SCT_MAX_CENTS))
    build_pain001(_one(p_remittance="x" * 140))
    build_pain001(_one(b_instant=True, b_execution_date=date(2026, 12, 25)))  # instant: any day
    build_pain001(_one(f_msg_id="x" * 35))


def test_bic_pattern_depends_on_version() -> None:
    digits_bic = Party(name="X", iban="NL91ABNA0417164300", bic="1234NL2A")
    build_pain001(_one(p_creditor=digits_bic))  # .09 (ISO 9362:2014) allows digits
    with pytest.raises(InvalidPaymentFile) as e:
        build_pain001(_one(p_creditor=digits_bic, f_version="pain.001.001.03"))
    assert e.value.codes == {"bic_invalid"}


def test_ibans_and_bics_are_normalised() -> None:
    data = build_pain001(_one(p_creditor=Party(name="X", iban="nl91 abna 0417 1643 00", bic="abnanl2a")))
    assert _xpath(data, "pain.001.001.09", "//p:CdtrAcct/p:Id/p:IBAN/text()") == ["NL91ABNA0417164300"]
    assert _xpath(data, "pain.001.001.09", "//p:CdtrAgt/p:FinInstnId/p:BICFI/text()") == ["ABNANL2A"]


def test_duplicates_are_refused() -> None:
    f = ctf(block(payment(1), payment(1)), block(payment(2)))  # same EndToEndId; same PmtInfId twice
    with pytest.raises(InvalidPaymentFile) as e:
        build_pain001(f)
    assert e.value.codes == {"duplicate_end_to_end_id", "duplicate_pmt_inf_id"}


def test_too_many_payments() -> None:
    f = ctf(block(payment(1), payment(2), payment(3)))
    assert {p.code for p in file_problems(f, max_payments=2)} == {"too_many_payments"}
    with pytest.raises(InvalidPaymentFile) as e:
        build_pain001(f, max_payments=2)
    assert e.value.codes == {"too_many_payments"}
    build_pain001(f, max_payments=3)


def test_control_sum_above_the_ledger_maximum_is_refused() -> None:
    # 10,001 maximal SCT payments pass 10^15 cents, the ledger's MAX_AMOUNT.
    big = tuple(payment(i, SCT_MAX_CENTS) for i in range(10_001))
    problems = file_problems(ctf(block(*big)), max_payments=20_000)
    assert {p.code for p in problems} == {"control_sum_exceeds_maximum"}


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    f = _one(f_msg_id="", p_amount_cents=0, p_creditor=Party(name="X", iban="NL00"))
    problems = file_problems(f)
    assert {(p.code, p.path) for p in problems} == {
        ("identifier_invalid", "msg_id"),
        ("amount_must_be_positive", "blocks[0].payments[0].amount_cents"),
        ("iban_invalid", "blocks[0].payments[0].creditor.iban"),
    }


# ---------------------------------------------------------------- the XSD gate


def test_validate_reports_lxml_error_lines() -> None:
    data = build_pain001(_run("pain.001.001.09"))
    broken = data.replace(b"<ChrgBr>SLEV</ChrgBr>", b"<ChrgBr>NOPE</ChrgBr>", 1)
    with pytest.raises(SchemaInvalid) as e:
        validate(broken, "pain.001.001.09")
    assert e.value.schema == "pain.001.001.09"
    assert any("line" in err and "ChrgBr" in err for err in e.value.errors)


def test_validate_refuses_the_wrong_version_and_unknown_schemas() -> None:
    data = build_pain001(_run("pain.001.001.03"))
    with pytest.raises(SchemaInvalid):
        validate(data, "pain.001.001.09")
    with pytest.raises(ValueError, match="unknown schema"):
        validate(data, "pain.001.001.99")
    with pytest.raises(MalformedXml):
        validate(data[:200], "pain.001.001.03")


def test_validation_is_safe_across_threads() -> None:
    good = build_pain001(_run("pain.001.001.09"))
    bad = good.replace(b"<ChrgBr>SLEV</ChrgBr>", b"<ChrgBr>NOPE</ChrgBr>", 1)
    outcomes: list[tuple[bool, bool]] = []
    errors: list[tuple[str, ...]] = []

    def work(expect_ok: bool) -> None:
        for _ in range(20):
            try:
                validate(good if expect_ok else bad, "pain.001.001.09")
                outcomes.append((expect_ok, True))
            except SchemaInvalid as e:
                outcomes.append((expect_ok, False))
                errors.append(e.errors)

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 80 and all(expected == ok for expected, ok in outcomes)
    # Each failure carries its own file's error, never another thread's (or an empty) log.
    assert len(errors) == 40 and all(any("ChrgBr" in line for line in e) for e in errors)


@pytest.mark.parametrize("version", ["pain.001.001.03", "pain.001.001.09"])
def test_shared_bank_samples_validate(version: str) -> None:
    validate(bank_file(f"nl.sepa.sct-supplier.{version}.xml"), version)


def test_shipped_schemas_are_the_shared_ones() -> None:
    shipped = Path(__file__).resolve().parents[2] / "sepa" / "schemas"
    for xsd in sorted(shipped.glob("*.xsd")):
        assert xsd.read_bytes() == bank_file(f"xsd/{xsd.name}")


@pytest.mark.parametrize("version", ["pain.001.001.03", "pain.001.001.09"])
def test_read_pain001_gives_back_what_was_built(version: str) -> None:
    from sepa import read_pain001

    file = ctf(
        block(payment(1, 12_345), payment(2, 1, creditor=LIBRARY)),
        block(payment(3, 99_00), pmt_inf_id="P2026112201-I", instant=True),
        version=version,
    )
    back = read_pain001(build_pain001(file))
    assert back.msg_id == file.msg_id
    assert back.version == version
    assert [b.pmt_inf_id for b in back.blocks] == [b.pmt_inf_id for b in file.blocks]
    assert [b.instant for b in back.blocks] == [b.instant for b in file.blocks]
    assert [(p.end_to_end_id, p.amount_cents, p.creditor.iban) for b in back.blocks for p in b.payments] == [
        (p.end_to_end_id, p.amount_cents, p.creditor.iban) for b in file.blocks for p in b.payments
    ]


def test_read_pain001_refuses_other_messages() -> None:
    from sepa import UnsupportedMessage, read_pain001

    with pytest.raises(UnsupportedMessage):
        read_pain001(b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>')
