"""The payout-day fixtures: a batch booking, a single booking, a return (AC04),
an RF top-up and an unknown charge, as committed camt and MT940 files.

The files are synthesised from ``helpers.payout_day`` and pretty-printed;
each test checks the committed bytes still equal what the writer produces,
so the fixtures cannot drift from the records they claim to hold.
"""

from __future__ import annotations

import msgspec
import pytest

from reconciliation import match_entries, parse_statement, validate
from reconciliation.model import Statement
from reconciliation.synth import build_camt053, build_camt054, build_mt940
from tests.reconciliation.helpers import (
    BLOCKS,
    FIXTURES,
    FUND,
    FUND_REF,
    PAYMENTS,
    TOP_UPS,
    as_mt940,
    fixture,
    payout_day,
    pretty,
    shared_xsd_validate,
)

CAMT = [
    ("payout-day.camt.053.001.02.xml", "camt.053.001.02"),
    ("payout-day.camt.053.001.08.xml", "camt.053.001.08"),
    ("payout-day.camt.054.001.02.xml", "camt.054.001.02"),
    ("payout-day.camt.054.001.08.xml", "camt.054.001.08"),
]


def _camt(version: str) -> tuple[bytes, Statement]:
    if version.startswith("camt.053"):
        s = payout_day()
        return pretty(build_camt053(s, version)), s  # type: ignore[arg-type]
    s = msgspec.structs.replace(payout_day("camt.054"), opening_balance_cents=None, closing_balance_cents=None)
    return pretty(build_camt054(s, version)), s  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "version"), CAMT)
def test_camt_fixture_is_valid_and_parses_to_the_payout_day(name: str, version: str) -> None:
    data, expected = _camt(version)
    stored = fixture(name, data)
    validate(stored, version)
    [statement] = parse_statement(stored)
    assert statement == expected


@pytest.mark.parametrize(("name", "version"), CAMT)
def test_camt_fixture_is_valid_against_the_third_party_xsd(name: str, version: str) -> None:
    shared_xsd_validate(fixture_bytes(name), version)


def test_mt940_fixture_parses_to_what_mt940_carries() -> None:
    expected = as_mt940(payout_day())
    stored = fixture("payout-day.mt940", build_mt940(expected))
    [statement] = parse_statement(stored)
    assert statement == expected


@pytest.mark.parametrize("name", [n for n, _ in CAMT] + ["payout-day.mt940"])
def test_every_fixture_matches_the_same_way(name: str) -> None:
    [statement] = parse_statement(fixture_bytes(name))
    decisions = match_entries(
        statement.entries, expected_payments=PAYMENTS, expected_blocks=BLOCKS, top_up_references=TOP_UPS
    )
    assert [(d.kind, d.payment_ids, d.block_id) for d in decisions] == [
        ("batch", ("pay-1", "pay-2", "pay-3"), "block-1"),
        ("payment", ("pay-4",), None),
        ("return", ("pay-2",), None),
        ("top_up", (), None),
        ("unmatched", (), None),
    ]
    assert decisions[2].return_reasons == ("AC04",)
    assert (decisions[3].top_up, decisions[3].reference) == (FUND, FUND_REF)
    assert decisions[4].reason == "no EndToEndId or PmtInfId to match on"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
