"""The sponsor's ledger as an XML Auditfile Financieel 3.2 (``settlement.reports.xaf``).

Every account of the sponsor's ledger is a balance-sheet account (the chart
has no profit and loss). The opening balance is the trial balance at the end
of the previous year; the year's journal entries form one memorial journal,
each posted transfer two lines (debit, credit). The voucher sub-ledger (one
account per voucher) appears as its control account ``voucher:*``. Pending transfers (holds) are
not postings and are left out; posting a hold is. Entries are read through a
cursor in chunks; the year's transactions are then held once in memory while
the file is written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from ledger.rollup import balances_on, local_day, start_of
from settlement import chart
from settlement.auth import Actor
from settlement.payouts.flows import READ_ROLES
from settlement.reports.xaf import XafAccount, XafHeader, XafJournal, XafLine, XafTransaction, build_xaf
from settlement.sponsors.flows import sponsor_scope

SOFTWARE_VERSION = "0.1.0"


async def _transactions(conn: Any, ledger_id: int, year: int) -> AsyncIterator[XafTransaction]:
    t0, t1 = start_of(date(year, 1, 1)), start_of(date(year + 1, 1, 1))
    current: list[Any] = []
    async for r in conn.cursor(
        "SELECT e.id, e.seq, e.created_at, e.value_date, e.description, t.amount, d.code AS dr, c.code AS cr "
        "FROM journal_entries e JOIN transfers t ON t.entry_id = e.id AND t.kind IN ('posted', 'post_pending') "
        "JOIN accounts d ON d.id = t.debit_account_id JOIN accounts c ON c.id = t.credit_account_id "
        "WHERE e.ledger_id = $1 AND e.created_at >= $2 AND e.created_at < $3 ORDER BY e.seq, t.n",
        ledger_id,
        t0,
        t1,
        prefetch=5_000,
    ):
        if current and current[0]["id"] != r["id"]:
            yield _transaction(current)
            current = []
        current.append(r)
    if current:
        yield _transaction(current)


def _transaction(rows: list[Any]) -> XafTransaction:
    first = rows[0]
    # the local day of recording: the year is selected by local days (start_of), as the journal and trial balance are
    day = local_day(first["created_at"])
    lines: list[XafLine] = []
    for r in rows:
        sides: tuple[tuple[Literal["D", "C"], str], ...] = (
            ("D", chart.control_code(r["dr"])),
            ("C", chart.control_code(r["cr"])),
        )
        for side, code in sides:
            lines.append(
                XafLine(
                    nr=len(lines) + 1,
                    account_code=code,
                    description=first["description"],
                    amount_cents=r["amount"],
                    side=side,
                    effective_date=r["value_date"],
                    doc_ref=str(first["id"]),
                )
            )
    return XafTransaction(
        nr=str(first["seq"]),
        description=first["description"],
        date=day,
        period=day.month,
        lines=tuple(lines),
        source_id=str(first["id"]),
    )


async def auditfile(conn: Any, actor: Actor | str, year: int, *, sponsor_id: int | None = None) -> bytes:
    sid = await sponsor_scope(conn, actor, READ_ROLES) if not isinstance(actor, str) else sponsor_id
    sponsor = await conn.fetchrow(
        "SELECT s.organisation_id, s.ledger_id, o.name FROM sponsors s "
        "JOIN organisations o ON o.id = s.organisation_id WHERE s.organisation_id = $1",
        sid,
    )
    # one account per line of the chart, the voucher sub-ledger as its control account
    accounts = await conn.fetch(
        "SELECT code, min(name) AS name, count(*) AS n FROM (SELECT CASE WHEN code LIKE 'voucher:%' "
        "THEN 'voucher:*' ELSE code END AS code, name FROM accounts WHERE ledger_id = $1) a "
        "GROUP BY code ORDER BY code",
        sponsor["ledger_id"],
    )
    opening = [
        (b.code, b.debits - b.credits)
        for b in await balances_on(
            conn, sponsor["ledger_id"], date(year, 1, 1) - timedelta(days=1), groups=chart.SUBLEDGERS
        )
        if b.debits != b.credits
    ]
    entries = [t async for t in _transactions(conn, sponsor["ledger_id"], year)]
    header = XafHeader(
        fiscal_year=str(year),
        start_date=date(year, 1, 1),
        end_date=date(year, 12, 31),
        company_name=sponsor["name"],
        company_ident=str(sponsor["organisation_id"]),
        date_created=local_day(datetime.now(UTC)),
        software_version=SOFTWARE_VERSION,
    )
    return build_xaf(
        header,
        [
            XafAccount(code=a["code"], name=a["name"] if a["n"] == 1 else f"Vouchers ({a['n']} accounts)", kind="B")
            for a in accounts
        ],
        opening,
        [XafJournal(id="M", description="Settlement ledger", kind="M", transactions=entries)],
    )
