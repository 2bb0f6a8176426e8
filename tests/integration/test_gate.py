"""settlement.gate: bookings on one ledger queue in the process, not in PostgreSQL.

Real PostgreSQL, real pool, the API's ``in_transaction``. The gate is a
performance measure; these tests pin down what keeps it safe: it is held
until the transaction has committed or rolled back, it is never waited for
outside a transaction's gates or by a second booking of one transaction, and
a wait is bounded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ledger.engine import apply_batch
from settlement import db, gate
from settlement.errors import Unavailable
from settlement.tx import in_transaction
from tests.ledger.helpers import entry, posted, setup_ledger


async def _ledgers(db_dsn: str) -> tuple[tuple[int, dict[str, int]], tuple[int, dict[str, int]]]:
    conn = await db.connect(db_dsn)
    try:
        return await setup_ledger(conn), await setup_ledger(conn)
    finally:
        await conn.close()


async def _count(pool: Any, lid: int) -> int:
    async with pool.acquire() as conn:
        n: int = await conn.fetchval("SELECT count(*) FROM journal_entries WHERE ledger_id = $1", lid)
        return n


async def test_the_second_booking_waits_in_the_process_until_the_first_commits(pool: Any, db_dsn: str) -> None:
    (lid, a), _ = await _ledgers(db_dsn)
    first_in, release = asyncio.Event(), asyncio.Event()
    seen_by_second: list[int] = []

    async def first(conn: Any) -> None:
        await gate.enter([lid])
        first_in.set()
        await release.wait()
        await apply_batch(conn, [entry(lid, posted(a["funding"], a["fund"], 100))])

    async def second(conn: Any) -> None:
        await gate.enter([lid])
        # the first transaction has committed by now: its entry is visible
        seen_by_second.append(await conn.fetchval("SELECT count(*) FROM journal_entries WHERE ledger_id = $1", lid))
        await apply_batch(conn, [entry(lid, posted(a["funding"], a["fund"], 50))])

    t1 = asyncio.create_task(in_transaction(pool, first))
    await first_in.wait()
    t2 = asyncio.create_task(in_transaction(pool, second))
    try:
        await asyncio.sleep(0.3)
        assert not t2.done() and seen_by_second == []
        async with pool.acquire() as conn:  # it waits here, not on a row lock in PostgreSQL
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        assert waiting == 0
    finally:
        release.set()
        await asyncio.wait_for(asyncio.gather(t1, t2), 10)
    assert seen_by_second == [1]
    assert await _count(pool, lid) == 2


async def test_a_rollback_releases_the_gate(pool: Any, db_dsn: str) -> None:
    (lid, a), _ = await _ledgers(db_dsn)

    async def refused(conn: Any) -> None:
        await gate.enter([lid])
        await apply_batch(conn, [entry(lid, posted(a["funding"], a["fund"], 100))])
        raise RuntimeError("the flow fails after booking")

    with pytest.raises(RuntimeError):
        await in_transaction(pool, refused)

    async def later(conn: Any) -> None:
        await gate.enter([lid])
        await apply_batch(conn, [entry(lid, posted(a["funding"], a["fund"], 7))])

    await asyncio.wait_for(in_transaction(pool, later), 5)
    assert await _count(pool, lid) == 1  # the refused one rolled back, the later one is in


async def test_no_waiting_outside_gates_or_for_a_transactions_second_booking(pool: Any, db_dsn: str) -> None:
    (lid, a), (lid2, b) = await _ledgers(db_dsn)
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder(conn: Any) -> None:
        await gate.enter([lid2])
        holding.set()
        await release.wait()

    t = asyncio.create_task(in_transaction(pool, holder))
    await holding.wait()
    try:
        # outside in_transaction (CLI, jobs, tests): no gate at all
        await asyncio.wait_for(gate.enter([lid2]), 1)

        # a transaction's second booking passes straight through (it holds ledger locks already)
        async def two_bookings(conn: Any) -> None:
            await gate.enter([lid])
            await apply_batch(conn, [entry(lid, posted(a["funding"], a["fund"], 1))])
            await gate.enter([lid2])
            await apply_batch(conn, [entry(lid2, posted(b["funding"], b["fund"], 2))])

        await asyncio.wait_for(in_transaction(pool, two_bookings), 5)
    finally:
        release.set()
        await t
    assert (await _count(pool, lid), await _count(pool, lid2)) == (1, 1)


async def test_a_wait_is_bounded_and_changes_nothing(pool: Any, db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (lid, a), _ = await _ledgers(db_dsn)
    monkeypatch.setattr(gate, "GATE_TIMEOUT_S", 0.2)
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder(conn: Any) -> None:
        await gate.enter([lid])
        holding.set()
        await release.wait()

    async def writer(conn: Any) -> None:
        await conn.execute("INSERT INTO ledgers (name, currency) VALUES ('written before the gate', 'EUR')")
        await gate.enter([lid])
        await apply_batch(conn, [entry(lid, posted(a["funding"], a["fund"], 1))])

    t = asyncio.create_task(in_transaction(pool, holder))
    await holding.wait()
    try:
        with pytest.raises(Unavailable) as exc:
            await in_transaction(pool, writer)
        assert exc.value.code == "too_busy"
    finally:
        release.set()
        await t
    assert await _count(pool, lid) == 0
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledgers WHERE name = 'written before the gate'") == 0
