"""The books as accountants and councils read them.

Every read is scoped to the caller's sponsor (finance, approver, auditor); a
supplier reads its own statement. Dates are local (Europe/Amsterdam) days of
recording: "as of D" means everything recorded up to the end of D, the same
basis for the journal, the trial balance and the fund report, so they agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import msgspec

from ledger.rollup import balances_on, start_of
from settlement import chart
from settlement.auth import Actor
from settlement.errors import Forbidden, NotFound, ValidationFailed
from settlement.payouts.flows import READ_ROLES
from settlement.sponsors.flows import sponsor_scope

MAX_JOURNAL_ENTRIES = 200_000  # one export; narrow the period beyond this
MAX_STATEMENT_LINES = 100_000  # one supplier statement; likewise
MAX_SAMPLE = 200
MAX_LIST = 500
_ENTRY_SQL = (
    "SELECT e.id, e.seq, e.created_at, e.value_date, e.description, e.refs, t.kind, t.amount, t.code, "
    "d.code AS dr, c.code AS cr FROM journal_entries e JOIN transfers t ON t.entry_id = e.id "
    "JOIN accounts d ON d.id = t.debit_account_id JOIN accounts c ON c.id = t.credit_account_id "
)


def _period(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    if date_to < date_from:
        raise ValidationFailed(
            "the period ends before it starts",
            code="period_invalid",
            errors=[{"field": "to", "message": "must be on or after from"}],
        )
    if (date_to - date_from).days > 366 * 5:
        raise ValidationFailed(
            "a period is at most five years", code="period_too_long", errors=[{"field": "to", "message": "too far"}]
        )
    return start_of(date_from), start_of(date_to + timedelta(days=1))


async def _ledger(conn: Any, actor: Actor) -> tuple[int, int]:
    sid = await sponsor_scope(conn, actor, READ_ROLES)
    lid: int = await conn.fetchval("SELECT ledger_id FROM sponsors WHERE organisation_id = $1", sid)
    assert sid is not None
    return sid, lid


# --- journal and trial balance -------------------------------------------------------


class JournalTransfer(msgspec.Struct, frozen=True, kw_only=True):
    debit: str
    credit: str
    amount: int
    kind: str
    code: str


class JournalEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    seq: int
    recorded_at: datetime
    value_date: date
    description: str
    refs: dict[str, str]
    transfers: list[JournalTransfer]


class Journal(msgspec.Struct, frozen=True, kw_only=True):
    ledger_id: int
    date_from: date
    date_to: date
    entries: list[JournalEntry]
    total_debit: int  # posted amounts; debits equal credits by construction


async def journal(conn: Any, actor: Actor, date_from: date, date_to: date) -> Journal:
    _sid, lid = await _ledger(conn, actor)
    t0, t1 = _period(date_from, date_to)
    n = await conn.fetchval(
        "SELECT count(*) FROM journal_entries WHERE ledger_id = $1 AND created_at >= $2 AND created_at < $3",
        lid,
        t0,
        t1,
    )
    if n > MAX_JOURNAL_ENTRIES:
        raise ValidationFailed(
            f"{n} entries in this period; export at most {MAX_JOURNAL_ENTRIES} at a time (a shorter period, or the "
            "XAF auditfile)",
            code="period_too_large",
            errors=[{"field": "to", "message": "narrow the period"}],
        )
    rows = await conn.fetch(
        _ENTRY_SQL + "WHERE e.ledger_id = $1 AND e.created_at >= $2 AND e.created_at < $3 ORDER BY e.seq, t.n",
        lid,
        t0,
        t1,
    )
    entries: list[JournalEntry] = []
    total = 0
    for r in rows:
        if not entries or entries[-1].id != str(r["id"]):
            entries.append(
                JournalEntry(
                    id=str(r["id"]),
                    seq=r["seq"],
                    recorded_at=r["created_at"],
                    value_date=r["value_date"],
                    description=r["description"],
                    refs=dict(r["refs"]),
                    transfers=[],
                )
            )
        entries[-1].transfers.append(
            JournalTransfer(debit=r["dr"], credit=r["cr"], amount=r["amount"], kind=r["kind"], code=r["code"])
        )
        if r["kind"] in ("posted", "post_pending"):
            total += r["amount"]
    return Journal(ledger_id=lid, date_from=date_from, date_to=date_to, entries=entries, total_debit=total)


class TrialLine(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    debit: int  # debit balance (debits - credits) when positive
    credit: int


class TrialBalance(msgspec.Struct, frozen=True, kw_only=True):
    ledger_id: int
    as_of: date
    lines: list[TrialLine]
    total_debit: int
    total_credit: int
    balanced: bool


async def trial_balance(conn: Any, actor: Actor, as_of: date) -> TrialBalance:
    _sid, lid = await _ledger(conn, actor)
    return await trial_balance_of(conn, lid, as_of)


async def trial_balance_of(conn: Any, ledger_id: int, as_of: date) -> TrialBalance:
    lines = []
    for b in await balances_on(conn, ledger_id, as_of, groups=chart.SUBLEDGERS):
        net = b.debits - b.credits
        if b.debits or b.credits:
            lines.append(TrialLine(code=b.code, name=b.name, debit=max(net, 0), credit=max(-net, 0)))
    td, tc = sum(x.debit for x in lines), sum(x.credit for x in lines)
    return TrialBalance(
        ledger_id=ledger_id, as_of=as_of, lines=lines, total_debit=td, total_credit=tc, balanced=td == tc
    )


# --- the fund report -----------------------------------------------------------------


class SourceRow(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    name: str
    granted: int  # in the period
    returned: int  # budget returned from the fund to this source in the period
    received: int  # money in on the bank for this fund from this source, in the period


class CategoryRow(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    redeemed: int
    redemptions: int
    suppliers: int


class FundReportRow(msgspec.Struct, frozen=True, kw_only=True):
    fund_id: int
    code: str
    name: str
    granted: int  # in the period, gross
    returned_to_sources: int  # budget returned from the fund to its sources in the period
    issued: int  # vouchers issued in the period (gross)
    returned_to_fund: int  # unspent voucher money back (expired, withdrawn) in the period
    reserved: int  # held by open reservations now
    redeemed: int  # spent at suppliers in the period, net of refunds
    paid: int  # of that, booked on the bank statement
    in_payout: int  # of that, in an exported payout not yet on the statement
    open_payable: int  # of that, not yet in a payout
    available: int  # can still be issued (now)
    vouchers: int  # issued in the period
    beneficiaries: int  # unique pseudonymous references among them
    provisions: int  # redemptions in the period
    by_source: list[SourceRow]
    by_category: list[CategoryRow]
    closed_at: datetime | None = None  # closed: no more vouchers, the rest back to the sources


class FundReport(msgspec.Struct, frozen=True, kw_only=True):
    sponsor_id: int
    date_from: date
    date_to: date
    funds: list[FundReportRow]


async def fund_report(conn: Any, actor: Actor, date_from: date, date_to: date) -> FundReport:
    sid, _lid = await _ledger(conn, actor)
    return await fund_report_of(conn, sid, date_from, date_to)


async def fund_report_of(conn: Any, sponsor_id: int, date_from: date, date_to: date) -> FundReport:
    """The report from one snapshot: every figure as of the same moment."""
    if conn.is_in_transaction():
        return await _fund_report_of(conn, sponsor_id, date_from, date_to)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _fund_report_of(conn, sponsor_id, date_from, date_to)


async def _fund_report_of(conn: Any, sponsor_id: int, date_from: date, date_to: date) -> FundReport:
    t0, t1 = _period(date_from, date_to)
    funds = await conn.fetch(
        "SELECT f.id, f.code, f.name, f.account_id, f.closed_at, a.credits_posted - a.debits_posted AS available "
        "FROM funds f "
        "JOIN accounts a ON a.id = f.account_id WHERE f.sponsor_id = $1 ORDER BY f.code",
        sponsor_id,
    )
    # One pass over the period's payable lines: per fund, supplier and state
    # (a few thousand groups, hashed in parallel); categories and distinct
    # suppliers per category are folded from those groups here.
    # A redemption refunded in full by the end of the period (its lines of a fund net to
    # nothing) gave nothing: it is no provision. Only redemptions with a refund are netted.
    lines = await conn.fetch(
        "SELECT l.fund_id, l.supplier_id, l.state, sum(l.amount)::bigint AS amount, "
        "count(*) FILTER (WHERE l.refund_id IS NULL AND coalesce(x.net, 1) <> 0) AS redemptions "
        "FROM payable_lines l LEFT JOIN (SELECT n.redemption_id, n.fund_id, sum(n.amount) AS net "
        "FROM payable_lines n WHERE n.redemption_id IN (SELECT redemption_id FROM payable_lines WHERE "
        "sponsor_id = $1 AND refund_id IS NOT NULL AND created_at < $3) AND n.sponsor_id = $1 AND n.created_at < $3 "
        "GROUP BY 1, 2) x ON x.redemption_id = l.redemption_id AND x.fund_id = l.fund_id "
        "WHERE l.sponsor_id = $1 AND l.created_at >= $2 AND l.created_at < $3 GROUP BY 1, 2, 3",
        sponsor_id,
        t0,
        t1,
    )
    category_of = {
        r["organisation_id"]: r["category"]
        for r in await conn.fetch(
            "SELECT organisation_id, category FROM suppliers WHERE organisation_id = ANY($1::bigint[])",
            list({r["supplier_id"] for r in lines}),
        )
    }
    # Reach: vouchers and distinct pseudonymous beneficiaries per fund, from
    # the shares alone (they carry the voucher's issue time and reference).
    # Two-level grouping hashes instead of sorting for count(DISTINCT).
    await conn.execute("SET LOCAL work_mem = '64MB'")
    reach = {
        r["fund_id"]: r
        for r in await conn.fetch(
            "SELECT fund_id, sum(n)::bigint AS vouchers, count(*) AS beneficiaries FROM (SELECT fund_id, "
            "beneficiary_ref, count(*) AS n FROM voucher_shares WHERE sponsor_id = $1 AND created_at >= $2 "
            "AND created_at < $3 GROUP BY 1, 2) x GROUP BY fund_id",
            sponsor_id,
            t0,
            t1,
        )
    }
    reserved = {
        r["fund_id"]: r["amount"]
        for r in await conn.fetch(
            "SELECT s.fund_id, sum(p.amount)::bigint AS amount FROM reservations r JOIN reservation_parts p "
            "ON p.reservation_id = r.id JOIN voucher_shares s ON s.voucher_id = r.voucher_id "
            "AND s.position = p.position WHERE r.state = 'held' AND s.sponsor_id = $1 GROUP BY s.fund_id",
            sponsor_id,
        )
    }
    out = []
    for f in funds:
        # each side read from its covering index alone (0006_reports.sql)
        moves = await conn.fetchrow(
            "SELECT (SELECT coalesce(sum(amount), 0) FROM transfers WHERE debit_account_id = $1 "
            "AND code = 'voucher_issued' AND created_at >= $2 AND created_at < $3)::bigint AS issued, "
            "(SELECT coalesce(sum(amount), 0) FROM transfers WHERE credit_account_id = $1 "
            "AND code IN ('voucher_expired', 'voucher_withdrawn') AND created_at >= $2 "
            "AND created_at < $3)::bigint AS returned",
            f["account_id"],
            t0,
            t1,
        )
        mine = [r for r in lines if r["fund_id"] == f["id"]]

        def total(states: tuple[str, ...], rows: list[Any] = mine) -> int:
            return sum(r["amount"] for r in rows if r["state"] in states)

        categories: dict[str, list[Any]] = {}
        for r in mine:
            categories.setdefault(category_of[r["supplier_id"]], []).append(r)
        sources = await conn.fetch(
            "SELECT s.code, s.name, coalesce((SELECT sum(g.amount) FROM grants g WHERE g.fund_id = $1 AND g.source = "
            "s.code AND g.created_at >= $2 AND g.created_at < $3), 0)::bigint AS granted, "
            "coalesce((SELECT sum(b.amount) FROM budget_returns b WHERE b.fund_id = $1 AND b.source = s.code "
            "AND b.created_at >= $2 AND b.created_at < $3), 0)::bigint AS returned, "
            "coalesce((SELECT sum(t.amount) FROM top_ups t JOIN statement_entries e ON e.id = t.statement_entry_id "
            "WHERE t.fund_id = $1 AND t.source = s.code AND coalesce(e.booking_date, e.value_date) >= $4 "
            "AND coalesce(e.booking_date, e.value_date) <= $5), 0)::bigint "
            "AS received FROM funding_sources s WHERE s.sponsor_id = $6 AND (EXISTS (SELECT 1 FROM grants g "
            "WHERE g.fund_id = $1 AND g.source = s.code) OR EXISTS (SELECT 1 FROM top_ups t WHERE t.fund_id = $1 "
            "AND t.source = s.code)) ORDER BY s.code",
            f["id"],
            t0,
            t1,
            date_from,
            date_to,
            sponsor_id,
        )
        by_source = [
            SourceRow(
                source=r["code"], name=r["name"], granted=r["granted"], returned=r["returned"], received=r["received"]
            )
            for r in sources
        ]
        every = ("open", "rejected", "returned", "in_payout", "paid")
        out.append(
            FundReportRow(
                fund_id=f["id"],
                code=f["code"],
                name=f["name"],
                granted=sum(s.granted for s in by_source),
                returned_to_sources=sum(s.returned for s in by_source),
                issued=moves["issued"],
                returned_to_fund=moves["returned"],
                reserved=reserved.get(f["id"], 0),
                redeemed=total(every),
                paid=total(("paid",)),
                in_payout=total(("in_payout",)),
                open_payable=total(("open", "rejected", "returned")),
                available=f["available"],
                vouchers=reach[f["id"]]["vouchers"] if f["id"] in reach else 0,
                beneficiaries=reach[f["id"]]["beneficiaries"] if f["id"] in reach else 0,
                provisions=sum(r["redemptions"] for r in mine),
                by_source=by_source,
                by_category=[
                    CategoryRow(
                        category=c,
                        redeemed=total(every, rows),
                        redemptions=sum(r["redemptions"] for r in rows),
                        suppliers=len({r["supplier_id"] for r in rows}),
                    )
                    for c, rows in sorted(categories.items())
                ],
                closed_at=f["closed_at"],
            )
        )
    return FundReport(sponsor_id=sponsor_id, date_from=date_from, date_to=date_to, funds=out)


# --- the supplier statement ----------------------------------------------------------


class SupplierLine(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    kind: str  # redemption | refund | payment | payment_rejected | payment_returned
    reference: str  # the supplier's own reference, or the EndToEndId
    voucher_code: str | None
    sponsor: str
    amount: int  # what it does to the open balance: + owed to the supplier, - paid or refunded
    payment_id: int | None
    covers: list[str]  # for a payment: the redemption references it paid


class SupplierStatement(msgspec.Struct, frozen=True, kw_only=True):
    supplier_id: int
    supplier_name: str
    date_from: date
    date_to: date
    opening_balance: int  # owed to the supplier at the start of the period
    lines: list[SupplierLine]
    closing_balance: int  # owed at the end: redeemed less refunded less paid


async def supplier_statement(
    conn: Any, actor: Actor, supplier_id: int, date_from: date, date_to: date
) -> SupplierStatement:
    """Everything between one supplier and the sponsors in a period; a sponsor sees only its own part."""
    if actor.role == "supplier":
        if actor.organisation_id != supplier_id:
            raise NotFound("no such supplier", code="supplier_not_found")
        sponsor: int | None = None
    elif actor.role in READ_ROLES:
        sponsor = await sponsor_scope(conn, actor, READ_ROLES)
    else:
        raise Forbidden(f"a {actor.role} token may not read supplier statements", code="role_not_allowed")
    name = await conn.fetchval(
        "SELECT o.name FROM suppliers s JOIN organisations o ON o.id = s.organisation_id WHERE s.organisation_id = $1",
        supplier_id,
    )
    if name is None:
        raise NotFound("no such supplier", code="supplier_not_found")
    t0, t1 = _period(date_from, date_to)
    movements = """
        SELECT l.created_at AS at, CASE WHEN l.refund_id IS NULL THEN 'redemption' ELSE 'refund' END AS kind,
               r.reference, v.code AS voucher_code, l.sponsor_id, l.amount, NULL::bigint AS payment_id
        FROM payable_lines l JOIN redemptions r ON r.id = l.redemption_id JOIN vouchers v ON v.id = r.voucher_id
        WHERE l.supplier_id = $1 AND ($2::bigint IS NULL OR l.sponsor_id = $2)
        UNION ALL
        SELECT p.booked_at, 'payment', p.end_to_end_id, NULL, p.sponsor_id, -p.amount, p.id
        FROM payments p WHERE p.supplier_id = $1 AND ($2::bigint IS NULL OR p.sponsor_id = $2)
          AND p.booked_at IS NOT NULL
        UNION ALL
        SELECT p.updated_at, 'payment_returned', p.end_to_end_id, NULL, p.sponsor_id, p.amount, p.id
        FROM payments p WHERE p.supplier_id = $1 AND ($2::bigint IS NULL OR p.sponsor_id = $2)
          AND p.state = 'returned'
    """
    opening = await conn.fetchval(
        f"SELECT coalesce(sum(amount), 0)::bigint FROM ({movements}) m WHERE m.at < $3", supplier_id, sponsor, t0
    )
    rows = await conn.fetch(
        f"SELECT m.*, o.name AS sponsor_name FROM ({movements}) m JOIN organisations o ON o.id = m.sponsor_id "
        # one order, every time: a co-funded redemption's lines share their time and kind
        "WHERE m.at >= $3 AND m.at < $4 ORDER BY m.at, m.kind, m.sponsor_id, m.reference, m.amount, m.payment_id "
        "LIMIT $5",
        supplier_id,
        sponsor,
        t0,
        t1,
        MAX_STATEMENT_LINES + 1,
    )
    if len(rows) > MAX_STATEMENT_LINES:  # never a silently cut statement with a wrong closing balance
        raise ValidationFailed(
            f"more than {MAX_STATEMENT_LINES} lines in this period; ask for a shorter period",
            code="period_too_large",
            errors=[{"field": "from", "message": "narrow the period"}],
        )
    covers: dict[int, list[str]] = {}
    pids = [r["payment_id"] for r in rows if r["payment_id"] is not None]
    for c in await conn.fetch(
        "SELECT pl.payment_id, r.reference FROM payment_lines pl JOIN payable_lines l ON l.id = pl.line_id "
        "JOIN redemptions r ON r.id = l.redemption_id WHERE pl.payment_id = ANY($1::bigint[]) AND l.amount > 0 "
        "ORDER BY l.created_at",
        pids,
    ):
        covers.setdefault(c["payment_id"], []).append(c["reference"])
    lines = [
        SupplierLine(
            at=r["at"],
            kind=r["kind"],
            reference=r["reference"],
            voucher_code=r["voucher_code"],
            sponsor=r["sponsor_name"],
            amount=r["amount"],
            payment_id=r["payment_id"],
            covers=covers.get(r["payment_id"], []) if r["kind"] == "payment" else [],
        )
        for r in rows
    ]
    return SupplierStatement(
        supplier_id=supplier_id,
        supplier_name=name,
        date_from=date_from,
        date_to=date_to,
        opening_balance=opening,
        lines=lines,
        closing_balance=opening + sum(x.amount for x in lines),
    )


# --- trace and sample ----------------------------------------------------------------


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    seq: int
    recorded_at: datetime
    description: str
    transfers: list[JournalTransfer]


class Step(msgspec.Struct, frozen=True, kw_only=True):
    step: str  # voucher | reservation | redemption | refund | payment | payout_file | status_report | statement_entry
    id: str
    at: datetime | None
    detail: dict[str, Any]
    ledger_entries: list[LedgerEntry]


class Trace(msgspec.Struct, frozen=True, kw_only=True):
    redemption_id: str
    steps: list[Step]


_REF_KEYS = frozenset({"voucher", "reservation", "redemption", "payment"})  # each has an index


async def _entries_by_ref(conn: Any, ledger_ids: Sequence[int], key: str, value: str) -> list[LedgerEntry]:
    return _group(await _rows_by_ref(conn, ledger_ids, key, value))


async def _rows_by_ref(conn: Any, ledger_ids: Sequence[int], key: str, value: str) -> list[Any]:
    assert key in _REF_KEYS
    rows: list[Any] = await conn.fetch(
        _ENTRY_SQL + f"WHERE e.refs ? '{key}' AND e.refs->>'{key}' = $1 AND e.ledger_id = ANY($2::bigint[]) "
        "ORDER BY e.created_at, e.seq, t.n",
        value,
        list(ledger_ids),
    )
    return rows


async def _entries_by_id(conn: Any, ids: Sequence[uuid.UUID]) -> list[LedgerEntry]:
    rows = await conn.fetch(_ENTRY_SQL + "WHERE e.id = ANY($1::uuid[]) ORDER BY e.created_at, e.seq, t.n", list(ids))
    return _group(rows)


def _group(rows: Sequence[Any]) -> list[LedgerEntry]:
    out: list[LedgerEntry] = []
    for r in rows:
        if not out or out[-1].id != str(r["id"]):
            out.append(
                LedgerEntry(
                    id=str(r["id"]),
                    seq=r["seq"],
                    recorded_at=r["created_at"],
                    description=r["description"],
                    transfers=[],
                )
            )
        out[-1].transfers.append(
            JournalTransfer(debit=r["dr"], credit=r["cr"], amount=r["amount"], kind=r["kind"], code=r["code"])
        )
    return out


async def trace(conn: Any, actor: Actor, redemption_id: uuid.UUID) -> Trace:
    """voucher -> reservation -> redemption -> payment -> payout file -> statement entry, with the
    ledger entries of each step, in the caller's sponsor's books."""
    sid, lid = await _ledger(conn, actor)
    return await trace_of(conn, sid, lid, redemption_id)


async def trace_of(conn: Any, sponsor_id: int, ledger_id: int, redemption_id: uuid.UUID) -> Trace:
    r = await conn.fetchrow(
        "SELECT r.*, v.code AS voucher_code, v.created_at AS voucher_at, v.amount AS voucher_amount, v.state AS "
        "voucher_state FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id WHERE r.id = $1 AND EXISTS "
        "(SELECT 1 FROM payable_lines l WHERE l.redemption_id = r.id AND l.sponsor_id = $2)",
        redemption_id,
        sponsor_id,
    )
    if r is None:
        raise NotFound("no such redemption in these books", code="redemption_not_found")
    lids = [ledger_id]
    steps = [
        Step(
            step="voucher",
            id=r["voucher_code"],
            at=r["voucher_at"],
            detail={"amount": r["voucher_amount"], "state": r["voucher_state"]},
            ledger_entries=await _entries_by_ref(conn, lids, "voucher", str(r["voucher_id"])),
        )
    ]
    if r["reservation_id"] is not None:
        res = await conn.fetchrow("SELECT * FROM reservations WHERE id = $1", r["reservation_id"])
        steps.append(
            Step(
                step="reservation",
                id=str(res["id"]),
                at=res["created_at"],
                detail={"amount": res["amount"], "state": res["state"], "description": res["description"]},
                ledger_entries=[
                    e
                    for e in await _entries_by_ref(conn, lids, "reservation", str(res["id"]))
                    if not any(t.kind == "post_pending" for t in e.transfers)
                ],
            )
        )
    # A refund's entry names its redemption too (refs "refund" and "redemption"): it is shown
    # with its refund, the redemption step keeps the redemption's own entries.
    by_refund: dict[str, list[Any]] = {}
    for row in await _rows_by_ref(conn, lids, "redemption", str(r["id"])):
        by_refund.setdefault(dict(row["refs"]).get("refund", ""), []).append(row)
    steps.append(
        Step(
            step="redemption",
            id=str(r["id"]),
            at=r["created_at"],
            detail={"amount": r["amount"], "refunded": r["refunded"], "reference": r["reference"]},
            ledger_entries=_group(by_refund.get("", [])),
        )
    )
    for f in await conn.fetch("SELECT * FROM refunds WHERE redemption_id = $1 ORDER BY created_at", r["id"]):
        steps.append(
            Step(
                step="refund",
                id=str(f["id"]),
                at=f["created_at"],
                detail={"amount": f["amount"], "reason": f["reason"]},
                ledger_entries=_group(by_refund.get(str(f["id"]), [])),
            )
        )
    pays = await conn.fetch(
        "SELECT DISTINCT p.*, f.msg_id, f.sha256, f.created_at AS file_at FROM payable_lines l "
        "JOIN payment_lines pl ON pl.line_id = l.id JOIN payments p ON p.id = pl.payment_id "
        "LEFT JOIN payout_files f ON f.id = p.file_id WHERE l.redemption_id = $1 AND l.sponsor_id = $2 ORDER BY p.id",
        r["id"],
        sponsor_id,
    )
    for p in pays:
        steps.append(
            Step(
                step="payment",
                id=p["end_to_end_id"],
                at=p["updated_at"],
                detail={
                    "payment_id": p["id"],
                    "amount": p["amount"],
                    "state": p["state"],
                    "creditor_iban": p["creditor_iban"],
                    "reason_code": p["reason_code"],
                },
                ledger_entries=await _entries_by_ref(conn, lids, "payment", p["end_to_end_id"]),
            )
        )
        if p["msg_id"] is not None:
            steps.append(
                Step(
                    step="payout_file",
                    id=p["msg_id"],
                    at=p["file_at"],
                    detail={"sha256": p["sha256"], "pmt_inf_id": p["pmt_inf_id"]},
                    ledger_entries=[],
                )
            )
        for s in await conn.fetch(
            "SELECT e.id, e.statement_id, e.booking_date, e.amount, e.credit_debit, e.bank_reference, e.match_kind, "
            "e.ledger_entry_id, x.kind, st.statement_id AS bank_statement FROM statement_entry_payments x "
            "JOIN statement_entries e ON e.id = x.statement_entry_id JOIN statements st ON st.id = e.statement_id "
            "WHERE x.payment_id = $1 ORDER BY e.id",
            p["id"],
        ):
            steps.append(
                Step(
                    step="statement_entry",
                    id=str(s["id"]),
                    at=None,
                    detail={
                        "statement": s["bank_statement"],
                        "booking_date": s["booking_date"].isoformat() if s["booking_date"] else None,
                        "amount": s["amount"],
                        "credit_debit": s["credit_debit"],
                        "bank_reference": s["bank_reference"],
                        "match": s["match_kind"],
                        "kind": s["kind"],
                    },
                    ledger_entries=await _entries_by_id(conn, [s["ledger_entry_id"]]) if s["ledger_entry_id"] else [],
                )
            )
    return Trace(redemption_id=str(r["id"]), steps=steps)


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    seed: str
    date_from: date
    date_to: date
    population: int  # redemptions in the period
    traces: list[Trace]


async def sample(conn: Any, actor: Actor, n: int, seed: str, date_from: date, date_to: date) -> Sample:
    """N redemptions of the period chosen by ``seed`` (md5 of seed and id: the same seed, the same sample)."""
    sid, lid = await _ledger(conn, actor)
    t0, t1 = _period(date_from, date_to)
    n = max(1, min(n, MAX_SAMPLE))
    population = await conn.fetchval(
        "SELECT count(DISTINCT redemption_id) FROM payable_lines WHERE sponsor_id = $1 AND refund_id IS NULL "
        "AND created_at >= $2 AND created_at < $3",
        sid,
        t0,
        t1,
    )
    ids = await conn.fetch(
        "SELECT redemption_id FROM (SELECT DISTINCT redemption_id FROM payable_lines WHERE sponsor_id = $1 "
        "AND refund_id IS NULL AND created_at >= $2 AND created_at < $3) x "
        "ORDER BY md5($4 || redemption_id::text), redemption_id LIMIT $5",
        sid,
        t0,
        t1,
        seed,
        n,
    )
    return Sample(
        seed=seed,
        date_from=date_from,
        date_to=date_to,
        population=population,
        traces=[await trace_of(conn, sid, lid, r["redemption_id"]) for r in ids],
    )


class RepeatBeneficiary(msgspec.Struct, frozen=True, kw_only=True):
    fund_id: int
    fund_code: str
    beneficiary_ref: str  # pseudonymous: the sponsor's own reference, never a name
    vouchers: int
    total: int
    voucher_codes: list[str]


async def repeat_beneficiaries(conn: Any, actor: Actor, date_from: date, date_to: date) -> list[RepeatBeneficiary]:
    """Beneficiaries who received more than one voucher from the same fund in the period."""
    sid, _lid = await _ledger(conn, actor)
    t0, t1 = _period(date_from, date_to)
    rows = await conn.fetch(
        "SELECT s.fund_id, f.code, v.beneficiary_ref, count(*) AS n, sum(s.amount)::bigint AS total, "
        "array_agg(v.code ORDER BY v.created_at) AS codes FROM voucher_shares s JOIN vouchers v ON v.id = s.voucher_id "
        "JOIN funds f ON f.id = s.fund_id WHERE f.sponsor_id = $1 AND v.created_at >= $2 AND v.created_at < $3 "
        "AND v.state <> 'withdrawn' GROUP BY s.fund_id, f.code, v.beneficiary_ref HAVING count(*) > 1 "
        "ORDER BY count(*) DESC, s.fund_id, v.beneficiary_ref LIMIT $4",
        sid,
        t0,
        t1,
        MAX_LIST + 1,
    )
    if len(rows) > MAX_LIST:  # never a silently cut list that looks complete
        raise ValidationFailed(
            f"more than {MAX_LIST} beneficiaries with several vouchers in this period; ask for a shorter period",
            code="period_too_large",
            errors=[{"field": "from", "message": "narrow the period"}],
        )
    return [
        RepeatBeneficiary(
            fund_id=r["fund_id"],
            fund_code=r["code"],
            beneficiary_ref=r["beneficiary_ref"],
            vouchers=r["n"],
            total=r["total"],
            voucher_codes=list(r["codes"]),
        )
        for r in rows
    ]


# --- the audit trail -----------------------------------------------------------------


class AuditLine(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: datetime
    actor: str
    organisation_id: int | None
    token_id: int | None
    request_id: str | None
    action: str
    subject_type: str
    subject_id: str
    before: Any
    after: Any


async def audit_trail(
    conn: Any, actor: Actor, *, after_id: int, limit: int, action: str | None, subject: str | None
) -> list[AuditLine]:
    sid = await sponsor_scope(conn, actor, READ_ROLES)
    rows = await conn.fetch(
        "SELECT * FROM audit_log WHERE sponsor_id = $1 AND id > $2 AND ($3::text IS NULL OR action = $3) "
        "AND ($4::text IS NULL OR subject_type || ':' || subject_id = $4) ORDER BY id LIMIT $5",
        sid,
        after_id,
        action,
        subject,
        max(1, min(limit, MAX_LIST)),
    )
    return [
        AuditLine(
            id=r["id"],
            at=r["at"],
            actor=r["actor"],
            organisation_id=r["organisation_id"],
            token_id=r["token_id"],
            request_id=r["request_id"],
            action=r["action"],
            subject_type=r["subject_type"],
            subject_id=r["subject_id"],
            before=r["before"],
            after=r["after"],
        )
        for r in rows
    ]
