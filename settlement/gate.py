"""In-process queue in front of a ledger's row lock.

Every booking on a sponsor's ledger takes that ledger's row lock
(``ledger_prepare_batch``) and holds it until commit. Under load many
requests of one process would otherwise all wait inside PostgreSQL, one
backend each, polling the same row; and the request that holds the lock
competes in the event loop with all of them. ``enter`` makes them queue on an
``asyncio.Lock`` per ledger instead, so at most one transaction per process
waits on (or holds) a ledger's row lock; the others wait here, for free.

This is only a performance measure: correctness stays with PostgreSQL's
locks. So the rules keep it from ever adding a wait that PostgreSQL cannot see:

- A gate is taken only by the first booking of a transaction (nothing of the
  ledger is locked by it yet), for all the ledgers of that booking at once, in
  id order; later bookings of the same transaction pass straight through.
- The gated section (the booking, the idempotency answer, the commit) touches
  only ledger tables and the request's own rows, which no waiter holds.
- Waiting is bounded (``GATE_TIMEOUT_S``): a wait this long means the
  database is far behind; the request fails with ``too_busy`` and changes
  nothing, like a lock timeout would.

Gates exist only inside ``transaction_gates`` (the API's ``in_transaction``);
flows run from the CLI, jobs or tests pass straight through.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar

from settlement.errors import Unavailable

GATE_TIMEOUT_S = 30.0

# ledger id -> its gate, per event loop (an asyncio.Lock belongs to one loop)
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Lock]] = weakref.WeakKeyDictionary()
_held: ContextVar[list[asyncio.Lock] | None] = ContextVar("ledger_gates", default=None)


@asynccontextmanager
async def transaction_gates() -> AsyncIterator[None]:
    """Around one database transaction: gates taken inside are released when it ends."""
    held: list[asyncio.Lock] = []
    token = _held.set(held)
    try:
        yield
    finally:
        _held.reset(token)
        for lock in reversed(held):
            lock.release()


async def enter(ledger_ids: Iterable[int]) -> None:
    """Queue for the ledgers' gates before booking on them (see the module's rules)."""
    held = _held.get()
    if held is None or held:
        return
    loop = asyncio.get_running_loop()
    locks = _locks.get(loop)
    if locks is None:
        locks = _locks[loop] = {}
    try:
        async with asyncio.timeout(GATE_TIMEOUT_S):
            for lid in sorted(set(ledger_ids)):
                lock = locks.get(lid)
                if lock is None:
                    lock = locks[lid] = asyncio.Lock()
                await lock.acquire()
                held.append(lock)
    except TimeoutError:
        raise Unavailable("the sponsor's ledger is too busy; retry", code="too_busy") from None
