"""Small builders so ledger tests read like a ledger."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from ledger.accounts import create_ledger, ensure_accounts
from ledger.engine import apply_batch
from ledger.model import AccountSpec, EntryResult, EntrySpec, TransferSpec

TODAY = date(2026, 11, 23)


def entry(
    ledger_id: int,
    *transfers: TransferSpec,
    eid: uuid.UUID | None = None,
    desc: str = "test",
    link: int | None = None,
    refs: dict[str, str] | None = None,
) -> EntrySpec:
    return EntrySpec(
        id=eid or uuid.uuid4(),
        ledger_id=ledger_id,
        description=desc,
        value_date=TODAY,
        transfers=transfers,
        refs=refs or {},
        link_group=link,
    )


def posted(dr: int, cr: int, amount: int, code: str = "") -> TransferSpec:
    return TransferSpec(kind="posted", debit_account_id=dr, credit_account_id=cr, amount=amount, code=code)


def pending(dr: int, cr: int, amount: int, timeout_s: int | None = None) -> TransferSpec:
    return TransferSpec(kind="pending", debit_account_id=dr, credit_account_id=cr, amount=amount, timeout_s=timeout_s)


def post(pid: uuid.UUID, amount: int | None = None) -> TransferSpec:
    return TransferSpec(kind="post_pending", pending_id=pid, amount=amount)


def void(pid: uuid.UUID) -> TransferSpec:
    return TransferSpec(kind="void_pending", pending_id=pid)


async def apply(conn: Any, *entries: EntrySpec) -> list[EntryResult]:
    async with conn.transaction():
        return await apply_batch(conn, list(entries))


async def setup_ledger(conn: Any) -> tuple[int, dict[str, int]]:
    """A ledger with a funding source, a limited fund, a limited voucher and a payable."""
    async with conn.transaction():
        lid = await create_ledger(conn, "test sponsor")
        accts = await ensure_accounts(
            conn,
            [
                AccountSpec(ledger_id=lid, code="funding:grant", name="grant"),
                AccountSpec(ledger_id=lid, code="fund:F", name="fund", debits_must_not_exceed_credits=True),
                AccountSpec(ledger_id=lid, code="voucher:V", name="voucher", debits_must_not_exceed_credits=True),
                AccountSpec(ledger_id=lid, code="payable:P", name="payable"),
            ],
        )
    return lid, {a.code.split(":")[0]: a.id for a in accts}


def expire(pid: uuid.UUID) -> TransferSpec:
    return TransferSpec(kind="expire_pending", pending_id=pid)


async def add_accounts(conn: Any, ledger_id: int, *specs: tuple[str, str]) -> dict[str, int]:
    """Accounts by (code, limit) where limit is "" (none), "dr" (debits must not
    exceed credits) or "cr" (credits must not exceed debits)."""
    async with conn.transaction():
        accts = await ensure_accounts(
            conn,
            [
                AccountSpec(
                    ledger_id=ledger_id,
                    code=code,
                    name=code,
                    debits_must_not_exceed_credits=limit == "dr",
                    credits_must_not_exceed_debits=limit == "cr",
                )
                for code, limit in specs
            ],
        )
    return {a.code: a.id for a in accts}


async def bal(conn: Any, account_id: int) -> tuple[int, int, int, int]:
    """(debits_posted, credits_posted, debits_pending, credits_pending) now."""
    r = await conn.fetchrow(
        "SELECT debits_posted, credits_posted, debits_pending, credits_pending FROM accounts WHERE id = $1",
        account_id,
    )
    return (r[0], r[1], r[2], r[3])


async def totals(conn: Any, ledger_id: int) -> tuple[int, int, int, int]:
    """Sums of the four totals over every account of a ledger."""
    r = await conn.fetchrow(
        "SELECT coalesce(sum(debits_posted), 0)::bigint, coalesce(sum(credits_posted), 0)::bigint, "
        "coalesce(sum(debits_pending), 0)::bigint, coalesce(sum(credits_pending), 0)::bigint "
        "FROM accounts WHERE ledger_id = $1",
        ledger_id,
    )
    return (r[0], r[1], r[2], r[3])


async def assert_balanced(conn: Any, ledger_id: int) -> None:
    """Double entry: posted debits equal posted credits, pending likewise."""
    dp, cp, dpe, cpe = await totals(conn, ledger_id)
    assert dp == cp, f"ledger {ledger_id}: posted debits {dp} != credits {cp}"
    assert dpe == cpe, f"ledger {ledger_id}: pending debits {dpe} != credits {cpe}"


async def force_expiry(conn: Any, hold_id: uuid.UUID) -> None:
    """Move a hold's expiry into the past (holds carry derived state, not history)."""
    status = await conn.execute(
        "UPDATE holds SET expires_at = clock_timestamp() - interval '1 second' WHERE transfer_id = $1", hold_id
    )
    assert status == "UPDATE 1"


async def counts(conn: Any, ledger_id: int) -> tuple[int, int]:
    """(journal entries, transfers) of a ledger."""
    e = await conn.fetchval("SELECT count(*) FROM journal_entries WHERE ledger_id = $1", ledger_id)
    t = await conn.fetchval("SELECT count(*) FROM transfers WHERE ledger_id = $1", ledger_id)
    return (e, t)
