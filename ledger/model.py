"""Ledger records: small immutable values (DESIGN.md "The ledger").

Semantics follow TigerBeetle's accounts, transfers and two-phase transfers.
A journal entry belongs to one ledger; entries that must commit together
across ledgers (a co-funded redemption) are *linked* in one batch.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import date, datetime
from typing import Literal

import msgspec

TransferKind = Literal["posted", "pending", "post_pending", "void_pending", "expire_pending"]

# Limits (named, checked, documented in the README).
MAX_BATCH_ENTRIES = 10_000
MAX_BATCH_TRANSFERS = 20_000
MAX_TRANSFERS_PER_ENTRY = 64
MAX_DESCRIPTION = 500
MAX_REFS = 16
MAX_REF_LENGTH = 200
MIN_HOLD_TIMEOUT_S = 1
MAX_HOLD_TIMEOUT_S = 400 * 24 * 3600  # a reservation can outlive a school year, not more
MAX_PAGE = 1_000

_TRANSFER_NS = uuid.UUID("6f1d2c8e-6a53-4c53-9b0c-1e7f5d1c2a10").bytes


def transfer_id(entry_id: uuid.UUID, index: int) -> uuid.UUID:
    """Transfer ids derive from their entry's id, so they can never collide and a
    client can name a pending transfer (to post or void it) before it exists.

    A name-based (version 5 layout) UUID over the entry id's bytes and the
    index; computed by hand because uuid.uuid5 formats strings and is ~10x slower.
    """
    digest = bytearray(hashlib.sha1(_TRANSFER_NS + entry_id.bytes + index.to_bytes(2, "big")).digest()[:16])  # noqa: S324 - naming, not security
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(digest))


def new_entry_id() -> uuid.UUID:
    """A time-ordered (version 7 layout) id: index inserts land at the right edge
    of the b-tree instead of at random pages."""
    ms = time.time_ns() // 1_000_000
    raw = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


class AccountSpec(msgspec.Struct, frozen=True, kw_only=True):
    ledger_id: int
    code: str
    name: str
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    ledger_id: int
    code: str
    name: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @property
    def credit_balance(self) -> int:
        """Posted credits minus posted debits (liabilities, equity read this way)."""
        return self.credits_posted - self.debits_posted

    @property
    def debit_balance(self) -> int:
        return self.debits_posted - self.credits_posted

    @property
    def available(self) -> int:
        """What a debit-limited account can still spend: posted credits less
        posted and pending debits."""
        return self.credits_posted - self.debits_posted - self.debits_pending


class TransferSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an entry.

    ``posted``/``pending`` name both accounts and a positive amount; a pending
    transfer may carry ``timeout_s`` (it expires that long after it is recorded).
    ``post_pending``/``void_pending`` name the pending transfer; their accounts
    are taken from it (0 here) and ``amount`` None posts the full amount.
    """

    kind: TransferKind = "posted"
    debit_account_id: int = 0
    credit_account_id: int = 0
    amount: int | None = None
    pending_id: uuid.UUID | None = None
    timeout_s: int | None = None
    code: str = ""


class EntrySpec(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    ledger_id: int
    description: str
    value_date: date
    transfers: tuple[TransferSpec, ...]
    refs: dict[str, str] = msgspec.field(default_factory=dict)
    # Entries of a batch with the same link group commit all-or-nothing.
    link_group: int | None = None


class EntryResult(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    result: str  # "ok", "exists", or the rule that failed (see engine.py)
    transfer_results: tuple[str, ...] = ()
    seq: int | None = None
    created_at: datetime | None = None

    @property
    def accepted(self) -> bool:
        return self.result in ("ok", "exists")


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
