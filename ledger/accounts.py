"""Ledgers and accounts: creation (idempotent by code) and lookup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.model import Account, AccountSpec

_ACCOUNT_COLUMNS = (
    "id, ledger_id, code, name, debits_must_not_exceed_credits, credits_must_not_exceed_debits, "
    "debits_posted, credits_posted, debits_pending, credits_pending"
)


def _account(r: Any) -> Account:
    return Account(
        id=r["id"],
        ledger_id=r["ledger_id"],
        code=r["code"],
        name=r["name"],
        debits_must_not_exceed_credits=r["debits_must_not_exceed_credits"],
        credits_must_not_exceed_debits=r["credits_must_not_exceed_debits"],
        debits_posted=r["debits_posted"],
        credits_posted=r["credits_posted"],
        debits_pending=r["debits_pending"],
        credits_pending=r["credits_pending"],
    )


async def create_ledger(conn: Any, name: str, currency: str = "EUR") -> int:
    ledger_id: int = await conn.fetchval(
        "INSERT INTO ledgers (name, currency) VALUES ($1, $2) RETURNING id", name, currency
    )
    return ledger_id


async def ensure_accounts(conn: Any, specs: Sequence[AccountSpec]) -> list[Account]:
    """Create the accounts that do not exist yet (by ledger and code); return all, in order.

    Creating an account that exists with other flags is a programmer error:
    flags never change after creation, because balances were checked under them.
    """
    if not specs:
        return []
    # Read first: on the hot paths (a reservation ensures the supplier's
    # payable) the accounts exist, and the read is one cheap round trip where
    # INSERT ... ON CONFLICT costs a speculative insertion per row.
    rows = await _by_codes(conn, specs)
    if len(rows) < len(specs):
        # RETURNING names the rows this statement inserted; only an account a
        # concurrent caller created in between needs the read again.
        inserted = await conn.fetch(
            "INSERT INTO accounts (ledger_id, code, name, debits_must_not_exceed_credits, "
            "credits_must_not_exceed_debits) "
            "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bool[], $5::bool[]) "
            f"ON CONFLICT (ledger_id, code) DO NOTHING RETURNING {_ACCOUNT_COLUMNS}",
            [s.ledger_id for s in specs],
            [s.code for s in specs],
            [s.name for s in specs],
            [s.debits_must_not_exceed_credits for s in specs],
            [s.credits_must_not_exceed_debits for s in specs],
        )
        if len(rows) + len(inserted) < len(specs):
            rows = await _by_codes(conn, specs)
        else:
            found = {(r["ledger_id"], r["code"]): r for r in (*rows, *inserted)}
            rows = [found[(s.ledger_id, s.code)] for s in specs]
    out = [_account(r) for r in rows]
    for spec, acct in zip(specs, out, strict=True):
        assert acct.debits_must_not_exceed_credits == spec.debits_must_not_exceed_credits, spec.code
        assert acct.credits_must_not_exceed_debits == spec.credits_must_not_exceed_debits, spec.code
    return out


async def _by_codes(conn: Any, specs: Sequence[AccountSpec]) -> list[Any]:
    return list(
        await conn.fetch(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts a "
            "JOIN unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS k(ledger_id, code, ord) "
            "USING (ledger_id, code) ORDER BY k.ord",
            [s.ledger_id for s in specs],
            [s.code for s in specs],
        )
    )


async def get_accounts(conn: Any, ids: Sequence[int]) -> dict[int, Account]:
    rows = await conn.fetch(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1::bigint[])", list(ids))
    return {r["id"]: _account(r) for r in rows}


async def find_accounts(conn: Any, ledger_id: int, codes: Sequence[str]) -> dict[str, Account]:
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE ledger_id = $1 AND code = ANY($2::text[])",
        ledger_id,
        list(codes),
    )
    return {r["code"]: _account(r) for r in rows}
