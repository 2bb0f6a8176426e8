"""A connection killed in the middle of a batch leaves nothing partial, and the
same batch retried afterwards applies exactly once.

The batch is stopped at a known point by a second connection holding a lock
it needs, and killed (pg_terminate_backend) while it waits there:

- ``accounts``: before it writes anything, while locking the accounts;
- ``copy``: half-way through writing, inside the COPY of journal entries
  (the blocker inserted, uncommitted, a row with the batch's last entry id,
  so the COPY waits on that unique key after the rows before it went in);
- ``one_statement``: the same, inside ``ledger_write_small`` (a small batch's
  one call that writes everything).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from ledger.engine import apply_batch
from ledger.verify import verify_ledger
from settlement import db
from tests.ledger.helpers import apply, assert_balanced, bal, counts, entry, pending, posted, setup_ledger

N = 5_000


async def wait_until_blocked(observer: Any, pid: int, query_start: str) -> None:
    for _ in range(1_000):
        row = await observer.fetchrow("SELECT wait_event_type, query FROM pg_stat_activity WHERE pid = $1", pid)
        if row is not None and row["wait_event_type"] == "Lock" and row["query"].lstrip().startswith(query_start):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the batch never blocked at {query_start!r}")


@pytest.mark.parametrize("where", ["accounts", "copy", "one_statement"])
async def test_killed_mid_batch_leaves_nothing_and_retry_applies_once(db_dsn: str, where: str) -> None:
    main = await db.connect(db_dsn)
    lid, a = await setup_ledger(main)
    other, _ = await setup_ledger(main)
    await apply(main, entry(lid, posted(a["funding"], a["fund"], 10**9)))
    before = [await bal(main, x) for x in a.values()]
    # each entry gives a voucher 2 cents and reserves 1 of them: two transfers and a hold
    batch = [
        entry(lid, posted(a["fund"], a["voucher"], 2), pending(a["voucher"], a["payable"], 1, timeout_s=3600))
        for _ in range(N if where != "one_statement" else 10)  # 20 transfers: the one-statement write
    ]

    n = len(batch)
    blocker = await db.connect(db_dsn)
    blocking = blocker.transaction()
    await blocking.start()
    if where == "accounts":
        await blocker.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", a["voucher"])
        query_start = "SELECT * FROM ledger_prepare_batch"
    else:
        await blocker.execute(
            "INSERT INTO journal_entries (id, ledger_id, seq, description, value_date, created_at, content_hash, "
            "prev_hash, hash) VALUES ($1, $2, 1, 'blocker', current_date, now(), '', '', '')",
            batch[-1].id,
            other,
        )
        query_start = "COPY" if where == "copy" else "SELECT ledger_write_small"

    victim = await db.connect(db_dsn)
    pid = victim.get_server_pid()

    async def run() -> None:
        async with victim.transaction():
            await apply_batch(victim, batch)

    task = asyncio.create_task(run())
    await wait_until_blocked(main, pid, query_start)
    assert await main.fetchval("SELECT pg_blocking_pids($1)", pid) == [blocker.get_server_pid()]
    assert await main.fetchval("SELECT pg_terminate_backend($1)", pid)
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError, OSError)):
        await task
    victim.terminate()
    await blocking.rollback()
    await blocker.close()

    # nothing partial: the grant is all there is
    assert await counts(main, lid) == (1, 1)
    assert await main.fetchval("SELECT count(*) FROM journal_entries") == 1
    assert await main.fetchval("SELECT count(*) FROM holds") == 0
    assert await main.fetchval("SELECT head_seq FROM ledgers WHERE id = $1", lid) == 1
    assert [await bal(main, x) for x in a.values()] == before
    assert (await verify_ledger(main, lid)).ok

    # the retry, on a fresh connection, applies every entry exactly once
    retry = await db.connect(db_dsn)
    try:
        first = await apply(retry, *batch)
        assert {r.result for r in first} == {"ok"}
        assert [r.seq for r in first] == list(range(2, n + 2))
        again = await apply(retry, *batch)
        assert {r.result for r in again} == {"exists"}
        assert [r.seq for r in again] == [r.seq for r in first]
    finally:
        await retry.close()
    assert await counts(main, lid) == (n + 1, 2 * n + 1)
    assert await bal(main, a["fund"]) == (2 * n, 10**9, 0, 0)
    assert await bal(main, a["voucher"]) == (0, 2 * n, n, 0)
    assert await bal(main, a["payable"]) == (0, 0, 0, n)
    assert await main.fetchval("SELECT count(*) FROM holds WHERE ledger_id = $1 AND state = 'pending'", lid) == n
    await assert_balanced(main, lid)
    report = await verify_ledger(main, lid)
    assert (report.ok, report.entries) == (True, n + 1)
    await main.close()
