"""camt.053 / camt.054: round trips for every version we write, the versions we only
read, and hostile input, each refused with the right error and a clear message."""

from __future__ import annotations

import io

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciliation import (
    InvalidStatement,
    MalformedStatement,
    ReconciliationError,
    SchemaInvalid,
    StatementTooLarge,
    UnsupportedStatement,
    parse_camt,
    parse_statement,
    read_limited,
    validate,
)
from reconciliation.camt import MAX_DEPTH, detect_version
from reconciliation.model import Entry, Statement, TxDetail
from reconciliation.synth import build_camt053, build_camt054
from tests.reconciliation.helpers import DAY, payout_day, shared_xsd_validate

V053 = ("camt.053.001.02", "camt.053.001.08")
V054 = ("camt.054.001.02", "camt.054.001.08")


def _camt053(version: str = "camt.053.001.02", s: Statement | None = None) -> bytes:
    return build_camt053(s or payout_day(), version)  # type: ignore[arg-type]


def _no_balances(s: Statement) -> Statement:
    return msgspec.structs.replace(s, kind="camt.054", opening_balance_cents=None, closing_balance_cents=None)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("version", V053)
def test_camt053_round_trip(version: str) -> None:
    s = payout_day()
    data = _camt053(version, s)
    assert detect_version(data) == version
    assert parse_camt(data) == [s]


@pytest.mark.parametrize("version", V053)
def test_both_statement_numbers_round_trip(version: str) -> None:
    """LglSeqNb (the legal statement number) beside ElctrncSeqNb, up to the 18 digits of an ISO Number."""
    s = msgspec.structs.replace(payout_day(), electronic_sequence=10**17 + 327, legal_sequence=26_327)
    data = _camt053(version, s)
    assert b"<LglSeqNb>26327</LglSeqNb>" in data
    assert parse_camt(data) == [s]
    with pytest.raises(InvalidStatement, match="LglSeqNb is not a number: '-3'"):
        parse_camt(data.replace(b"<LglSeqNb>26327<", b"<LglSeqNb>-3<"))


@pytest.mark.parametrize("version", V054)
def test_camt054_round_trip_without_balances(version: str) -> None:
    s = _no_balances(payout_day())
    data = build_camt054(payout_day(), version)  # type: ignore[arg-type]  # balances are dropped
    assert parse_camt(data) == [s]


@pytest.mark.parametrize("version", V053 + V054)
def test_synth_output_is_valid_against_shipped_and_third_party_xsds(version: str) -> None:
    data = _camt053(version) if version in V053 else build_camt054(payout_day(), version)  # type: ignore[arg-type]
    validate(data, version)
    shared_xsd_validate(data, version)


def test_synth_refuses_what_the_xsd_refuses() -> None:
    too_long = msgspec.structs.replace(payout_day(), message_id="M" * 36)
    with pytest.raises(SchemaInvalid) as e:
        build_camt053(too_long)
    assert e.value.code == "statement_schema_invalid"
    assert "MsgId" in str(e.value)


_text = (
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool)
)
_ids = st.from_regex(r"[A-Za-z0-9/\-?:().,'+]{1,35}", fullmatch=True).filter(lambda s: s.strip() == s)
_details = st.builds(
    TxDetail,
    end_to_end_id=st.none() | _ids,
    instruction_id=st.none() | _ids,
    amount_cents=st.none() | st.integers(0, 10**12),
    counterparty_name=st.none() | _text,
    counterparty_iban=st.none() | st.sampled_from(["NL91ABNA0417164300", "DE89370400440532013000"]),
    remittance=st.none() | _text,
    structured_reference=st.none() | st.sampled_from(["RF18539007547034", "1234567890123456"]),
)


@st.composite
def _entries(draw: st.DrawFn) -> tuple[Entry, ...]:
    out = []
    for i in range(draw(st.integers(0, 6))):
        details = tuple(d for d in draw(st.lists(_details, max_size=3)) if any(msgspec.structs.astuple(d)))
        out.append(
            Entry(
                index=i,
                amount_cents=draw(st.integers(0, 10**12)),
                credit_debit=draw(st.sampled_from(["CRDT", "DBIT"])),
                reversal=draw(st.booleans()),
                booking_date=draw(st.none() | st.just(DAY)),
                value_date=draw(st.none() | st.dates()),
                bank_reference=draw(st.none() | _ids),
                entry_reference=draw(st.none() | _ids),
                details=details,
                additional_info=draw(st.none() | _text),
            )
        )
    return tuple(out)


@given(entries=_entries(), opening=st.integers(-(10**12), 10**12), version=st.sampled_from(V053))
@settings(max_examples=60, deadline=None)
def test_parse_of_build_is_identity(entries: tuple[Entry, ...], opening: int, version: str) -> None:
    s = msgspec.structs.replace(
        payout_day(),
        entries=entries,
        opening_balance_cents=opening,
        closing_balance_cents=opening + sum(e.signed_cents for e in entries),
    )
    data = build_camt053(s, version)  # type: ignore[arg-type]
    assert parse_camt(data) == [s]


# ---------------------------------------------------------------- versions we only read


def test_camt053_001_04_is_read() -> None:
    data = _camt053("camt.053.001.02").replace(b"camt.053.001.02", b"camt.053.001.04")
    [s] = parse_camt(data)
    assert s == payout_day()


def test_pending_entries_keep_their_status() -> None:
    data = build_camt054(payout_day(), "camt.054.001.08").replace(b"<Cd>BOOK</Cd>", b"<Cd>PDNG</Cd>", 1)
    [s] = parse_camt(data)
    assert [e.status for e in s.entries] == ["PDNG", "BOOK", "BOOK", "BOOK", "BOOK"]


def test_an_xml_prefix_is_read_like_the_default_namespace() -> None:
    data = _camt053().replace(b'<Document xmlns="', b'<c:Document xmlns:c="')
    data = data.replace(b"<", b"<c:").replace(b"<c:/", b"</c:").replace(b"<c:?xml", b"<?xml").replace(b"<c:c:", b"<c:")
    assert parse_camt(data) == [payout_day()]


# ---------------------------------------------------------------- hostile input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><GrpHdr><MsgId>&lol9;</MsgId>
</GrpHdr></BkToCstmrStmt></Document>"""


def _external(uri: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "{uri}">]>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>&xxe;</MsgId></GrpHdr></BkToCstmrStmt></Document>"
    ).encode()


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, _external("file:///etc/passwd"), _external("http://127.0.0.1:9/evil.dtd")],
    ids=["billion-laughs", "file-entity", "http-entity"],
)
def test_dtd_and_entities_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedStatement, match="DTD") as e:
        parse_statement(data)
    assert e.value.code == "malformed_statement"


def test_a_doctype_hidden_in_utf16_is_still_refused() -> None:
    data = _external("file:///etc/passwd").replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
    with pytest.raises(MalformedStatement):
        parse_camt(data.decode().encode("utf-16"))


def test_truncated_file() -> None:
    data = _camt053()
    with pytest.raises(MalformedStatement, match="not well-formed"):
        parse_camt(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("namespace", "shown"),
    [
        (b"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09", "pain.001.001.09"),
        (b"urn:iso:std:iso:20022:tech:xsd:camt.053.001.03", "camt.053.001.03"),
        (b"urn:example:not-a-bank", "urn:example:not-a-bank"),
    ],
)
def test_wrong_namespace_names_the_namespace(namespace: bytes, shown: str) -> None:
    data = _camt053().replace(b"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02", namespace)
    with pytest.raises(UnsupportedStatement, match=shown.replace(".", r"\.")) as e:
        parse_camt(data)
    assert e.value.code == "unsupported_statement"


def test_no_namespace() -> None:
    with pytest.raises(UnsupportedStatement, match="no namespace"):
        parse_camt(b"<Document><BkToCstmrStmt/></Document>")


def test_oversize_input_is_refused_before_parsing() -> None:
    data = _camt053()
    with pytest.raises(StatementTooLarge) as e:
        parse_statement(data, max_bytes=len(data) - 1)
    assert (e.value.code, e.value.size, e.value.limit) == ("statement_too_large", len(data), len(data) - 1)
    with pytest.raises(StatementTooLarge):
        parse_camt(data, max_bytes=1000)
    assert parse_statement(data, max_bytes=len(data)) == [payout_day()]


class _Endless(io.RawIOBase):
    """A sender that never stops: read_limited must give up without holding it all."""

    def __init__(self) -> None:
        self.sent = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        b[:] = b"<" * len(b)
        self.sent += len(b)
        return len(b)


def test_streaming_size_guard_stops_an_endless_upload() -> None:
    stream = _Endless()
    with pytest.raises(StatementTooLarge):
        read_limited(stream, max_bytes=3 * 1024 * 1024)  # type: ignore[arg-type]
    assert stream.sent <= 3 * 1024 * 1024 + 1
    data = _camt053()
    assert read_limited(io.BytesIO(data), max_bytes=len(data)) == data
    with pytest.raises(StatementTooLarge):
        read_limited(io.BytesIO(data), max_bytes=len(data) - 1)


@pytest.mark.parametrize(
    ("depth", "match"),
    [(MAX_DEPTH + 10, f"deeper than {MAX_DEPTH}"), (300, "not well-formed")],  # the second is libxml2's own 256
)
def test_excessive_depth(depth: int, match: str) -> None:
    nest = b"<X>" * depth + b"</X>" * depth
    data = _camt053().replace(b"<AddtlNtryInf>", b"<AddtlNtryInf>" + nest, 1)
    with pytest.raises(MalformedStatement, match=match):
        parse_camt(data)


def test_depth_inside_the_header_is_checked_too() -> None:
    nest = b"<X>" * (MAX_DEPTH + 1) + b"</X>" * (MAX_DEPTH + 1)
    with pytest.raises(MalformedStatement, match="deeper"):
        parse_camt(_camt053().replace(b"</GrpHdr>", nest + b"</GrpHdr>"))


@pytest.mark.parametrize("garbage", [b"", b"\x00\x01\x02 not a statement", b"%PDF-1.7\n...", b"MSH|^~\\&|HL7"])
def test_non_statement_garbage(garbage: bytes) -> None:
    with pytest.raises(UnsupportedStatement, match="neither camt XML nor MT940"):
        parse_statement(garbage)


@pytest.mark.parametrize(
    "data",
    [b"<<not xml>>", b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><unclosed>'],
)
def test_broken_xml_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedStatement, match="not well-formed"):
        parse_statement(data)


@pytest.mark.parametrize(
    ("before", "after", "match"),
    [
        (b'<Amt Ccy="EUR">29.99</Amt>', b'<Amt Ccy="EUR">29,99</Amt>', r"entry 1: Amt: not a decimal amount: '29,99'"),
        (b'<Amt Ccy="EUR">29.99</Amt>', b'<Amt Ccy="EUR">29.999</Amt>', "entry 1: Amt: more than two decimals"),
        (b'<Amt Ccy="EUR">29.99</Amt>', b'<Amt Ccy="USD">29.99</Amt>', "entry 1 is in USD, the account in EUR"),
        (b"<IBAN>NL91ABNA0417164300</IBAN>", b"<Othr><Id>0417164300</Id></Othr>", "no IBAN"),
        (b"<IBAN>NL91ABNA0417164300</IBAN>", b"<IBAN>NL91ABNA04171643</IBAN>", "not a NL IBAN"),
        (b"<CdtDbtInd>DBIT</CdtDbtInd>", b"<CdtDbtInd>DEBIT</CdtDbtInd>", "CdtDbtInd must be CRDT or DBIT"),
        (b"<Dt>2026-11-23</Dt></BookgDt>", b"<Dt>2026-13-23</Dt></BookgDt>", "BookgDt is not a date"),
    ],
)
def test_invalid_values_name_the_entry_and_the_rule(before: bytes, after: bytes, match: str) -> None:
    data = _camt053().replace(before, after, 1 if b"Amt" not in before else -1)
    assert data != _camt053()
    with pytest.raises(InvalidStatement, match=match) as e:
        parse_camt(data)
    assert e.value.code == "invalid_statement"
    assert isinstance(e.value, ReconciliationError)


@pytest.mark.parametrize("data", [BILLION_LAUGHS, _external("file:///etc/passwd")], ids=["billion-laughs", "file"])
def test_the_parser_refuses_a_dtd_even_without_the_byte_prefilter(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciliation.camt

    monkeypatch.setattr(reconciliation.camt, "_refuse_doctype", lambda data: None)
    with pytest.raises(MalformedStatement, match="DTD"):
        parse_camt(data)
