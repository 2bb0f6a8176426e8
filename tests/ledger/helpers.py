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
