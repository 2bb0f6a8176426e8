"""Day totals: a trial balance read from roll-ups equals one summed from the transfers, on every day."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ledger.engine import apply_batch
from ledger.rollup import balances_on, local_day, roll_up, start_of
from settlement import db
from tests.ledger.helpers import apply, entry, posted, setup_ledger

DAYS = [date(2026, 1, 1) + timedelta(days=i) for i in range(0, 40, 3)]


async def _direct(conn: Any, ledger_id: int, day: date) -> dict[int, tuple[int, int]]:
    rows = await conn.fetch(
        "SELECT a.code, coalesce((SELECT sum(amount) FROM transfers t WHERE t.debit_account_id = a.id "
        "AND t.kind IN ('posted', 'post_pending') AND t.created_at < $2), 0)::bigint AS d, "
        "coalesce((SELECT sum(amount) FROM transfers t WHERE t.credit_account_id = a.id "
        "AND t.kind IN ('posted', 'post_pending') AND t.created_at < $2), 0)::bigint AS c "
        "FROM accounts a WHERE a.ledger_id = $1",
        ledger_id,
        start_of(day + timedelta(days=1)),
    )
    return {r["code"]: (r["d"], r["c"]) for r in rows}


async def test_rolled_up_balances_equal_the_transfers_on_every_day(conn: Any) -> None:
    lid, acct = await setup_ledger(conn)
    rng = random.Random(7)
    pairs = [("funding", "fund"), ("fund", "voucher"), ("voucher", "payable")]
    for _ in range(60):
        await apply(conn, entry(lid, posted(acct["funding"], acct["fund"], 1_000_000)))
        dr, cr = rng.choice(pairs)
        await apply(conn, entry(lid, posted(acct[dr], acct[cr], rng.randint(1, 500))))
    # spread the transfers over 40 days, behind the append-only triggers (as if recorded then)
    await conn.execute("SET session_replication_role = replica")
    await conn.execute(
        "UPDATE transfers SET created_at = $2::timestamptz + (n % 40) * interval '1 day' "
        "+ (n % 7) * interval '3 hours' WHERE ledger_id = $1",
        lid,
        datetime(2026, 1, 1, 0, 30, tzinfo=UTC),
    )
    await conn.execute("SET session_replication_role = DEFAULT")
    later = datetime(2026, 3, 1, tzinfo=UTC)

    # not rolled up, half rolled up, fully rolled up: the same answers
    for through in (None, date(2026, 1, 20), date(2026, 2, 20)):
        if through is not None:
            await roll_up(conn, lid, through=through, now=later)
        for day in DAYS:
            got = {b.code: (b.debits, b.credits) for b in await balances_on(conn, lid, day)}
            assert got == await _direct(conn, lid, day), (through, day)
            assert sum(d for d, _ in got.values()) == sum(c for _, c in got.values())
    # a second roll-up of the same days adds nothing
    assert await roll_up(conn, lid, through=date(2026, 2, 20), now=later) == 0


async def test_an_unfinished_day_is_not_rolled_up(conn: Any) -> None:
    lid, acct = await setup_ledger(conn)
    await apply(conn, entry(lid, posted(acct["funding"], acct["fund"], 5)))
    await roll_up(conn, lid)
    through = await conn.fetchval("SELECT through_day FROM ledger_rollups WHERE ledger_id = $1", lid)
    assert through < datetime.now(UTC).date()
    assert await conn.fetchval("SELECT count(*) FROM account_day_totals WHERE ledger_id = $1", lid) == 0
    # today's transfer still counts, from the tail
    today = {b.code: b.credits for b in await balances_on(conn, lid, datetime.now(UTC).date() + timedelta(days=1))}
    assert today["fund:F"] == 5


async def test_a_booking_still_committing_when_its_day_is_rolled_up_is_not_lost(db_dsn: str) -> None:
    """A transfer is stamped when its batch takes the ledger's lock, and counts from
    its commit, which may come after the margin: the roll-up of its day waits for it."""
    main, booker = await db.connect(db_dsn), await db.connect(db_dsn)
    try:
        lid, acct = await setup_ledger(main)
        booking = booker.transaction()
        await booking.start()
        [r] = await apply_batch(booker, [entry(lid, posted(acct["funding"], acct["fund"], 5))])
        assert r.result == "ok" and r.created_at is not None
        day = local_day(r.created_at)
        # the roll-up runs as if its day were long over (and its margin too)
        roll = asyncio.create_task(roll_up(main, lid, now=r.created_at + timedelta(days=1, hours=1)))
        for _ in range(500):
            if roll.done() or await booker.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", main.get_server_pid()
            ):
                break
            await asyncio.sleep(0.01)
        await booking.commit()
        await roll
        assert await main.fetchval("SELECT through_day FROM ledger_rollups WHERE ledger_id = $1", lid) >= day
        got = {b.code: (b.debits, b.credits) for b in await balances_on(main, lid, day)}
        assert got == await _direct(main, lid, day)
        assert got["fund:F"] == (0, 5)
    finally:
        await main.close()
        await booker.close()
