"""Bank statements into the books: import, match, book, exceptions, balance check.

An upload may hold several statements (camt.053/.054, MT940); every one must
be of one of the caller's sponsor's debtor accounts, or the whole file is
refused and nothing is booked. The same statement twice changes nothing; an
entry already seen in another statement (overlap) is kept once, by its
fingerprint, and booked once.

New entries are matched by ``reconciliation.match`` (pure) against what the
books expect, in DESIGN.md's order: EndToEndId; batch PmtInfId with count and
total; returns; fund top-up references; amount and date only as a suggestion.

    payment booked      in_transit:<iban> -> bank:<iban>   payment booked, its lines paid
    payment returned    bank:<iban> -> payable:<supplier>  payment returned, details blocked
    top-up received     bank:<iban> -> funding:<source>    the fund's source with the most still to come
    first statement     bank:<iban> -> funding:opening_balance, its opening balance

Booked payments are posted as one ledger entry per statement (one transfer,
the sum): the entry's refs name the statement and the per-payment detail is
in ``statement_entry_payments``, so a 100,000-line statement is one posting,
not 100,000. Returns and top-ups are an entry each.

After an import, the ledger's ``bank:<iban>`` balance at the statement date
(by value date) is compared with the statement's closing balance; the
difference is stored on the statement and returned, never hidden.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import msgspec

from ledger.model import MAX_TRANSFERS_PER_ENTRY, EntrySpec, TransferSpec, new_entry_id
from reconciliation import sequence
from reconciliation.errors import ReconciliationError
from reconciliation.match import (
    ExpectedBlock,
    ExpectedPayment,
    OpenAmount,
    TopUpTarget,
    match_entries,
    normalise_reference,
)
from reconciliation.model import Statement
from reconciliation.parse import parse_statement
from settlement import audit, chart
from settlement.auth import Actor
from settlement.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, ValidationFailed
from settlement.payouts.flows import READ_ROLES, WRITE_ROLES, settle_runs
from settlement.posting import post_all
from settlement.sponsors.flows import sponsor_scope
from settlement.suppliers import flows as suppliers

MAX_LIST = 500
OPENING_SOURCE = "opening_balance"
SUGGESTION_WINDOW_DAYS = 5
# How many of an account's latest day statements the sequence check reads: a numbering
# whose last step lies further back (a legal number unchanged for weeks) is not trusted.
SEQUENCE_WINDOW = 32


class StatementSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    debtor_account_id: int
    account_iban: str
    kind: str
    message_id: str
    statement_id: str
    statement_date: date
    opening_balance: int | None
    closing_balance: int | None
    entries: int
    entries_new: int
    entries_duplicate: int
    matched: int
    unmatched: int
    ledger_balance: int | None
    balance_difference: int | None  # closing balance minus the ledger; 0 when they agree
    imported_by: str
    imported_at: datetime
    duplicate: bool = False


class ImportResult(msgspec.Struct, frozen=True, kw_only=True):
    file_sha256: str
    statements: list[StatementSummary]
    payments_booked: int
    payments_returned: int
    top_ups: int
    runs_settled: list[str]


class EntryOut(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    statement_id: int
    position: int
    amount: int
    credit_debit: str
    reversal: bool
    booking_date: date | None
    value_date: date | None
    bank_reference: str | None
    end_to_end_id: str | None
    pmt_inf_id: str | None
    structured_reference: str | None
    return_reason: str | None
    state: str
    match_kind: str | None
    manual: bool
    reason: str | None
    suggestions: list[int]
    payments: list[int]
    ledger_entry_id: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    counterparty_name: str | None = None
    remittance: str | None = None


def _label(actor: Actor | str) -> str:
    return actor if isinstance(actor, str) else actor.label


# --- import --------------------------------------------------------------------------


async def import_file(conn: Any, actor: Actor | str, data: bytes, *, max_bytes: int) -> ImportResult:
    scope = await sponsor_scope(conn, actor, WRITE_ROLES)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the file is larger than {max_bytes} bytes")
    try:
        statements = parse_statement(data, max_bytes=max_bytes)
    except ReconciliationError as exc:
        raise BadRequest(str(exc), code=exc.code) from None
    if not statements:
        raise BadRequest("the file holds no statement", code="statement_empty")
    accounts = []
    for st in statements:
        found = await conn.fetch(
            "SELECT d.*, s.ledger_id FROM debtor_accounts d JOIN sponsors s ON s.organisation_id = d.sponsor_id "
            "WHERE d.iban = $1 AND ($2::bigint IS NULL OR d.sponsor_id = $2) ORDER BY d.id LIMIT 2",
            st.account_iban,
            scope,
        )
        if len(found) > 1:  # only the operator sees every sponsor; a shared IBAN must be imported per sponsor
            raise Conflict(
                f"account {st.account_iban} is registered by several sponsors; import it as that sponsor (API)",
                code="statement_account_ambiguous",
            )
        acct = found[0] if found else None
        if acct is None:
            raise NotFound(
                f"statement {st.statement_id} is of account {st.account_iban}, which is not one of "
                "this sponsor's bank accounts; nothing was imported",
                code="statement_account_unknown",
            )
        if st.currency != "EUR":
            raise ValidationFailed(
                f"statement {st.statement_id} is in {st.currency}; only EUR accounts are kept",
                code="statement_currency_unsupported",
                errors=[{"field": "currency", "message": st.currency}],
            )
        if (problem := st.balance_problem()) is not None:
            # A statement that contradicts itself (a truncated or edited file) cannot be
            # reconciled: booked, it would stand in the way of the bank's good copy.
            raise ValidationFailed(
                f"{problem}; the file does not add up, nothing was imported",
                code="statement_does_not_add_up",
                errors=[{"field": "closing_balance", "message": problem}],
            )
        accounts.append(acct)
    file_sha = hashlib.sha256(data).hexdigest()
    sponsor_id = accounts[0]["sponsor_id"]
    file_id = await conn.fetchval(
        "INSERT INTO statement_files (sponsor_id, sha256, size, content, imported_by) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (sponsor_id, sha256) DO UPDATE SET sha256 = EXCLUDED.sha256 RETURNING id",
        sponsor_id,
        file_sha,
        len(data),
        data,
        _label(actor),
    )
    summaries: list[StatementSummary] = []
    totals = {"booked": 0, "returned": 0, "top_ups": 0}
    settled: list[str] = []
    for i, (st, acct) in enumerate(zip(statements, accounts, strict=True)):
        # one importer per bank account at a time: matching reads what booking writes
        await _lock_account(conn, acct["id"])
        st_sha = hashlib.sha256(f"{file_sha}:{i}:{st.statement_id}".encode()).hexdigest()
        seen = await conn.fetchval(
            "SELECT id FROM statements WHERE debtor_account_id = $1 AND sha256 = $2", acct["id"], st_sha
        )
        if seen is not None:
            summaries.append(msgspec.structs.replace(await _summary(conn, seen), duplicate=True))
            continue
        sid, counts = await _import_one(conn, actor, st, acct, st_sha, file_id)
        for k in totals:
            totals[k] += counts[k]
        settled.extend(counts["settled"])
        summaries.append(await _summary(conn, sid))
    return ImportResult(
        file_sha256=file_sha,
        statements=summaries,
        payments_booked=totals["booked"],
        payments_returned=totals["returned"],
        top_ups=totals["top_ups"],
        runs_settled=settled,
    )


async def _lock_account(conn: Any, debtor_account_id: int) -> None:
    """Until commit: one importer or resolver per bank account (matching reads what booking writes)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('statement_import'), $1::int)", debtor_account_id)


_ENTRY_COLUMNS = (
    "id", "statement_id", "sponsor_id", "debtor_account_id", "fingerprint", "position", "amount", "credit_debit",
    "reversal", "booking_date", "value_date", "bank_reference", "end_to_end_id", "pmt_inf_id",
    "structured_reference", "return_reason", "detail", "state", "match_kind", "reason", "suggestions",
    "ledger_entry_id",
)  # fmt: skip


async def _import_one(
    conn: Any, actor: Actor | str, st: Statement, acct: Any, st_sha: str, file_id: int
) -> tuple[int, dict[str, Any]]:
    numbers = sequence.numbering(st)
    fingerprints = st.fingerprints()
    content_sha = None
    if st.opening_balance_cents is not None:
        await _check_day_statement(conn, st, acct, numbers)
        content_sha = hashlib.sha256(
            "\x1f".join((str(st.opening_balance_cents), str(st.closing_balance_cents), *fingerprints)).encode()
        ).hexdigest()
        # A day statement says what the account did that day once: the same id, or the
        # same number in the bank's series, and date with other content is a bank's
        # correction, whose differences would be booked on top of the first (and its
        # dropped entries kept).
        same_day = await conn.fetch(
            "SELECT statement_id, kind, statement_date, bank_created_at, legal_sequence, electronic_sequence, "
            "sequence_page, content_sha256 FROM statements WHERE debtor_account_id = $1 AND kind = $2 "
            "AND statement_date = $3 AND content_sha256 IS NOT NULL",
            acct["id"],
            st.kind,
            st.statement_date,
        )
        before = [
            r for r in same_day if r["statement_id"] == st.statement_id or sequence.same_number(_numbering(r), numbers)
        ]
        if before and all(r["content_sha256"] != content_sha for r in before):
            raise Conflict(
                f"statement {st.statement_id} of {st.statement_date} for {st.account_iban} was imported already "
                f"(as {', '.join(sorted({r['statement_id'] for r in before}))}) with other balances or entries; a "
                "corrected statement is not booked over the first, nothing was imported",
                code="statement_differs",
            )
    sid = await conn.fetchval(
        "INSERT INTO statements (sponsor_id, debtor_account_id, file_id, kind, message_id, statement_id, "
        "electronic_sequence, account_iban, statement_date, opening_balance, closing_balance, entries, entries_new, "
        "entries_duplicate, sha256, imported_by, content_sha256, legal_sequence, sequence_page, bank_created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, 0, $13, $14, $15, $16, $17, $18) RETURNING id",
        acct["sponsor_id"],
        acct["id"],
        file_id,
        st.kind,
        st.message_id,
        st.statement_id,
        numbers.electronic,
        st.account_iban,
        st.statement_date,
        st.opening_balance_cents,
        st.closing_balance_cents,
        len(st.entries),
        st_sha,
        _label(actor),
        content_sha,
        numbers.legal,
        numbers.page,
        st.created_at,
    )
    # A notification of something pending is not kept: the booking comes later.
    booked = [(e, fp) for e, fp in zip(st.entries, fingerprints, strict=True) if e.is_booked]
    seen = {
        r["fingerprint"]
        for r in await conn.fetch(
            "SELECT fingerprint FROM statement_entries WHERE debtor_account_id = $1 AND fingerprint = ANY($2::text[])",
            acct["id"],
            [fp for _, fp in booked],
        )
    }
    new = [(e, fp) for e, fp in booked if fp not in seen]
    ids = [
        r[0]
        for r in await conn.fetch(
            "SELECT nextval(pg_get_serial_sequence('statement_entries', 'id')) FROM generate_series(1, $1)", len(new)
        )
    ]
    new_ids = {e.index: i for (e, _), i in zip(new, ids, strict=True)}
    counts: dict[str, Any] = {"booked": 0, "returned": 0, "top_ups": 0, "settled": []}

    await _opening_balance(conn, actor, st, acct, sid)
    decisions = await _decide(conn, acct, [e for e, _ in new])
    plan = await _plan(conn, new_ids, decisions)
    # Book what matched (one ledger entry per booking day: a statement or
    # notification may span days), then write every new entry once, in its
    # final state.
    day_of = {new_ids[e.index]: e.booking_date or e.value_date or st.statement_date for e, _ in new}
    by_day: dict[date, list[tuple[int, list[int]]]] = {}
    for eid, pids in plan.bookings:
        by_day.setdefault(day_of[eid], []).append((eid, pids))
    ledger_entry_of: dict[int, uuid.UUID | None] = {}
    for day, group in sorted(by_day.items()):
        posted = await _post_bookings(conn, acct, sid, group, day)
        ledger_entry_of.update((eid, posted) for eid, _ in group)
    final: dict[int, tuple[str, str | None, str | None, list[int]]] = {
        eid: ("matched", "batch" if len(pids) > 1 else "payment", None, []) for eid, pids in plan.bookings
    }
    final.update({eid: ("unmatched", None, why, sug) for eid, why, sug in plan.unmatched})
    records = []
    for (e, fp), eid in zip(new, ids, strict=True):
        d0 = e.details[0] if e.details else None
        state, kind, why, sug = final.get(eid, ("unmatched", None, None, []))
        records.append(
            (
                eid,
                sid,
                acct["sponsor_id"],
                acct["id"],
                fp,
                e.index,
                e.amount_cents,
                e.credit_debit,
                e.reversal,
                e.booking_date,
                e.value_date,
                e.bank_reference,
                d0.end_to_end_id if d0 else None,
                e.batch.pmt_inf_id if e.batch else None,
                d0.structured_reference if d0 else None,
                next((d.return_reason for d in e.details if d.return_reason), None),
                e,  # the jsonb codec encodes the struct as to_builtins would
                state,
                kind,
                why,
                sug,
                ledger_entry_of.get(eid),
            )
        )
    await conn.copy_records_to_table("statement_entries", records=records, columns=_ENTRY_COLUMNS)
    if plan.bookings:
        await conn.copy_records_to_table(
            "statement_entry_payments",
            records=[(eid, pid, "booked") for eid, pids in plan.bookings for pid in pids],
            columns=("statement_entry_id", "payment_id", "kind"),
        )
    returned, top_ups = await _book_later(conn, actor, st, acct, new_ids, plan.later)
    counts.update(booked=sum(len(p) for _, p in plan.bookings), returned=returned, top_ups=top_ups)
    counts["settled"] = await settle_runs(conn, acct["id"])

    matched = await conn.fetchval(
        "SELECT count(*) FROM statement_entries WHERE statement_id = $1 AND state <> 'unmatched'", sid
    )
    ledger_balance = await bank_balance(conn, acct["bank_account_id"], st.statement_date)
    diff = None if st.closing_balance_cents is None else st.closing_balance_cents - ledger_balance
    await conn.execute(
        "UPDATE statements SET entries_new = $2, entries_duplicate = $3, matched = $4, unmatched = $5, "
        "ledger_balance = $6, balance_difference = $7 WHERE id = $1",
        sid,
        len(new),
        len(st.entries) - len(new),
        matched,
        len(new) - matched,
        ledger_balance,
        diff,
    )
    await audit.record(
        conn,
        actor,
        "statement.imported",
        "statement",
        sid,
        sponsor_id=acct["sponsor_id"],
        after={
            "statement": st.statement_id,
            "account": st.account_iban,
            "entries": len(st.entries),
            "new": len(new),
            "matched": matched,
            "balance_difference": diff,
        },
    )
    return sid, counts


def _numbering(r: Any) -> sequence.Numbering:
    created = r["bank_created_at"]
    return sequence.Numbering(
        kind=r["kind"],
        statement_date=r["statement_date"],
        created_on=None if created is None else created.date(),
        legal=r["legal_sequence"],
        electronic=r["electronic_sequence"],
        page=r["sequence_page"],
    )


async def _check_day_statement(conn: Any, st: Statement, acct: Any, numbers: sequence.Numbering) -> None:
    """A day statement continues the account's series of day statements: not older than the
    last one (``statement_out_of_order``), opening where it closed, and numbered next where the
    bank numbers its statements (``statement_gap``). camt.054 notifications carry no balances
    and are never part of the series."""
    history = await conn.fetch(
        "SELECT statement_id, kind, statement_date, bank_created_at, legal_sequence, electronic_sequence, "
        "sequence_page, closing_balance FROM statements WHERE debtor_account_id = $1 AND opening_balance IS NOT NULL "
        "ORDER BY statement_date DESC, id DESC LIMIT $2",
        acct["id"],
        SEQUENCE_WINDOW,
    )
    if not history:
        return
    last = history[0]
    if last["statement_date"] > st.statement_date:
        # its entries are inside the later statement's opening balance already
        raise Conflict(
            f"statement {st.statement_id} of {st.statement_date} is older than the statement of "
            f"{last['statement_date']} already imported for {st.account_iban}; import day statements in date order",
            code="statement_out_of_order",
        )
    if (
        last["statement_date"] < st.statement_date
        and last["closing_balance"] is not None
        and last["closing_balance"] != st.opening_balance_cents
    ):
        # A statement in between is missing: once this one is in, the missing
        # one would be refused as out of order and its entries never booked.
        raise Conflict(
            f"statement {st.statement_id} of {st.statement_date} opens at {st.opening_balance_cents} cents, but "
            f"the last statement imported for {st.account_iban} ({last['statement_id']} of "
            f"{last['statement_date']}) closed at {last['closing_balance']}: a statement in between is missing; "
            "import it first",
            code="statement_gap",
        )
    skipped = sequence.gap([_numbering(r) for r in history], numbers)
    if skipped is not None:
        # The balances may meet across a missing statement (its lines offset each
        # other); the bank's numbering still shows it, and its lines must be booked.
        raise Conflict(
            f"statement {st.statement_id} of {st.statement_date} is number {skipped.new} ({skipped.field}), but the "
            f"last statement imported for {st.account_iban} ({last['statement_id']} of {last['statement_date']}) "
            f"is number {skipped.last}: statement {skipped.expected} is missing; import it first",
            code="statement_gap",
        )


async def bank_balance(conn: Any, bank_account_id: int, on: date) -> int:
    """Debits minus credits of ``bank:<iban>`` for entries valued on or before ``on``."""
    value: int = await conn.fetchval(
        "SELECT coalesce(sum(CASE WHEN t.debit_account_id = $1 THEN t.amount ELSE -t.amount END), 0)::bigint "
        "FROM transfers t JOIN journal_entries e ON e.id = t.entry_id "
        "WHERE (t.debit_account_id = $1 OR t.credit_account_id = $1) AND t.kind = 'posted' AND e.value_date <= $2",
        bank_account_id,
        on,
    )
    return value


async def _opening_balance(conn: Any, actor: Actor | str, st: Statement, acct: Any, sid: int) -> None:
    """The first day statement of an account brings the money that was there before the platform.

    Its opening balance is the account's balance at the start of its first
    booking day, so it already holds every entry the bank booked before that
    day, including those of notifications (camt.054) imported before it:
    their entries are booked on ``bank:<iban>`` when they match (or when a
    person resolves them). Posting the whole opening balance would count
    those twice. So the posting is the opening balance less the entries
    already imported for this account with a booking date before that day,
    matched or not: once they are all booked, ``bank:<iban>`` at the start
    of the day equals the opening balance; one still in the queue shows as
    a balance difference until it is resolved, as in any statement. Entries
    on or after that day are this statement's own (a notification's copy is
    recognised by its fingerprint) and are not in its opening balance.
    """
    if st.opening_balance_cents is None:
        return
    earlier = await conn.fetchval(
        "SELECT count(*) FROM statements WHERE debtor_account_id = $1 AND id <> $2 AND opening_balance IS NOT NULL",
        acct["id"],
        sid,
    )
    # Only an opening balance already taken in counts.
    opened = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM transfers WHERE debit_account_id = $1 AND code = 'opening_balance') "
        "OR EXISTS (SELECT 1 FROM transfers WHERE credit_account_id = $1 AND code = 'opening_balance')",
        acct["bank_account_id"],
    )
    if earlier or opened:
        return
    day = min((e.booking_date or st.statement_date for e in st.entries), default=st.statement_date)
    seen_before: int = await conn.fetchval(
        "SELECT coalesce(sum(CASE WHEN e.credit_debit = 'CRDT' THEN e.amount ELSE -e.amount END), 0)::bigint "
        "FROM statement_entries e JOIN statements s ON s.id = e.statement_id "
        "WHERE e.debtor_account_id = $1 AND coalesce(e.booking_date, e.value_date, s.statement_date) < $2",
        acct["id"],
        day,
    )
    amount = st.opening_balance_cents - seen_before
    if amount == 0:
        return
    ids = await chart.ensure(
        conn, acct["ledger_id"], [(chart.funding(OPENING_SOURCE), "Opening balance of the bank accounts")]
    )
    await conn.execute(
        "INSERT INTO funding_sources (sponsor_id, code, name, account_id) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING",
        acct["sponsor_id"],
        OPENING_SOURCE,
        "Opening balance of the bank accounts",
        ids[chart.funding(OPENING_SOURCE)],
    )
    dr, cr = (acct["bank_account_id"], ids[chart.funding(OPENING_SOURCE)])
    if amount < 0:
        dr, cr = cr, dr
    await post_all(
        conn,
        [
            EntrySpec(
                id=new_entry_id(),
                ledger_id=acct["ledger_id"],
                description=f"Opening balance of {st.account_iban} from statement {st.statement_id}",
                value_date=day,
                refs={"statement": str(sid)},
                transfers=(
                    TransferSpec(debit_account_id=dr, credit_account_id=cr, amount=abs(amount), code="opening_balance"),
                ),
            )
        ],
        "a statement posting",
    )


async def _decide(conn: Any, acct: Any, entries: Sequence[Any]) -> list[Any]:
    """Build what the books expect for this account and let the pure matcher decide."""
    if not entries:
        return []
    # Open payments, and the booked ones this statement names (a return names
    # the payment it returns): not every payment the account ever booked.
    named = sorted({i for e in entries for d in e.details for i in (d.end_to_end_id, d.original_end_to_end_id) if i})
    pays = await conn.fetch(
        "SELECT p.id, p.end_to_end_id, p.amount, p.creditor_iban, p.pmt_inf_id, p.state, r.execution_date "
        "FROM payments p JOIN payout_runs r ON r.id = p.run_id WHERE r.debtor_account_id = $1 "
        "AND (p.state IN ('sent', 'accepted') OR (p.state = 'booked' AND p.end_to_end_id = ANY($2::text[])))",
        acct["id"],
        named,
    )
    expected = {
        p["end_to_end_id"]: ExpectedPayment(
            payment_id=str(p["id"]),
            end_to_end_id=p["end_to_end_id"],
            amount_cents=p["amount"],
            creditor_iban=p["creditor_iban"],
            pmt_inf_id=p["pmt_inf_id"],
        )
        for p in pays
    }
    # Blocks only for the PmtInfIds that entries name as their batch: the
    # matcher looks a block up by nothing else.
    batch_ids = {e.batch.pmt_inf_id for e in entries if e.batch is not None and e.batch.pmt_inf_id}
    blocks: dict[str, list[Any]] = {}
    for p in pays:
        if p["state"] != "booked" and p["pmt_inf_id"] in batch_ids:
            blocks.setdefault(p["pmt_inf_id"], []).append(p)
    # A block counts while every payment the bank executed from it is still
    # open. Payments the bank rejected (pain.002) were never executed: the
    # batch line shows the rest, with their count and total.
    full = {
        r["pmt_inf_id"]: r["n"]
        for r in await conn.fetch(
            "SELECT pmt_inf_id, count(*) FILTER (WHERE state <> 'rejected') AS n FROM payments "
            "WHERE pmt_inf_id = ANY($1::text[]) GROUP BY pmt_inf_id",
            list(blocks),
        )
    }
    expected_blocks = {
        k: ExpectedBlock(
            block_id=k,
            pmt_inf_id=k,
            count=len(v),
            total_cents=sum(p["amount"] for p in v),
            end_to_end_ids=tuple(p["end_to_end_id"] for p in v),
        )
        for k, v in blocks.items()
        if full.get(k) == len(v)
    }
    funds = await conn.fetch("SELECT id, top_up_reference FROM funds WHERE sponsor_id = $1", acct["sponsor_id"])
    top_ups = {normalise_reference(f["top_up_reference"]): TopUpTarget(fund_id=str(f["id"])) for f in funds}
    open_amounts = [
        OpenAmount(payment_id=str(p["id"]), amount_cents=p["amount"], execution_date=p["execution_date"])
        for p in pays
        if p["state"] != "booked" and p["execution_date"] is not None
    ]
    return match_entries(
        entries,
        expected_payments=expected,
        expected_blocks=expected_blocks,
        top_up_references=top_ups,
        open_amounts=open_amounts,
        window_days=SUGGESTION_WINDOW_DAYS,
    )


class _Plan(msgspec.Struct, kw_only=True):
    bookings: list[tuple[int, list[int]]]  # statement entry id -> payment ids it books
    later: list[Any]  # return and top-up decisions
    unmatched: list[tuple[int, str, list[int]]]  # entry id, why, suggested payment ids


async def _plan(conn: Any, new_ids: dict[int, int], decisions: list[Any]) -> _Plan:
    """Turn the matcher's decisions into work; a payment already booked is not booked again.

    The payments are locked (in id order) and their state read after the lock:
    a pain.002 rejection or a person's manual match that committed meanwhile
    is seen, and one that comes later waits for this import.
    """
    states = {
        r["id"]: r["state"]
        for r in await conn.fetch(
            "SELECT id, state FROM payments WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
            [int(p) for d in decisions if d.kind in ("payment", "batch") for p in d.payment_ids],
        )
    }
    plan = _Plan(bookings=[], later=[], unmatched=[])
    for d in decisions:
        entry_id = new_ids[d.entry_index]
        pids = [int(p) for p in d.payment_ids]
        if d.kind in ("payment", "batch"):
            done = [p for p in pids if states.get(p) not in ("sent", "accepted")]
            if done:
                plan.unmatched.append((entry_id, f"payment {done[0]} is already {states.get(done[0])}", []))
            else:
                plan.bookings.append((entry_id, pids))
        elif d.kind in ("return", "top_up"):
            plan.later.append(d)
        else:
            plan.unmatched.append((entry_id, d.reason or "no rule matched", [int(x) for x in d.suggestions]))
    return plan


async def _book_later(
    conn: Any, actor: Actor | str, st: Statement, acct: Any, new_ids: dict[int, int], decisions: list[Any]
) -> tuple[int, int]:
    """Returns and top-ups, after the bookings (a return in the same statement needs its payment booked)."""
    by_index = {e.index: e for e in st.entries}
    returns = top_ups = 0
    for d in decisions:
        entry_id = new_ids[d.entry_index]
        entry = by_index[d.entry_index]
        day = entry.booking_date or entry.value_date or st.statement_date
        if d.kind == "top_up":
            assert d.top_up is not None
            assert d.top_up.fund_id is not None
            if await _book_top_up(conn, acct, entry_id, int(d.top_up.fund_id), entry.amount_cents, day):
                top_ups += 1
            else:
                why = f"money for fund {d.top_up.fund_id}, which has no grant yet to receive it for: resolve by hand"
                await conn.execute("UPDATE statement_entries SET reason = $2 WHERE id = $1", entry_id, why)
            continue
        pids = [int(p) for p in d.payment_ids]
        rows = await conn.fetch("SELECT * FROM payments WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", pids)
        not_booked = [r for r in rows if r["state"] != "booked"]
        if not pids or not_booked:
            why = (
                f"return of payment {not_booked[0]['id']}, which is {not_booked[0]['state']}, not booked"
                if not_booked
                else "a return naming no payment of ours: resolve by hand"
            )
            await conn.execute("UPDATE statement_entries SET reason = $2 WHERE id = $1", entry_id, why)
            continue
        if len(pids) > MAX_TRANSFERS_PER_ENTRY:
            why = f"a return of {len(pids)} payments in one line, more than one posting holds: resolve by hand"
            await conn.execute("UPDATE statement_entries SET reason = $2 WHERE id = $1", entry_id, why)
            continue
        if len(pids) > 1 and sum(r["amount"] for r in rows) != entry.amount_cents:
            why = (
                f"a return of {len(pids)} payments for {entry.amount_cents} cents, but they add up to "
                f"{sum(r['amount'] for r in rows)}: resolve by hand"
            )
            await conn.execute("UPDATE statement_entries SET reason = $2 WHERE id = $1", entry_id, why)
            continue
        reason = d.return_reasons[0] if d.return_reasons else None
        await _book_return(conn, actor, acct, entry_id, rows, entry.amount_cents, reason, day)
        returns += len(pids)
    return returns, top_ups


async def _post_bookings(
    conn: Any, acct: Any, sid: int, bookings: list[tuple[int, list[int]]], value_date: date
) -> uuid.UUID | None:
    """in_transit -> bank for every payment the entries show debited: one ledger entry, the sum."""
    if not bookings:
        return None
    payment_ids = [p for _, pids in bookings for p in pids]
    total = await conn.fetchval("SELECT sum(amount)::bigint FROM payments WHERE id = ANY($1::bigint[])", payment_ids)
    ledger_entry = new_entry_id()
    await post_all(
        conn,
        [
            EntrySpec(
                id=ledger_entry,
                ledger_id=acct["ledger_id"],
                description=f"{len(payment_ids)} payment(s) booked on the bank statement",
                value_date=value_date,
                refs={"statement": str(sid), "payments": str(len(payment_ids))},
                transfers=(
                    TransferSpec(
                        debit_account_id=acct["in_transit_account_id"],
                        credit_account_id=acct["bank_account_id"],
                        amount=total,
                        code="payment_booked",
                    ),
                ),
            )
        ],
        "a statement posting",
    )
    done = await conn.execute(
        "UPDATE payments SET state = 'booked', booked_at = now(), resolve_entry_id = $2, updated_at = now() "
        "WHERE id = ANY($1::bigint[]) AND state IN ('sent', 'accepted')",
        payment_ids,
        ledger_entry,
    )
    if done != f"UPDATE {len(set(payment_ids))}":  # callers lock and check first: this is the last line of defence
        raise Conflict("a payment changed state while it was being booked; retry", code="payment_not_open")
    await conn.execute("UPDATE payable_lines SET state = 'paid' WHERE payment_id = ANY($1::bigint[])", payment_ids)
    return ledger_entry


async def _book_return(
    conn: Any,
    actor: Actor | str,
    acct: Any,
    entry_id: int,
    pays: Sequence[Any],
    amount: int,
    reason_code: str | None,
    day: date,
    *,
    manual: bool = False,
    charges: int = 0,
) -> None:
    """bank -> payable: the money came back; the suppliers' details are blocked until fixed.

    ``pays`` are the payments' rows, locked and checked (booked, at most
    ``MAX_TRANSFERS_PER_ENTRY``) by the callers. One ledger entry with a
    transfer per payment. A single payment takes the entry's amount (what
    really came back); several must add up to it (checked by the callers).
    ``charges``: what the banks kept of a single returned payment (a person
    matched a short return), booked ``external:bank_charges -> payable`` so
    the supplier is owed the whole payment again, as its reopened lines say.
    """
    payable_ids = {
        r["code"]: r["id"]
        for r in await conn.fetch(
            "SELECT id, code FROM accounts WHERE ledger_id = $1 AND code = ANY($2::text[])",
            acct["ledger_id"],
            [chart.payable(p["supplier_id"]) for p in pays],
        )
    }
    ledger_entry = new_entry_id()
    what = pays[0]["end_to_end_id"] if len(pays) == 1 else f"{len(pays)} payments"
    kept: tuple[TransferSpec, ...] = ()
    if charges:
        fees = await chart.ensure_external(conn, acct["ledger_id"], "bank_charges")
        kept = (
            TransferSpec(
                debit_account_id=fees,
                credit_account_id=payable_ids[chart.payable(pays[0]["supplier_id"])],
                amount=charges,
                code="bank_charges",
            ),
        )
    await post_all(
        conn,
        [
            EntrySpec(
                id=ledger_entry,
                ledger_id=acct["ledger_id"],
                description=f"Payment {what} returned by the bank ({reason_code or 'no reason given'})",
                value_date=day,
                refs={"payment": pays[0]["end_to_end_id"], "statement_entry": str(entry_id)},
                transfers=tuple(
                    TransferSpec(
                        debit_account_id=acct["bank_account_id"],
                        credit_account_id=payable_ids[chart.payable(p["supplier_id"])],
                        amount=amount if len(pays) == 1 else p["amount"],
                        code="payment_returned",
                    )
                    for p in pays
                )
                + kept,
            )
        ],
        "a statement posting",
    )
    for p in pays:
        blocked = await suppliers.block(
            conn,
            actor,
            p["supplier_id"],
            f"payment {p['end_to_end_id']} returned by the bank: {reason_code or 'no reason given'}",
            details_id=p["bank_details_id"],
            sponsor_id=p["sponsor_id"],
        )
        await conn.execute(
            "UPDATE payments SET state = 'returned', reason_code = $2, updated_at = now() WHERE id = $1",
            p["id"],
            reason_code,
        )
        await conn.execute(
            "UPDATE payable_lines SET state = $2, payment_id = NULL WHERE payment_id = $1",
            p["id"],
            "returned" if blocked else "open",
        )
        await conn.execute(
            "INSERT INTO statement_entry_payments (statement_entry_id, payment_id, kind) VALUES ($1, $2, 'returned')",
            entry_id,
            p["id"],
        )
    await _mark_matched(conn, entry_id, "return", ledger_entry, manual=manual)


async def _book_top_up(
    conn: Any, acct: Any, entry_id: int, fund_id: int, amount: int, day: date, *, manual: bool = False
) -> bool:
    """bank -> funding:<source>: the source of the fund with the most still to come (ties: by code):
    what it granted, less what was returned to it (a cut, the rest of a closed fund), less
    what it paid already.

    False, with nothing written, when the fund has no grant (so no source) yet.
    """
    src = await conn.fetchrow(
        "SELECT s.code, s.account_id, sum(g.amount) - coalesce((SELECT sum(b.amount) FROM budget_returns b "
        "WHERE b.fund_id = $1 AND b.source = s.code), 0) - coalesce((SELECT sum(t.amount) FROM top_ups t "
        "WHERE t.fund_id = $1 AND t.source = s.code), 0) AS outstanding FROM grants g JOIN funding_sources s "
        "ON s.sponsor_id = g.sponsor_id AND s.code = g.source WHERE g.fund_id = $1 "
        "GROUP BY s.code, s.account_id ORDER BY 3 DESC, 1 LIMIT 1",
        fund_id,
    )
    if src is None:
        return False
    ledger_entry = new_entry_id()
    await post_all(
        conn,
        [
            EntrySpec(
                id=ledger_entry,
                ledger_id=acct["ledger_id"],
                description=f"Money received for fund {fund_id} from source {src['code']}",
                value_date=day,
                refs={"fund": str(fund_id), "statement_entry": str(entry_id)},
                transfers=(
                    TransferSpec(
                        debit_account_id=acct["bank_account_id"],
                        credit_account_id=src["account_id"],
                        amount=amount,
                        code="top_up_received",
                    ),
                ),
            )
        ],
        "a statement posting",
    )
    await conn.execute(
        "INSERT INTO top_ups (statement_entry_id, sponsor_id, fund_id, source, amount) VALUES ($1, $2, $3, $4, $5)",
        entry_id,
        acct["sponsor_id"],
        fund_id,
        src["code"],
        amount,
    )
    await _mark_matched(conn, entry_id, "top_up", ledger_entry, manual=manual)
    return True


async def _summary(conn: Any, sid: int) -> StatementSummary:
    r = await conn.fetchrow("SELECT * FROM statements WHERE id = $1", sid)
    return StatementSummary(
        id=r["id"],
        debtor_account_id=r["debtor_account_id"],
        account_iban=r["account_iban"],
        kind=r["kind"],
        message_id=r["message_id"],
        statement_id=r["statement_id"],
        statement_date=r["statement_date"],
        opening_balance=r["opening_balance"],
        closing_balance=r["closing_balance"],
        entries=r["entries"],
        entries_new=r["entries_new"],
        entries_duplicate=r["entries_duplicate"],
        matched=r["matched"],
        unmatched=r["unmatched"],
        ledger_balance=r["ledger_balance"],
        balance_difference=r["balance_difference"],
        imported_by=r["imported_by"],
        imported_at=r["imported_at"],
    )


# --- reading -------------------------------------------------------------------------

_ENTRY_SELECT = """
SELECT e.*, coalesce((SELECT array_agg(payment_id ORDER BY payment_id) FROM statement_entry_payments x
                      WHERE x.statement_entry_id = e.id), '{}') AS payments
FROM statement_entries e
"""


def _entry_out(r: Any) -> EntryOut:
    detail = r["detail"]
    first = (detail.get("details") or [{}])[0]
    return EntryOut(
        id=r["id"],
        statement_id=r["statement_id"],
        position=r["position"],
        amount=r["amount"],
        credit_debit=r["credit_debit"],
        reversal=r["reversal"],
        booking_date=r["booking_date"],
        value_date=r["value_date"],
        bank_reference=r["bank_reference"],
        end_to_end_id=r["end_to_end_id"],
        pmt_inf_id=r["pmt_inf_id"],
        structured_reference=r["structured_reference"],
        return_reason=r["return_reason"],
        state=r["state"],
        match_kind=r["match_kind"],
        manual=r["manual"],
        reason=r["reason"],
        suggestions=list(r["suggestions"] or []),
        payments=list(r["payments"]),
        ledger_entry_id=str(r["ledger_entry_id"]) if r["ledger_entry_id"] else None,
        resolved_by=r["resolved_by"],
        resolved_at=r["resolved_at"],
        counterparty_name=first.get("counterparty_name"),
        remittance=first.get("remittance") or first.get("structured_reference"),
    )


async def get_statement(conn: Any, actor: Actor, statement_id: int) -> StatementSummary:
    scope = await sponsor_scope(conn, actor, READ_ROLES)
    ok = await conn.fetchval("SELECT 1 FROM statements WHERE id = $1 AND sponsor_id = $2", statement_id, scope)
    if not ok:
        raise NotFound("no such statement", code="statement_not_found")
    return await _summary(conn, statement_id)


async def list_statements(conn: Any, actor: Actor, *, before_id: int | None, limit: int) -> list[StatementSummary]:
    scope = await sponsor_scope(conn, actor, READ_ROLES)
    ids = await conn.fetch(
        "SELECT id FROM statements WHERE sponsor_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        scope,
        before_id,
        max(1, min(limit, MAX_LIST)),
    )
    return [await _summary(conn, r["id"]) for r in ids]


async def list_entries(
    conn: Any,
    actor: Actor,
    *,
    statement_id: int | None,
    state: str | None,
    after_id: int | None,
    limit: int,
) -> list[EntryOut]:
    """A statement's entries with their match status, or the exceptions queue (state=unmatched)."""
    scope = await sponsor_scope(conn, actor, READ_ROLES)
    rows = await conn.fetch(
        _ENTRY_SELECT + " WHERE e.sponsor_id = $1 AND ($2::bigint IS NULL OR e.statement_id = $2) "
        "AND ($3::text IS NULL OR e.state = $3) AND ($4::bigint IS NULL OR e.id > $4) ORDER BY e.id LIMIT $5",
        scope,
        statement_id,
        state,
        after_id,
        max(1, min(limit, MAX_LIST)),
    )
    return [_entry_out(r) for r in rows]


# --- the exceptions queue ------------------------------------------------------------


async def resolve(
    conn: Any,
    actor: Actor | str,
    entry_id: int,
    *,
    action: str,
    reason: str,
    payment_id: int | None = None,
    payment_ids: Sequence[int] | None = None,
    fund_id: int | None = None,
    category: str | None = None,
) -> EntryOut:
    """A person settles an unmatched entry: match it to a payment or a top-up, book it as a
    movement outside the scheme (``book_external``), or ignore it, saying why."""
    scope = await sponsor_scope(conn, actor, WRITE_ROLES)
    account = await conn.fetchval(
        "SELECT debtor_account_id FROM statement_entries WHERE id = $1 AND ($2::bigint IS NULL OR sponsor_id = $2)",
        entry_id,
        scope,
    )
    if account is None:
        raise NotFound("no such statement entry", code="statement_entry_not_found")
    await _lock_account(conn, account)  # an import of this account and a person's match never interleave
    e = await conn.fetchrow("SELECT * FROM statement_entries WHERE id = $1 FOR UPDATE", entry_id)
    if e["state"] != "unmatched":
        raise Conflict(f"the entry is already {e['state']}", code="statement_entry_not_unmatched")
    acct = await conn.fetchrow(
        "SELECT d.*, s.ledger_id FROM debtor_accounts d JOIN sponsors s ON s.organisation_id = d.sponsor_id "
        "WHERE d.id = $1",
        e["debtor_account_id"],
    )
    day = (
        e["booking_date"]
        or e["value_date"]
        or await conn.fetchval("SELECT statement_date FROM statements WHERE id = $1", e["statement_id"])
    )
    if action == "match_payment":
        ids = sorted(set(payment_ids or ([] if payment_id is None else [payment_id])))
        if not ids or (payment_id is not None and payment_ids):
            raise ValidationFailed(
                "name the payment: payment_id, or payment_ids for a line that covers several",
                code="payment_required",
                errors=[{"field": "payment_ids", "message": "give payment_id or payment_ids, not both"}],
            )
        if len(ids) > MAX_TRANSFERS_PER_ENTRY:
            raise ValidationFailed(
                f"at most {MAX_TRANSFERS_PER_ENTRY} payments per line",
                code="too_many_payments",
                errors=[{"field": "payment_ids", "message": f"at most {MAX_TRANSFERS_PER_ENTRY}"}],
            )
        pays = await conn.fetch(
            "SELECT p.* FROM payments p JOIN payout_runs r ON r.id = p.run_id WHERE p.id = ANY($1::bigint[]) "
            "AND r.debtor_account_id = $2 ORDER BY p.id FOR UPDATE OF p",
            ids,
            e["debtor_account_id"],
        )
        if len(pays) != len(ids):
            raise NotFound("no such payment from this bank account", code="payment_not_found")
        total = sum(p["amount"] for p in pays)
        # A return of one payment may come back short: the banks kept their charges.
        short = e["credit_debit"] == "CRDT" and len(pays) == 1 and 0 < e["amount"] < total
        charges = total - e["amount"] if short else 0
        if total != e["amount"] + charges:
            what = "the payment" if len(pays) == 1 else f"the {len(pays)} payments together"
            raise Conflict(
                f"the entry is {e['amount']} cents and {what} {total}; ignore the entry with a reason "
                "instead, or match the right payments",
                code="amount_differs",
            )
        if e["credit_debit"] == "DBIT":
            wrong = [p for p in pays if p["state"] not in ("sent", "accepted")]
            if wrong:
                raise Conflict(
                    f"payment {wrong[0]['end_to_end_id']} is {wrong[0]['state']}; it cannot be booked",
                    code="payment_not_open",
                )
            ledger_entry = await _post_bookings(conn, acct, e["statement_id"], [(entry_id, ids)], day)
            await _mark_matched(conn, entry_id, "payment" if len(ids) == 1 else "batch", ledger_entry, manual=True)
            await conn.executemany(
                "INSERT INTO statement_entry_payments (statement_entry_id, payment_id, kind) VALUES ($1, $2, 'booked')",
                [(entry_id, pid) for pid in ids],
            )
        else:
            wrong = [p for p in pays if p["state"] != "booked"]
            if wrong:
                raise Conflict(
                    f"payment {wrong[0]['end_to_end_id']} is {wrong[0]['state']}; only a booked payment can come back",
                    code="payment_not_booked",
                )
            await _book_return(
                conn, actor, acct, entry_id, pays, e["amount"], e["return_reason"], day, manual=True, charges=charges
            )
    elif action == "match_top_up":
        if e["credit_debit"] != "CRDT":
            raise Conflict("a top-up is money received: this entry is a debit", code="entry_not_credit")
        fund = await conn.fetchval("SELECT id FROM funds WHERE id = $1 AND sponsor_id = $2", fund_id, e["sponsor_id"])
        if fund is None:
            raise NotFound("no such fund", code="fund_not_found")
        if not await _book_top_up(conn, acct, entry_id, fund, e["amount"], day, manual=True):
            raise Conflict(
                "the fund has no grant yet, so no funding source to receive money for; grant its budget first",
                code="fund_has_no_source",
            )
    elif action == "book_external":
        await _book_external(conn, acct, e, category, day)
    elif action == "ignore":
        await conn.execute("UPDATE statement_entries SET state = 'ignored' WHERE id = $1", entry_id)
    else:
        raise ValidationFailed(
            "action must be match_payment, match_top_up, book_external or ignore",
            code="action_invalid",
            errors=[{"field": "action", "message": action}],
        )
    await conn.execute(
        "UPDATE statement_entries SET resolved_by = $2, resolved_at = now(), reason = $3 WHERE id = $1",
        entry_id,
        _label(actor),
        reason,
    )
    await _refresh_statement(conn, e["statement_id"], day)
    await settle_runs(conn, e["debtor_account_id"])
    await audit.record(
        conn,
        actor,
        f"statement_entry.{action}",
        "statement_entry",
        entry_id,
        sponsor_id=e["sponsor_id"],
        before={"state": "unmatched", "reason": e["reason"]},
        after={
            "action": action,
            "reason": reason,
            "payment_id": payment_id,
            # the payments matched, however they were named (payment_id or payment_ids)
            "payment_ids": sorted(set(payment_ids or ([] if payment_id is None else [payment_id]))) or None,
            "fund_id": fund_id,
            "category": category,
        },
    )
    row = await conn.fetchrow(_ENTRY_SELECT + " WHERE e.id = $1", entry_id)
    return _entry_out(row)


async def _book_external(conn: Any, acct: Any, e: Any, category: str | None, day: date) -> None:
    """A bank movement that is no part of the scheme: ``external:<category>`` against
    ``bank:<iban>`` (a charge or negative interest out, interest or the sponsor's own money in),
    so the ledger's bank account keeps equalling the bank's."""
    if category not in chart.EXTERNAL:
        raise ValidationFailed(
            f"say what the movement is: category one of {', '.join(chart.EXTERNAL)}",
            code="category_required",
            errors=[{"field": "category", "message": f"one of {', '.join(chart.EXTERNAL)}"}],
        )
    if e["amount"] == 0:
        raise Conflict("the entry is 0.00: nothing to book; ignore it with a reason", code="amount_is_zero")
    other = await chart.ensure_external(conn, acct["ledger_id"], category)
    bank = acct["bank_account_id"]
    debit, credit = (other, bank) if e["credit_debit"] == "DBIT" else (bank, other)
    ledger_entry = new_entry_id()
    await post_all(
        conn,
        [
            EntrySpec(
                id=ledger_entry,
                ledger_id=acct["ledger_id"],
                description=f"{chart.EXTERNAL[category].split(' (')[0]} on bank account {acct['iban']}",
                value_date=day,
                refs={"statement_entry": str(e["id"]), "category": category},
                transfers=(
                    TransferSpec(debit_account_id=debit, credit_account_id=credit, amount=e["amount"], code=category),
                ),
            )
        ],
        "a statement posting",
    )
    await _mark_matched(conn, e["id"], "external", ledger_entry, manual=True)


async def _mark_matched(conn: Any, entry_id: int, kind: str, ledger_entry: uuid.UUID | None, *, manual: bool) -> None:
    """A single entry booked after its import (a return, a top-up, or a person's match): matched,
    its queue reason and suggestions cleared (a person's resolution then records its own reason)."""
    await conn.execute(
        "UPDATE statement_entries SET state = 'matched', match_kind = $3, ledger_entry_id = $2, manual = $4, "
        "reason = NULL, suggestions = '[]' WHERE id = $1",
        entry_id,
        ledger_entry,
        kind,
        manual,
    )


async def _refresh_statement(conn: Any, sid: int, day: date) -> None:
    """The entry's statement: its counts; and the balance check of every statement of the
    account dated ``day`` (what was just booked) or later, whose bank balance it changed too."""
    await conn.execute(
        "UPDATE statements SET matched = (SELECT count(*) FROM statement_entries WHERE statement_id = $1 "
        "AND state <> 'unmatched'), unmatched = (SELECT count(*) FROM statement_entries WHERE statement_id = $1 "
        "AND state = 'unmatched') WHERE id = $1",
        sid,
    )
    rows = await conn.fetch(
        "SELECT s.id, s.statement_date, d.bank_account_id FROM statements s "
        "JOIN debtor_accounts d ON d.id = s.debtor_account_id "
        "WHERE s.debtor_account_id = (SELECT debtor_account_id FROM statements WHERE id = $1) "
        "AND (s.id = $1 OR s.statement_date >= $2) ORDER BY s.id",
        sid,
        day,
    )
    for st in rows:
        ledger_balance = await bank_balance(conn, st["bank_account_id"], st["statement_date"])
        await conn.execute(
            "UPDATE statements SET ledger_balance = $2, balance_difference = closing_balance - $2 WHERE id = $1",
            st["id"],
            ledger_balance,
        )
