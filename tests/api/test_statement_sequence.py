"""Day statements in the bank's numbering: a skipped number is a missing statement
even when the balances meet, the same number again with other content is a
corrected statement, and numbers that are no counters are left alone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest

from reconciliation.model import Entry, Statement
from reconciliation.synth import build_camt053, build_camt054, build_mt940
from tests.api.test_statements_api import GEMEENTE_IBAN, OPENING, xml
from tests.world import World, assert_ledgers_balanced, ledger_state

START = date(2026, 11, 23)


def line(i: int, cents: int, ref: str, day: date) -> Entry:
    """A line no rule matches (it waits in the queue): enough to move the balance."""
    return Entry(
        index=i,
        amount_cents=abs(cents),
        credit_debit="CRDT" if cents > 0 else "DBIT",
        booking_date=day,
        value_date=day,
        bank_reference=ref,
    )


def day_statement(
    day: date, opening: int, moves: list[int], *, kind: str = "camt.053", sid: str | None = None, **numbers: Any
) -> Statement:
    entries = tuple(line(i, c, f"REF-{day:%m%d}-{i}", day) for i, c in enumerate(moves))
    return Statement(
        kind=kind,  # type: ignore[arg-type]
        message_id=f"MSG-{day:%Y%m%d}",
        statement_id=sid or f"S-{day:%Y%m%d}",
        account_iban=GEMEENTE_IBAN,
        currency="EUR",
        created_at=datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(hours=6),
        opening_balance_cents=opening,
        closing_balance_cents=opening + sum(moves),
        statement_date=day,
        entries=entries,
        **numbers,
    )


def build(s: Statement) -> bytes:
    return build_mt940(s) if s.kind == "mt940" else build_camt053(s)


async def post(client: Any, world: World, s: Statement) -> Any:
    return await client.post("/v1/statements", content=build(s), headers=xml(world))


def numbered(kind: str, n: int) -> dict[str, Any]:
    if kind == "legal":
        return {"legal_sequence": n}
    if kind == "electronic":
        return {"electronic_sequence": n}
    return {"kind": "mt940", "sid": f"{n:05d}"}


@pytest.mark.parametrize("kind", ["electronic", "legal", "mt940"])
async def test_a_skipped_number_is_a_gap_even_when_the_balances_meet(
    client: Any, world: World, db_dsn: str, kind: str
) -> None:
    """Statement 104 had a credit and a debit of the same amount: 105 opens where 103
    closed, so only the number shows that 104 is missing."""
    days = [START + timedelta(days=i) for i in range(5)]
    s101 = day_statement(days[0], OPENING, [5_00], **numbered(kind, 101))
    s102 = day_statement(days[1], s101.closing_balance_cents or 0, [-2_00], **numbered(kind, 102))
    s103 = day_statement(days[2], s102.closing_balance_cents or 0, [7_00], **numbered(kind, 103))
    s104 = day_statement(days[3], s103.closing_balance_cents or 0, [40_00, -40_00], **numbered(kind, 104))
    s105 = day_statement(days[4], s104.closing_balance_cents or 0, [1_00], **numbered(kind, 105))
    assert s105.opening_balance_cents == s103.closing_balance_cents
    for s in (s101, s102, s103):
        r = await post(client, world, s)
        assert r.status_code == 200, r.text
    state = await ledger_state(db_dsn)
    r = await post(client, world, s105)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "statement_gap"
    assert "103" in r.json()["detail"] and "105" in r.json()["detail"]
    assert await ledger_state(db_dsn) == state
    # the missing one first, then the rest: the books match the bank
    for s in (s104, s105):
        r = await post(client, world, s)
        assert r.status_code == 200, r.text
        # nothing matched: the lines wait in the queue, the bank account holds the opening balance
        assert r.json()["statements"][0]["balance_difference"] == (s.closing_balance_cents or 0) - OPENING
    await assert_ledgers_balanced(db_dsn)


async def test_the_same_number_again_with_other_content_is_a_corrected_statement(
    client: Any, world: World, db_dsn: str
) -> None:
    """The bank re-issues statement 102 under another id with one more line: booked
    on top of the first it would count its lines twice; refused, nothing changes."""
    s101 = day_statement(START, OPENING, [5_00], electronic_sequence=101)
    s102 = day_statement(START + timedelta(days=1), OPENING + 5_00, [-2_00], electronic_sequence=102)
    for s in (s101, s102):
        assert (await post(client, world, s)).status_code == 200
    state = await ledger_state(db_dsn)
    corrected = day_statement(
        START + timedelta(days=1), OPENING + 5_00, [-2_00, -1_00], electronic_sequence=102, sid="S-CORRECTED"
    )
    r = await post(client, world, corrected)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "statement_differs"
    assert await ledger_state(db_dsn) == state
    # the same statement 102 again, in the other camt version (another file): changes nothing
    r = await client.post("/v1/statements", content=build_camt053(s102, "camt.053.001.08"), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["statements"][0]["entries_new"] == 0
    assert await ledger_state(db_dsn) == state


@pytest.mark.parametrize(
    ("last", "first_of_year", "missing_first"),
    [(26_250, 27_001, 27_002), (250, 1, 2), (1_250, 1_251, 1_252)],
    ids=["YYNNN", "restart_at_1", "running_on"],
)
async def test_numbers_may_restart_with_the_year_but_not_skip_its_first(
    client: Any, world: World, db_dsn: str, last: int, first_of_year: int, missing_first: int
) -> None:
    d1, d2, d3 = date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 4)
    s1 = day_statement(d1, OPENING, [5_00], legal_sequence=last - 1)
    s2 = day_statement(d2, OPENING + 5_00, [3_00], legal_sequence=last)
    for s in (s1, s2):
        assert (await post(client, world, s)).status_code == 200
    skipped = day_statement(d3 + timedelta(days=1), OPENING + 8_00, [1_00], legal_sequence=missing_first)
    r = await post(client, world, skipped)
    assert r.status_code == 409 and r.json()["code"] == "statement_gap", r.text
    first = day_statement(d3, OPENING + 8_00, [], legal_sequence=first_of_year)
    r = await post(client, world, first)
    assert r.status_code == 200, r.text
    assert (await post(client, world, skipped)).status_code == 200


async def test_numbers_that_are_dates_or_zero_are_no_counters(client: Any, world: World, db_dsn: str) -> None:
    """ABN AMRO's MT940 numbers its statements by day and month (:28:1301/1), de
    Volksbank's ElctrncSeqNb is the year and day of the file (26098), ING and
    Rabobank send 0: none of them is a skipped statement when a day has none."""
    d = [date(2026, 1, 13), date(2026, 1, 14), date(2026, 1, 16), date(2026, 1, 20)]
    balance = OPENING
    for day in d:
        s = day_statement(day, balance, [1_00], kind="mt940", sid=f"{day:%d%m}/1")
        r = await post(client, world, s)
        assert r.status_code == 200, r.text
        balance = s.closing_balance_cents or 0
    for day in (date(2026, 1, 21), date(2026, 1, 22), date(2026, 1, 26)):
        s = day_statement(day, balance, [1_00], kind="mt940", sid="00000")
        assert (await post(client, world, s)).status_code == 200
        balance = s.closing_balance_cents or 0
    for day in (date(2026, 4, 7), date(2026, 4, 8), date(2026, 4, 9), date(2026, 4, 13)):
        made = day + timedelta(days=1)  # the file is made the next morning, and named after that day
        s = day_statement(day, balance, [1_00], electronic_sequence=int(f"{made:%y}{made.timetuple().tm_yday:03d}"))
        r = await post(client, world, s)
        assert r.status_code == 200, r.text
        balance = s.closing_balance_cents or 0


async def test_notifications_keep_their_own_numbers(client: Any, world: World, db_dsn: str) -> None:
    """camt.054 is no day statement: its numbers are another series and no gap in the statements'."""
    s101 = day_statement(START, OPENING, [5_00], electronic_sequence=101)
    s102 = day_statement(START + timedelta(days=1), OPENING + 5_00, [-2_00], electronic_sequence=102)
    s103 = day_statement(START + timedelta(days=2), OPENING + 3_00, [1_00], electronic_sequence=103)
    for s in (s101, s102):
        assert (await post(client, world, s)).status_code == 200
    note = msgspec.structs.replace(
        day_statement(START + timedelta(days=2), 0, [1_00], electronic_sequence=7, sid="NTF-7"), kind="camt.054"
    )
    r = await client.post("/v1/statements", content=build_camt054(note), headers=xml(world))
    assert r.status_code == 200, r.text
    r = await post(client, world, s103)
    assert r.status_code == 200, r.text
    assert r.json()["statements"][0]["entries_duplicate"] == 1


async def test_a_long_statement_number_is_kept(client: Any, world: World, db_dsn: str) -> None:
    """ElctrncSeqNb is an ISO Number of up to 18 digits (e.g. YYYY + a ten-digit counter)."""
    for i, n in enumerate((2026_0000000101, 2026_0000000102)):
        s = day_statement(START + timedelta(days=i), OPENING + 5_00 * i, [5_00], electronic_sequence=n)
        r = await post(client, world, s)
        assert r.status_code == 200, r.text
    skipped = day_statement(START + timedelta(days=3), OPENING + 10_00, [5_00], electronic_sequence=2026_0000000104)
    r = await post(client, world, skipped)
    assert r.status_code == 409 and r.json()["code"] == "statement_gap", r.text
