"""ledger.accounts.ensure_accounts: idempotent by (ledger, code), answers in the order asked."""

from __future__ import annotations

from typing import Any

from ledger.accounts import create_ledger, ensure_accounts
from ledger.model import AccountSpec


def _spec(lid: int, code: str, limited: bool = False) -> AccountSpec:
    return AccountSpec(ledger_id=lid, code=code, name=code, debits_must_not_exceed_credits=limited)


async def test_existing_new_and_repeated_codes_come_back_in_order(conn: Any) -> None:
    lid = await create_ledger(conn, "accounts test")
    other = await create_ledger(conn, "another ledger")
    [first] = await ensure_accounts(conn, [_spec(lid, "fund:1", True)])
    asked = [
        _spec(lid, "voucher:A"),
        _spec(lid, "fund:1", True),  # exists
        _spec(other, "fund:1"),  # same code, other ledger: another account
        _spec(lid, "voucher:A"),  # asked twice in one call
        _spec(lid, "voucher:B"),
    ]
    got = await ensure_accounts(conn, asked)
    assert [(a.ledger_id, a.code) for a in got] == [(s.ledger_id, s.code) for s in asked]
    assert got[1].id == first.id and got[1].debits_must_not_exceed_credits
    assert got[0].id == got[3].id
    assert len({got[0].id, got[1].id, got[2].id, got[4].id}) == 4
    # and again: nothing new, the same ids
    again = await ensure_accounts(conn, asked)
    assert [a.id for a in again] == [a.id for a in got]
    n = await conn.fetchval("SELECT count(*) FROM accounts WHERE ledger_id = ANY($1::bigint[])", [lid, other])
    assert n == 4
