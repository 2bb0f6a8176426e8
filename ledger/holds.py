"""Expiring holds: pending transfers past their expiry release their amount."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from ledger.engine import apply_batch
from ledger.model import EntrySpec, TransferSpec
from ledger.rollup import LOCAL

EXPIRE_BATCH = 1_000
# Only one process sweeps at a time; others skip rather than wait.
EXPIRY_LOCK_KEY = 0x5E7711
_EXPIRY_NS = uuid.UUID("0b8f6f0e-3a3e-4d7c-8f0e-6b1f2d9d7a21")


def expiry_entry_id(hold_id: uuid.UUID) -> uuid.UUID:
    # Deterministic, so two sweeps racing for one hold produce one entry.
    return uuid.uuid5(_EXPIRY_NS, str(hold_id))


def expiry_entry(hold_id: uuid.UUID, ledger_id: int, value_date: date) -> EntrySpec:
    """The entry that expires one lapsed hold. Whoever expires it (this sweep,
    or a flow closing what the hold reserved) books this same entry, so two of
    them racing for one hold produce one entry (the second is ``exists``)."""
    return EntrySpec(
        id=expiry_entry_id(hold_id),
        ledger_id=ledger_id,
        description="hold expired",
        value_date=value_date,
        refs={"hold": str(hold_id)},
        transfers=(TransferSpec(kind="expire_pending", pending_id=hold_id, code="hold_expired"),),
    )


async def expire_holds(conn: Any, limit: int = EXPIRE_BATCH) -> list[uuid.UUID]:
    """Expire up to ``limit`` holds whose time has passed; return their ids.

    Runs in the caller's transaction. Safe with several processes: an advisory
    transaction lock lets one sweep at a time, and each expiry is an entry with
    a deterministic id.
    """
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", EXPIRY_LOCK_KEY):
        return []
    rows = await conn.fetch(
        "SELECT transfer_id, ledger_id FROM holds WHERE state = 'pending' AND expires_at <= clock_timestamp() "
        "ORDER BY expires_at LIMIT $1",
        limit,
    )
    if not rows:
        return []
    today = datetime.now(UTC).astimezone(LOCAL).date()  # the day basis of the journal (ledger.rollup)
    entries = [expiry_entry(r["transfer_id"], r["ledger_id"], today) for r in rows]
    results = await apply_batch(conn, entries)
    return [r["transfer_id"] for r, res in zip(rows, results, strict=True) if res.result == "ok"]
