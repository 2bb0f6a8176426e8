"""Background jobs: safe with several processes (advisory locks, SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from ledger.holds import expire_holds
from settlement.logs import get_logger
from settlement.state import AppState
from settlement.vouchers.flows import sync_expired_reservations

log = get_logger("settlement.jobs")
ROLLUP_INTERVAL_S = 3600.0


async def expire_holds_once(conn: Any) -> int:
    """Expire due holds in batches; their reservations become expired."""
    total = 0
    while True:
        async with conn.transaction():
            ids = await expire_holds(conn)
            await sync_expired_reservations(conn, ids)
        total += len(ids)
        if not ids:
            return total


def _start(
    state: AppState, interval_s: float, name: str, once: Callable[[Any], Awaitable[int]]
) -> Callable[[], Awaitable[None]]:
    """Run ``once(conn)`` every ``interval_s`` seconds until stopped; a failure is logged, not fatal."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                async with state.pool.acquire() as conn:
                    n = await once(conn)
                if n:
                    log.info(name, count=n)
            except Exception:
                log.exception(f"{name}_failed")

    task = asyncio.create_task(loop())

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop


async def start_hold_expiry(state: AppState) -> Callable[[], Awaitable[None]]:
    return _start(state, state.settings.hold_expiry_interval_s, "holds_expired", expire_holds_once)


async def _scheduled_runs(conn: Any) -> int:
    from settlement.payouts.flows import run_due_schedules

    return len(await run_due_schedules(conn))


async def start_payout_schedules(state: AppState) -> Callable[[], Awaitable[None]]:
    """Make scheduled draft runs (SKIP LOCKED: several processes never make one twice)."""
    return _start(state, state.settings.payout_schedule_interval_s, "payout_runs_scheduled", _scheduled_runs)


async def _rollups(conn: Any) -> int:
    from ledger.rollup import roll_up
    from ledger.verify import ledger_ids
    from settlement.chart import SUBLEDGERS

    return sum([await roll_up(conn, i, groups=SUBLEDGERS) for i in await ledger_ids(conn)])


async def start_rollups(state: AppState) -> Callable[[], Awaitable[None]]:
    """Day totals for finished days (an advisory lock per ledger: one process rolls up)."""
    return _start(state, ROLLUP_INTERVAL_S, "day_totals_rolled_up", _rollups)
