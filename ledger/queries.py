"""Reading the ledger: balances now and as of an instant, history, trial balance."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from ledger.model import MAX_PAGE, Balance

# Posted and pending effects of each transfer kind, as of an instant. A
# resolution (post/void/expire) releases the *pending transfer's* amount.
_AS_OF = """
WITH t AS (
    SELECT t.debit_account_id AS dr, t.credit_account_id AS cr, t.kind, t.amount,
           coalesce(h.amount, 0) AS released
    FROM transfers t
    LEFT JOIN holds h ON h.transfer_id = t.pending_id
    WHERE (t.debit_account_id = ANY($1::bigint[]) OR t.credit_account_id = ANY($1::bigint[]))
      AND t.created_at <= $2
)
SELECT a AS account_id,
    coalesce(sum(CASE WHEN side = 'd' AND kind IN ('posted', 'post_pending') THEN amount END), 0)::bigint AS dp,
    coalesce(sum(CASE WHEN side = 'c' AND kind IN ('posted', 'post_pending') THEN amount END), 0)::bigint AS cp,
    coalesce(sum(CASE WHEN side = 'd' THEN pend END), 0)::bigint AS dpe,
    coalesce(sum(CASE WHEN side = 'c' THEN pend END), 0)::bigint AS cpe
FROM (
    SELECT dr AS a, 'd' AS side, kind, amount,
           CASE WHEN kind = 'pending' THEN amount WHEN kind = 'posted' THEN 0 ELSE -released END AS pend
    FROM t
    UNION ALL
    SELECT cr, 'c', kind, amount,
           CASE WHEN kind = 'pending' THEN amount WHEN kind = 'posted' THEN 0 ELSE -released END
    FROM t
) x
WHERE a = ANY($1::bigint[])
GROUP BY a
"""


async def balances(conn: Any, account_ids: list[int], as_of: datetime | None = None) -> dict[int, Balance]:
    """Balances now (from the accounts' running totals) or as of an instant
    (recomputed from the append-only transfers)."""
    if as_of is None:
        rows = await conn.fetch(
            "SELECT id AS account_id, debits_posted AS dp, credits_posted AS cp, debits_pending AS dpe, "
            "credits_pending AS cpe FROM accounts WHERE id = ANY($1::bigint[])",
            account_ids,
        )
    else:
        rows = await conn.fetch(_AS_OF, account_ids, as_of)
    out = {
        r["account_id"]: Balance(
            account_id=r["account_id"],
            debits_posted=r["dp"],
            credits_posted=r["cp"],
            debits_pending=r["dpe"],
            credits_pending=r["cpe"],
        )
        for r in rows
    }
    for aid in account_ids:
        out.setdefault(
            aid,
            Balance(account_id=aid, debits_posted=0, credits_posted=0, debits_pending=0, credits_pending=0),
        )
    return out


class HistoryLine(msgspec.Struct, frozen=True, kw_only=True):
    n: int
    transfer_id: str
    entry_id: str
    kind: str
    code: str
    debit: int  # amount debited to this account (posted), 0 otherwise
    credit: int
    running_balance: int  # credits - debits posted, after this line
    created_at: datetime
    value_date: str
    description: str


async def history(
    conn: Any, account_id: int, *, after: int | None = None, limit: int = 100
) -> tuple[list[HistoryLine], int | None]:
    """Posted movements of one account, oldest first, with running balance
    (credits minus debits). Returns the page and the cursor for the next."""
    limit = max(1, min(limit, MAX_PAGE))
    after = after or 0
    rows = await conn.fetch(
        """
        WITH moves AS (
            SELECT t.n, t.id, t.entry_id, t.kind, t.code, t.created_at,
                   CASE WHEN t.debit_account_id = $1 THEN t.amount ELSE 0 END AS debit,
                   CASE WHEN t.credit_account_id = $1 THEN t.amount ELSE 0 END AS credit
            FROM transfers t
            WHERE (t.debit_account_id = $1 OR t.credit_account_id = $1)
              AND t.kind IN ('posted', 'post_pending')
        ), start AS (
            SELECT coalesce(sum(credit - debit), 0) AS b FROM moves WHERE n <= $2
        ), page AS (
            SELECT * FROM moves WHERE n > $2 ORDER BY n LIMIT $3
        )
        SELECT p.*, (SELECT b FROM start) + sum(p.credit - p.debit) OVER (ORDER BY p.n) AS running,
               e.value_date, e.description
        FROM page p JOIN journal_entries e ON e.id = p.entry_id
        ORDER BY p.n
        """,
        account_id,
        after,
        limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    lines = [
        HistoryLine(
            n=r["n"],
            transfer_id=str(r["id"]),
            entry_id=str(r["entry_id"]),
            kind=r["kind"],
            code=r["code"],
            debit=r["debit"],
            credit=r["credit"],
            running_balance=int(r["running"]),
            created_at=r["created_at"],
            value_date=r["value_date"].isoformat(),
            description=r["description"],
        )
        for r in rows
    ]
    return lines, (lines[-1].n if more and lines else None)


class TrialBalanceLine(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    code: str
    name: str
    debit: int  # posted debit balance (debits - credits) when positive
    credit: int


class TrialBalance(msgspec.Struct, frozen=True, kw_only=True):
    ledger_id: int
    as_of: datetime | None
    lines: list[TrialBalanceLine]
    total_debit: int
    total_credit: int

    @property
    def balanced(self) -> bool:
        return self.total_debit == self.total_credit


async def trial_balance(conn: Any, ledger_id: int, as_of: datetime | None = None) -> TrialBalance:
    """Posted balances of every account of a ledger; debits equal credits."""
    if as_of is None:
        rows = await conn.fetch(
            "SELECT id, code, name, debits_posted - credits_posted AS net FROM accounts "
            "WHERE ledger_id = $1 ORDER BY code",
            ledger_id,
        )
    else:
        rows = await conn.fetch(
            """
            WITH moves AS (
                SELECT debit_account_id AS a, sum(amount) AS d, 0::numeric AS c FROM transfers
                WHERE ledger_id = $1 AND created_at <= $2 AND kind IN ('posted', 'post_pending')
                GROUP BY debit_account_id
                UNION ALL
                SELECT credit_account_id, 0, sum(amount) FROM transfers
                WHERE ledger_id = $1 AND created_at <= $2 AND kind IN ('posted', 'post_pending')
                GROUP BY credit_account_id
            )
            SELECT acc.id, acc.code, acc.name, coalesce(sum(m.d) - sum(m.c), 0)::bigint AS net
            FROM accounts acc LEFT JOIN moves m ON m.a = acc.id
            WHERE acc.ledger_id = $1
            GROUP BY acc.id, acc.code, acc.name ORDER BY acc.code
            """,
            ledger_id,
            as_of,
        )
    lines = [
        TrialBalanceLine(
            account_id=r["id"],
            code=r["code"],
            name=r["name"],
            debit=max(r["net"], 0),
            credit=max(-r["net"], 0),
        )
        for r in rows
    ]
    return TrialBalance(
        ledger_id=ledger_id,
        as_of=as_of,
        lines=lines,
        total_debit=sum(line.debit for line in lines),
        total_credit=sum(line.credit for line in lines),
    )
