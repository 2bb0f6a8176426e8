"""``settlement audit verify``: are the books what they claim to be?

Four checks, each naming what is wrong:

1. every ledger's hash chain recomputes (``ledger.verify``): a row changed
   behind the code's back breaks it at that entry;
2. every ledger balances: posted debits equal posted credits (and pending
   likewise), and each account's stored totals equal the sum of its transfers;
3. every fund's overview adds up (granted - returned = available + issued, issued =
   outstanding + reserved + redeemed, redeemed = open + in payout + paid);
4. every bank account equals its last statement: the ledger's ``bank:<iban>``
   at the statement date is the closing balance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ledger.verify import ledger_ids, verify_ledger
from settlement.sponsors.flows import Sponsor, overview_of, overview_problems
from settlement.statements.flows import bank_balance


class Check(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # sponsor | hash_chain | ledger_balanced | account_totals | fund_overview | bank_statement
    subject: str
    ok: bool
    detail: str = ""


class Report(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    checks: int
    failures: list[Check]


async def verify_books(
    conn: Any, *, sponsor_id: int | None = None, progress: Callable[[str], None] | None = None
) -> Report:
    """All checks as of one snapshot (a read-only repeatable-read transaction when the caller has none),
    so on a live system they all judge the same books."""
    if conn.is_in_transaction():
        return await _verify_books(conn, sponsor_id, progress)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _verify_books(conn, sponsor_id, progress)


async def _verify_books(conn: Any, sponsor_id: int | None, progress: Callable[[str], None] | None) -> Report:
    say = progress or (lambda _: None)
    checks: list[Check] = []
    sponsors = await conn.fetch(
        "SELECT organisation_id, ledger_id FROM sponsors WHERE $1::bigint IS NULL OR organisation_id = $1 "
        "ORDER BY organisation_id",
        sponsor_id,
    )
    ids = [s["ledger_id"] for s in sponsors] if sponsor_id is not None else await ledger_ids(conn)
    if sponsor_id is not None and not sponsors:  # checking nothing is not a pass
        checks.append(
            Check(name="sponsor", subject=f"sponsor {sponsor_id}", ok=False, detail="no sponsor books with this id")
        )

    for lid in ids:
        say(f"ledger {lid}: hash chain")
        r = await verify_ledger(conn, lid)
        checks.append(
            Check(
                name="hash_chain",
                subject=f"ledger {lid}",
                ok=r.ok,
                detail=f"{r.entries} entries"
                if r.ok
                else f"broken at seq {r.first_broken_seq} (entry {r.first_broken_entry}): {r.problem}"
                if r.first_broken_seq
                else f"broken: {r.problem}",
            )
        )
        sums = await conn.fetchrow(
            "SELECT coalesce(sum(debits_posted), 0)::bigint AS dp, coalesce(sum(credits_posted), 0)::bigint AS cp, "
            "coalesce(sum(debits_pending), 0)::bigint AS dpe, coalesce(sum(credits_pending), 0)::bigint AS cpe "
            "FROM accounts WHERE ledger_id = $1",
            lid,
        )
        balanced = sums["dp"] == sums["cp"] and sums["dpe"] == sums["cpe"]
        checks.append(
            Check(
                name="ledger_balanced",
                subject=f"ledger {lid}",
                ok=balanced,
                detail=f"posted debits {sums['dp']} credits {sums['cp']}; pending debits {sums['dpe']} "
                f"credits {sums['cpe']}",
            )
        )
        say(f"ledger {lid}: account totals against transfers")
        off = await conn.fetch(
            """
            WITH moves AS (
                SELECT debit_account_id AS a, amount AS d, 0::bigint AS c FROM transfers
                WHERE ledger_id = $1 AND kind IN ('posted', 'post_pending')
                UNION ALL
                SELECT credit_account_id, 0, amount FROM transfers
                WHERE ledger_id = $1 AND kind IN ('posted', 'post_pending')
            ), per AS (SELECT a, sum(d)::bigint AS d, sum(c)::bigint AS c FROM moves GROUP BY a)
            SELECT acc.code, acc.debits_posted, acc.credits_posted, coalesce(per.d, 0) AS d, coalesce(per.c, 0) AS c
            FROM accounts acc LEFT JOIN per ON per.a = acc.id
            WHERE acc.ledger_id = $1 AND (acc.debits_posted <> coalesce(per.d, 0)
                                          OR acc.credits_posted <> coalesce(per.c, 0))
            ORDER BY acc.code LIMIT 20
            """,
            lid,
        )
        checks.append(
            Check(
                name="account_totals",
                subject=f"ledger {lid}",
                ok=not off,
                detail="; ".join(
                    f"{r['code']}: stored {r['debits_posted']}/{r['credits_posted']}, transfers {r['d']}/{r['c']}"
                    for r in off
                ),
            )
        )

    for s in sponsors:
        sponsor = Sponsor(organisation_id=s["organisation_id"], ledger_id=s["ledger_id"])
        for f in await conn.fetch("SELECT id, code FROM funds WHERE sponsor_id = $1 ORDER BY id", s["organisation_id"]):
            say(f"fund {f['code']}: overview")
            problems = overview_problems(await overview_of(conn, sponsor, f["id"]))
            checks.append(
                Check(
                    name="fund_overview",
                    subject=f"fund {f['id']} {f['code']}",
                    ok=not problems,
                    detail="; ".join(problems),
                )
            )
        for a in await conn.fetch(
            "SELECT DISTINCT ON (st.debtor_account_id) st.id, st.statement_id, st.statement_date, st.closing_balance, "
            "d.iban, d.bank_account_id FROM statements st JOIN debtor_accounts d ON d.id = st.debtor_account_id "
            "WHERE st.sponsor_id = $1 AND st.closing_balance IS NOT NULL "
            "ORDER BY st.debtor_account_id, st.statement_date DESC, st.id DESC",
            s["organisation_id"],
        ):
            ledger = await bank_balance(conn, a["bank_account_id"], a["statement_date"])
            checks.append(
                Check(
                    name="bank_statement",
                    subject=f"bank {a['iban']}",
                    ok=ledger == a["closing_balance"],
                    detail=f"statement {a['statement_id']} of {a['statement_date']}: closing {a['closing_balance']}, "
                    f"ledger {ledger}",
                )
            )
    failures = [c for c in checks if not c.ok]
    return Report(ok=not failures, checks=len(checks), failures=failures)
