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


async def start_hold_expiry(state: AppState) -> Callable[[], Awaitable[None]]:
    async def loop() -> None:
        while True:
            await asyncio.sleep(state.settings.hold_expiry_interval_s)
            try:
                async with state.pool.acquire() as conn:
                    n = await expire_holds_once(conn)
                if n:
                    log.info("holds_expired", count=n)
            except Exception:
                log.exception("hold_expiry_failed")

    task = asyncio.create_task(loop())

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
