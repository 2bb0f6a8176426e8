"""Two year-end sweeps (`settlement vouchers expire`) at once, on vouchers of two sponsors.

Each sweep claims a batch of vouchers (SKIP LOCKED) and closes them one by one in
one transaction, each close booking on its sponsor's ledger and keeping that
ledger's lock until commit. Forced into the bad order: sweep A holds ledger 1 and
needs ledger 2 while sweep B holds ledger 2 and needs ledger 1. Neither may fail
with a deadlock: both finish, and every voucher is expired once.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg

from settlement import db
from settlement.vouchers.flows import expire_vouchers
from tests.api.conftest import World, assert_ledgers_balanced
from tests.api.test_vouchers_api import issue


async def _wait_blocked(observer: Any, pid: int) -> None:
    for _ in range(1_000):
        if await observer.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the sweep never waited on a lock")


async def test_two_sweeps_over_two_ledgers_do_not_deadlock(client: Any, world: World, db_dsn: str) -> None:
    kind = dict(fund_id=world.ids["kindpakket"])
    fiets = dict(fund_id=world.ids["fiets"], amount=10_000)
    # in valid_until order: A claims v1 (gemeente), v2 (leergeld); B claims v3 (leergeld), v4 (gemeente)
    v1 = await issue(client, world, **kind)
    v2 = await issue(client, world, "leergeld_validator", **fiets)
    v3 = await issue(client, world, "leergeld_validator", **fiets)
    v4 = await issue(client, world, **kind)
    setup = await db.connect(db_dsn)
    observer = await db.connect(db_dsn)
    a, b = await db.connect(db_dsn), await db.connect(db_dsn)
    try:
        day = date.today() - timedelta(days=400)
        for i, v in enumerate((v1, v2, v3, v4)):
            await setup.execute(
                "UPDATE vouchers SET valid_from = $2, valid_until = $2 WHERE id = $1",
                uuid.UUID(v["id"]),
                day + timedelta(days=i),
            )
        ledgers = {
            k: await setup.fetchval("SELECT ledger_id FROM sponsors WHERE organisation_id = $1", world.ids[k])
            for k in ("gemeente", "leergeld")
        }
        today = day + timedelta(days=4)  # only these four are due on the sweep's day
        blocker = setup.transaction()
        await blocker.start()
        await setup.execute("SELECT 1 FROM ledgers WHERE id = $1 FOR UPDATE", ledgers["gemeente"])

        async def sweep(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                return await expire_vouchers(conn, today=today, limit=2)

        sweep_a = asyncio.ensure_future(sweep(a))
        await _wait_blocked(observer, a.get_server_pid())  # claimed v1, v2; waits for the gemeente ledger
        sweep_b = asyncio.ensure_future(sweep(b))
        await _wait_blocked(observer, b.get_server_pid())  # claimed v3, v4; holds leergeld, waits for gemeente
        await blocker.rollback()
        results = await asyncio.gather(sweep_a, sweep_b, return_exceptions=True)
        assert results == [2, 2], results
        states = await setup.fetch(
            "SELECT state FROM vouchers WHERE id = ANY($1::uuid[])", [uuid.UUID(v["id"]) for v in (v1, v2, v3, v4)]
        )
        assert [r["state"] for r in states] == ["expired"] * 4
    finally:
        for c in (setup, observer, a, b):
            await c.close()
    await assert_ledgers_balanced(db_dsn)
