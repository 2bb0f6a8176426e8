"""Coalesce concurrent single-entry calls into engine batches.

Callers ``submit`` one entry and await its result; one flusher task applies
whatever has queued up (at most ``max_batch``) in one transaction, so under
load many calls share one commit. Correctness never depends on this: the
engine and the database check every entry whichever way it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ledger.engine import apply_batch
from ledger.model import MAX_BATCH_ENTRIES, EntryResult, EntrySpec

MAX_QUEUE = 100_000


class QueueFull(RuntimeError):
    pass


class Coalescer:
    def __init__(self, pool: Any, max_batch: int = 1_000) -> None:
        self._pool = pool
        self._max_batch = min(max_batch, MAX_BATCH_ENTRIES)
        self._queue: list[tuple[EntrySpec, asyncio.Future[EntryResult]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def __aenter__(self) -> Coalescer:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, entry: EntrySpec) -> EntryResult:
        if len(self._queue) >= MAX_QUEUE:
            raise QueueFull("ledger queue is full; retry later")
        fut: asyncio.Future[EntryResult] = asyncio.get_running_loop().create_future()
        self._queue.append((entry, fut))
        self._wakeup.set()
        return await fut

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    async with self._pool.acquire() as conn, conn.transaction():
                        results = await apply_batch(conn, [e for e, _ in batch])
                except Exception as exc:  # the whole batch failed: tell every caller
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                self.batches += 1
                for (_, fut), res in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(res)
