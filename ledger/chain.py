"""Canonical bytes and the per-ledger hash chain.

Each entry's hash covers the previous entry's hash and the canonical bytes of
the entry with its transfers, so changing, removing or reordering any row
breaks every later link. The same function serves writing and verifying.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta

import msgspec

GENESIS = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_encoder = msgspec.json.Encoder(order="sorted")

# (id, kind, debit, credit, amount, pending_id, expires_at_us, code)
TransferRow = tuple[uuid.UUID, str, int, int, int, uuid.UUID | None, int | None, str]


def micros(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


def canonical_entry(
    ledger_id: int,
    seq: int,
    entry_id: uuid.UUID,
    description: str,
    refs: dict[str, str],
    value_date: date,
    created_at: datetime,
    transfers: list[TransferRow],
) -> bytes:
    return _encoder.encode(
        [ledger_id, seq, entry_id, description, refs, value_date.isoformat(), micros(created_at), transfers]
    )


def link(prev_hash: bytes, canonical: bytes) -> bytes:
    return hashlib.sha256(prev_hash + canonical).digest()


def content_hash(payload: object) -> bytes:
    """Hash of what a client asked for, to tell a replay from a reused id."""
    return hashlib.sha256(_encoder.encode(payload)).digest()
