"""Amounts, fingerprints and balances: the records' own rules."""

from __future__ import annotations

import re

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciliation import parse_statement
from reconciliation.model import MAX_AMOUNT_CENTS, Entry, cents
from reconciliation.parse import sniff
from reconciliation.synth import build_camt053, build_camt054, build_mt940
from tests.reconciliation.helpers import DAY, as_mt940, payout_day


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12.50", 1250), ("12.5", 1250), ("0.05", 5), ("100", 10000), ("100.", 10000), ("12.500", 1250), ("0", 0)],
)
def test_cents(text: str, expected: int) -> None:
    assert cents(text) == expected


@pytest.mark.parametrize(
    "text", ["12.345", "12.5000001", "1,5", "-1.00", "+1.00", " 1", "1_0", "١٢.٣٤", "", ".5", "1e3"]
)
def test_cents_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        cents(text)


def test_cents_bounds() -> None:
    assert cents("9999999999999.99") == 999_999_999_999_999
    with pytest.raises(ValueError, match="out of range"):
        cents("10000000000000.01")
    assert MAX_AMOUNT_CENTS == 10**15


@given(st.integers(0, MAX_AMOUNT_CENTS))
def test_cents_reads_what_we_write(c: int) -> None:
    assert cents(f"{c // 100}.{c % 100:02d}") == c
    assert cents(f"{c // 100},{c % 100:02d}", decimal_mark=",") == c


def test_the_same_booking_has_the_same_fingerprint_in_every_format() -> None:
    s = payout_day()
    [camt053] = parse_statement(build_camt053(s))
    [camt054] = parse_statement(build_camt054(s, "camt.054.001.08"))
    [mt940] = parse_statement(build_mt940(as_mt940(s)))
    assert camt053.fingerprints() == camt054.fingerprints()
    assert len(set(camt053.fingerprints())) == len(s.entries)
    # The first EndToEndId is part of the key, and MT940 cannot list a batch's
    # transactions: the batch entry (0) is the one that differs across formats.
    same = [a == b for a, b in zip(camt053.fingerprints(), mt940.fingerprints(), strict=True)]
    assert same == [False, True, True, True, True]


def test_an_overlapping_statement_repeats_fingerprints_only_for_the_overlap() -> None:
    s = payout_day()
    later = msgspec.structs.replace(s, statement_id="next", entries=s.entries[3:])
    assert set(s.fingerprints()) & set(later.fingerprints()) == set(later.fingerprints())


def test_without_a_bank_reference_identical_bookings_are_told_apart_by_occurrence() -> None:
    charge = Entry(index=0, amount_cents=500, credit_debit="DBIT", booking_date=DAY, value_date=DAY)
    twice = msgspec.structs.replace(
        payout_day(), entries=(charge, msgspec.structs.replace(charge, index=1, additional_info="other text"))
    )
    once = msgspec.structs.replace(payout_day(), statement_id="intraday", entries=(charge,))
    a, b = twice.fingerprints()
    assert a != b
    # A notification that saw only the first one shares its key with the first, not the second.
    assert once.fingerprints() == (a,)


def test_a_bank_reference_makes_the_fingerprint_independent_of_position() -> None:
    s = payout_day()
    e = s.entries[0]
    assert e.fingerprint("NL91ABNA0417164300") != e.fingerprint("NL20INGB0001234567")
    # the same booking, first in one statement and last in another: one key
    moved = msgspec.structs.replace(s, entries=(*s.entries[1:], e))
    assert moved.fingerprints()[-1] == s.fingerprints()[0]
    # the same reference twice in one statement (NOTPROVIDED on two equal charges): two keys
    twice = msgspec.structs.replace(s, entries=(e, e))
    first, second = twice.fingerprints()
    assert first == s.fingerprints()[0] and second != first


def test_balance_problem_says_by_how_much() -> None:
    s = payout_day()
    assert s.balance_problem() is None
    off = msgspec.structs.replace(s, closing_balance_cents=s.closing_balance_cents + 1)  # type: ignore[operator]
    assert off.balance_problem() is not None
    assert "difference 1 cents" in off.balance_problem()  # type: ignore[operator]


def test_pending_entries_do_not_count_towards_the_balance() -> None:
    s = payout_day()
    pending = msgspec.structs.replace(s.entries[4], status="PDNG")
    assert msgspec.structs.replace(s, entries=(*s.entries[:4], pending)).entries_total_cents == (
        s.entries_total_cents + 795
    )


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b'<?xml version="1.0"?><Document/>', "camt"),
        (b"\xef\xbb\xbf  <Document/>", "camt"),
        (b":20:X\r\n", "mt940"),
        (b"{1:F01INGBNL2AXXXX0000000000}", "mt940"),
        (b":940:\r\n:20:X", "mt940"),
        (b"ABNANL2A\r\n940\r\nABNANL2A\r\n:20:X", "mt940"),
    ],
)
def test_sniff(data: bytes, kind: str) -> None:
    assert sniff(data) == kind
