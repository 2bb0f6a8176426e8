"""MT940: round trips, the Dutch banks' envelopes and :25: forms, :86: variants, and bad input."""

from __future__ import annotations

from datetime import date

import msgspec
import pytest

from reconciliation import InvalidStatement, StatementTooLarge, UnsupportedStatement, parse_mt940, parse_statement
from reconciliation.model import BankTransactionCode, Entry, TxDetail
from reconciliation.synth import build_mt940
from tests.reconciliation.helpers import as_mt940, payout_day

NTRF = BankTransactionCode(proprietary="NTRF")
ING_LIKE = (
    b":20:P261123000000001\r\n"
    b":25:NL69INGB0123456789EUR\r\n"
    b":28C:00327\r\n"
    b":60F:C261122EUR1000,00\r\n"
    b":61:2611231123D12,50NTRFEREF//00000000001005\r\n"
    b"/TRCD/00100/\r\n"
    b":86:/EREF/P2026112201-000001//CNTP/NL35ABNA0001000000/ABNANL2A/Rijw\r\n"
    b"ielhandel De Spaak///REMI/USTD//Uitbetaling P2026112201/\r\n"
    b":62F:C261123EUR987,50\r\n"
    b"-\r\n"
)


def test_round_trip_of_what_mt940_carries() -> None:
    s = as_mt940(payout_day())
    assert parse_mt940(build_mt940(s)) == [s]


def test_round_trip_of_reversals_and_negative_balances() -> None:
    s = as_mt940(payout_day())
    entries = (
        Entry(
            index=0,
            amount_cents=100,
            credit_debit="CRDT",
            reversal=True,
            value_date=date(2026, 12, 31),
            bank_transaction_code=NTRF,
        ),
        Entry(
            index=1,
            bank_transaction_code=NTRF,
            amount_cents=5,
            credit_debit="DBIT",
            reversal=True,
            value_date=date(2026, 12, 31),
            booking_date=date(2027, 1, 2),  # booked in the new year: MMDD only, the year follows
        ),
    )
    s = msgspec.structs.replace(
        s, entries=entries, opening_balance_cents=-1_000, closing_balance_cents=-905, statement_date=date(2027, 1, 2)
    )
    data = build_mt940(s)
    assert b":61:261231RD1,00NTRFNONREF" in data and b":61:2612310102RC0,05NTRFNONREF" in data
    assert b":60F:D270102EUR10,00" in data
    assert parse_mt940(data) == [s]


def test_ing_layout() -> None:
    [s] = parse_statement(ING_LIKE)
    assert (s.account_iban, s.currency, s.statement_id, s.opening_balance_cents, s.closing_balance_cents) == (
        "NL69INGB0123456789",
        "EUR",
        "00327",
        100_000,
        98_750,
    )
    [e] = s.entries
    assert (e.amount_cents, e.credit_debit, e.bank_reference, e.entry_reference) == (
        1_250,
        "DBIT",
        "00000000001005",
        "EREF",
    )
    assert e.details == (
        TxDetail(
            end_to_end_id="P2026112201-000001",
            counterparty_name="Rijwielhandel De Spaak",
            counterparty_iban="NL35ABNA0001000000",
            remittance="Uitbetaling P2026112201",
        ),
    )
    assert s.balance_problem() is None


@pytest.mark.parametrize(
    ("envelope", "trailer"),
    [
        (b"", b""),
        (b"{1:F01INGBNL2AXXXX0000000000}{2:I940INGBNL2AXXXXN}{4:\r\n", b"}\r\n"),
        (b":940:\r\n", b""),
        (b"ABNANL2A\r\n940\r\nABNANL2A\r\n", b""),
        (b"\xef\xbb\xbf\r\n", b""),
    ],
    ids=["bare", "swift-blocks", "rabobank", "abn-amro", "bom"],
)
def test_envelopes(envelope: bytes, trailer: bytes) -> None:
    data = envelope + ING_LIKE + trailer
    [s] = parse_statement(data)
    assert s.account_iban == "NL69INGB0123456789"
    two = parse_statement(
        data + envelope.removeprefix(b"\xef\xbb\xbf") + ING_LIKE.replace(b"P2611230", b"P2611240") + trailer
    )
    assert [x.message_id for x in two] == ["P261123000000001", "P261124000000001"]


@pytest.mark.parametrize(
    ("account", "iban", "currency"),
    [
        (b"NL69INGB0123456789EUR", "NL69INGB0123456789", "EUR"),
        (b"NL34RABO0142623393 EUR", "NL34RABO0142623393", "EUR"),
        (b"NL34 RABO 0142 6233 93", "NL34RABO0142623393", "EUR"),
        (b"RABONL2U/0142623393", "NL34RABO0142623393", "EUR"),
        (b"INGBNL2A 0123456789 EUR", "NL69INGB0123456789", "EUR"),
    ],
)
def test_account_forms(account: bytes, iban: str, currency: str) -> None:
    [s] = parse_mt940(ING_LIKE.replace(b"NL69INGB0123456789EUR", account))
    assert (s.account_iban, s.currency) == (iban, currency)


def test_a_bare_account_number_without_a_bank_is_refused() -> None:
    with pytest.raises(InvalidStatement, match="no IBAN"):
        parse_mt940(ING_LIKE.replace(b"NL69INGB0123456789EUR", b"0123456789"))


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (
            b"/EREF/E1//CNTP/NL35ABNA0001000000//Naam//REMI/STRD/CUR/1234567890123456/",
            TxDetail(
                end_to_end_id="E1",
                counterparty_name="Naam",
                counterparty_iban="NL35ABNA0001000000",
                structured_reference="1234567890123456",
            ),
        ),
        (
            b"/RTRN/AC04//EREF/P2026112201-000002//CNTP/NL20INGB0001234567//Club//",
            TxDetail(
                end_to_end_id="P2026112201-000002",
                counterparty_name="Club",
                counterparty_iban="NL20INGB0001234567",
                return_reason="AC04",
                original_end_to_end_id="P2026112201-000002",
            ),
        ),
        (
            b"/TRTP/SEPA OVERBOEKING/IBAN/NL35ABNA0001000000/BIC/ABNANL2A/NAME/FIETS BV/REMI/FACTUUR 12/EREF/E9",
            TxDetail(
                end_to_end_id="E9",
                counterparty_name="FIETS BV",
                counterparty_iban="NL35ABNA0001000000",
                remittance="FACTUUR 12",
            ),
        ),
        (
            b"/ORDP//NAME/J. Jansen/ADDR/Straat 1/REMI/Bijdrage t/m december/ISDT/2026-11-23",
            TxDetail(counterparty_name="J. Jansen", remittance="Bijdrage t/m december"),
        ),
        (
            b"/REMI//CDTRREFTP//CD/SCOR/ISSR/ISO/CDTRREF/RF18539007547034/ULTD//NAME/Not the counterparty",
            TxDetail(structured_reference="RF18539007547034"),
        ),
        (
            b"SEPA OVERBOEKING                 IBAN: NL35ABNA0001000000\r\n"
            b"BIC: ABNANL2A                    NAAM: FIETS BV\r\n"
            b"OMSCHRIJVING: FACTUUR 12\r\nKENMERK: P2026112201-000003",
            TxDetail(
                end_to_end_id="P2026112201-000003",
                counterparty_name="FIETS BV",
                counterparty_iban="NL35ABNA0001000000",
                remittance="FACTUUR 12",
            ),
        ),
        (b"BEA   NR:MA1402   11.01.14/12.00 WINKEL", TxDetail(remittance="BEA NR:MA1402 11.01.14/12.00 WINKEL")),
    ],
    ids=["ing-structured", "ing-return", "abn-structured", "rabo-ordp", "rabo-cdtrref", "abn-free-text", "card"],
)
def test_details_variants(info: bytes, expected: TxDetail) -> None:
    data = ING_LIKE.split(b":86:")[0] + b":86:" + info + b"\r\n:62F:C261123EUR987,50\r\n-\r\n"
    [s] = parse_mt940(data)
    assert s.entries[0].details == (expected,)


def test_pref_is_the_batch_pmtinfid() -> None:
    data = ING_LIKE.replace(b"/EREF/P2026112201-000001//CNTP", b"/PREF/P2026112201-B1//CNTP")
    [s] = parse_mt940(data)
    assert s.entries[0].batch is not None
    assert s.entries[0].batch.pmt_inf_id == "P2026112201-B1"


def test_latin1_is_read_when_utf8_fails() -> None:
    data = ING_LIKE.replace(b"Rijw\r\nielhandel", "Caf\u00e9 \u00d8rsted".encode("latin-1"))
    [s] = parse_mt940(data)
    assert s.entries[0].details[0].counterparty_name == "Caf\u00e9 \u00d8rsted De Spaak"


@pytest.mark.parametrize(
    ("before", "after", "match"),
    [
        (b"D12,50NTRF", b"D12.50NTRF", r"line 5: :61: is not a statement line"),
        (b"D12,50NTRF", b"D12,505NTRF", r"line 5: :61:: more than two decimals"),
        (b"D12,50NTRF", b"D12;50NTRF", r"line 5: :61: is not a statement line"),
        (b":60F:C261122EUR1000,00", b":60F:C261122EUR1.000,00", r"line 4: :60F: is not a balance"),
        (b":60F:C261122EUR1000,00", b":60F:C261122USD1000,00", "the opening balance is in USD, the account in EUR"),
        (b":61:2611231123D", b":61:2613311123D", r"line 5: :61:: '261331' is not a date"),
        (b":62F:C261123EUR987,50\r\n", b"", "lacks its :60F: opening or :62F: closing balance"),
        (b":20:P261123000000001\r\n", b"{1:F01INGBNL2AXXXX0000000000}\r\n", "before any :20:"),
        (b"/EREF/P2026112201", b"/EREF/P2026\x00112201", r"line 7: a NUL byte"),
    ],
)
def test_bad_input_names_the_line_and_the_rule(before: bytes, after: bytes, match: str) -> None:
    data = ING_LIKE.replace(before, after)
    assert data != ING_LIKE
    with pytest.raises(InvalidStatement, match=match):
        parse_mt940(data)


def test_text_outside_a_statement_is_refused() -> None:
    with pytest.raises(InvalidStatement, match="outside any MT940 statement"):
        parse_mt940(ING_LIKE + b"hello there\r\n")


def test_not_mt940() -> None:
    with pytest.raises(UnsupportedStatement, match="not an MT940 file"):
        parse_mt940(b"Datum,Naam,Rekening,Bedrag\r\n")


def test_size_limit() -> None:
    with pytest.raises(StatementTooLarge):
        parse_mt940(ING_LIKE, max_bytes=100)


def test_only_cr_and_lf_end_lines() -> None:
    # 0x85 is NEL in latin-1; str.splitlines would cut the :86: there.
    data = ING_LIKE.replace(b"Rijw\r\nielhandel", b"Caf\xe9\x85 Rijwielhandel")
    [s] = parse_mt940(data)
    assert s.entries[0].details[0].counterparty_name == "Caf\u00e9\x85 Rijwielhandel De Spaak"
