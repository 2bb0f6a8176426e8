"""Supplier payouts: runs, four eyes, pain.001 export, pain.002 status reports.

A run belongs to one sponsor debtor account. Building it claims the sponsor's
open payable lines that are past their fund's cancellation window (refunds,
negative lines, are netted at once), makes one payment per supplier, and
copies the supplier's active IBAN, BIC and name into the payment: what is
approved is what gets paid. Suppliers with pending, blocked or missing bank
details, or with nothing (net) to pay, are skipped and the run says why.

    draft -> approved (a sponsor approver who did not create it)
          -> exported (pain.001 stored with its sha256; payable -> in_transit)
          -> accepted | partially_rejected | rejected (pain.002)
          -> settled (every payment booked, rejected or returned: after the
             statement or pain.002 that resolves the last open one)
    draft | approved -> cancelled (the lines are free again)

Payable lines stay ``open`` while claimed by a draft or approved run
(``payment_id`` set), become ``in_payout`` on export, and go back to ``open``
(or ``rejected`` until the supplier's bank details are fixed) when a payment
is rejected. ``payment_lines`` keeps which lines each payment covered.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import msgspec

from ledger.model import EntrySpec, TransferSpec, new_entry_id
from sepa import (
    CreditTransferFile,
    Party,
    Payment,
    PaymentBlock,
    SentBlock,
    SentPayment,
    SepaError,
    build_pain001,
    is_account_error,
    parse_pain002,
    read_against,
    split_payments,
)
from sepa.pain002 import SETTLED_STATUSES
from sepa.rules import INSTANT_MAX_CENTS, SCT_MAX_CENTS, build_remittance, end_to_end_id, execution_date
from settlement import audit, chart
from settlement.auth import Actor
from settlement.banking import check_iban
from settlement.clock import AMSTERDAM, local_today
from settlement.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    SettlementError,
    ValidationFailed,
)
from settlement.posting import post_all
from settlement.sponsors.flows import sponsor_scope
from settlement.suppliers import flows as suppliers

MAX_LIST = 500
# A status report that does not fit its file lists why; the first this many reasons are shown.
MAX_MISMATCHES_SHOWN = 50

READ_ROLES = ("sponsor_finance", "sponsor_approver", "auditor")
WRITE_ROLES = ("sponsor_finance", "sponsor_approver")


# --- records -------------------------------------------------------------------------


class Skipped(msgspec.Struct, frozen=True, kw_only=True):
    supplier_id: int
    name: str
    amount: int  # net open amount that was not paid
    # bank_details_pending | bank_details_blocked | no_bank_details | nothing_to_pay | iban_invalid
    # | amount_exceeds_maximum
    reason: str
    detail: str


class Note(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    detail: str
    payment_id: int | None = None


class PayoutFile(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    seq: int
    msg_id: str
    version: str
    payment_count: int
    ctrl_sum: int
    sha256: str
    created_at: datetime


class Run(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    code: str
    sponsor_id: int
    debtor_account_id: int
    debtor_iban: str
    instant: bool
    state: str
    payment_count: int
    total: int
    currency: str
    skipped: list[Skipped]
    notes: list[Note]
    payments_by_state: dict[str, int]
    files: list[PayoutFile]
    created_by: str
    created_at: datetime
    approved_by: int | None = None
    approved_at: datetime | None = None
    exported_by: str | None = None
    exported_at: datetime | None = None
    execution_date: date | None = None
    cancelled_by: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    settled_at: datetime | None = None
    schedule: bool = False


class PaymentLine(msgspec.Struct, frozen=True, kw_only=True):
    line_id: int
    redemption_id: str
    refund_id: str | None
    voucher_code: str
    reference: str  # the supplier's own reference of the redemption
    fund_id: int
    amount: int


class PaymentOut(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    run_id: int
    run_code: str
    sponsor_id: int
    supplier_id: int
    end_to_end_id: str
    amount: int
    currency: str
    instant: bool
    creditor_iban: str
    creditor_bic: str | None
    creditor_name: str
    remittance: str
    refs_included: int
    refs_omitted: int
    state: str
    execution_date: date | None
    pmt_inf_id: str | None
    reason_code: str | None
    reason_info: str | None
    updated_at: datetime
    lines: list[PaymentLine] | None = None


# --- scope ---------------------------------------------------------------------------


_RUN_SELECT = """
SELECT r.*, d.iban AS debtor_iban,
       coalesce((SELECT jsonb_object_agg(state, n) FROM (SELECT state, count(*) AS n FROM payments
                 WHERE run_id = r.id GROUP BY state) s), '{}') AS by_state
FROM payout_runs r JOIN debtor_accounts d ON d.id = r.debtor_account_id
"""


async def _run_row(conn: Any, run_id: int, scope: int | None, *, lock: bool = False) -> Any:
    row = await conn.fetchrow(
        "SELECT * FROM payout_runs WHERE id = $1 AND ($2::bigint IS NULL OR sponsor_id = $2)"
        + (" FOR UPDATE" if lock else ""),
        run_id,
        scope,
    )
    if row is None:
        raise NotFound("no such payout run", code="payout_run_not_found")
    return row


async def _run_out(conn: Any, run_id: int) -> Run:
    r = await conn.fetchrow(_RUN_SELECT + " WHERE r.id = $1", run_id)
    files = await conn.fetch(
        "SELECT id, seq, msg_id, version, payment_count, ctrl_sum, sha256, created_at FROM payout_files "
        "WHERE run_id = $1 ORDER BY seq",
        run_id,
    )
    return Run(
        id=r["id"],
        code=r["code"],
        sponsor_id=r["sponsor_id"],
        debtor_account_id=r["debtor_account_id"],
        debtor_iban=r["debtor_iban"],
        instant=r["instant"],
        state=r["state"],
        payment_count=r["payment_count"],
        total=r["total"],
        currency="EUR",
        skipped=msgspec.convert(r["skipped"], list[Skipped]),
        notes=msgspec.convert(r["notes"], list[Note]),
        payments_by_state=dict(r["by_state"]),
        files=[PayoutFile(**dict(f)) for f in files],
        created_by=r["created_by_label"],
        created_at=r["created_at"],
        approved_by=r["approved_by"],
        approved_at=r["approved_at"],
        exported_by=r["exported_by_label"],
        exported_at=r["exported_at"],
        execution_date=r["execution_date"],
        cancelled_by=r["cancelled_by_label"],
        cancelled_at=r["cancelled_at"],
        cancel_reason=r["cancel_reason"],
        settled_at=r["settled_at"],
        schedule=r["schedule_id"] is not None,
    )


async def run_by_id(conn: Any, run_id: int) -> Run:
    """For the operator (CLI): any sponsor's run."""
    await _run_row(conn, run_id, None)
    return await _run_out(conn, run_id)


def _label(actor: Actor | str) -> str:
    return actor if isinstance(actor, str) else actor.label


# --- building a run ------------------------------------------------------------------


_REF_SQL = {
    "supplier_reference": "r.reference",
    "voucher_code": "v.code",
    "redemption_id": "r.id::text",
}


async def create_run(
    conn: Any,
    actor: Actor | str,
    debtor_account_id: int,
    *,
    instant: bool = False,
    now: datetime | None = None,
    schedule_id: int | None = None,
    allow_empty: bool = False,
) -> Run:
    """Build a draft run for one debtor account from the sponsor's open payables."""
    scope = await sponsor_scope(conn, actor, WRITE_ROLES)
    debtor = await conn.fetchrow(
        "SELECT d.*, o.name AS sponsor_name, s.ledger_id FROM debtor_accounts d "
        "JOIN sponsors s ON s.organisation_id = d.sponsor_id JOIN organisations o ON o.id = d.sponsor_id "
        "WHERE d.id = $1 AND ($2::bigint IS NULL OR d.sponsor_id = $2)",
        debtor_account_id,
        scope,
    )
    if debtor is None:
        raise NotFound("no such debtor account", code="debtor_account_not_found")
    if instant and not debtor["instant_supported"]:
        raise ValidationFailed(
            "this bank account's profile does not support SCT Inst; make a regular run",
            code="instant_not_supported",
            errors=[{"field": "instant", "message": "not supported by the debtor account's bank profile"}],
        )
    sponsor_id = debtor["sponsor_id"]
    now = now or await conn.fetchval("SELECT now()")
    # One builder per sponsor at a time; lines are also locked row by row below.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('payout_build'), $1::int)", sponsor_id)

    lines = await conn.fetch(
        "SELECT l.id, l.supplier_id, l.amount, l.state, l.redemption_id, s.remittance AS pref, "
        "r.reference, v.code AS voucher_code FROM payable_lines l "
        "JOIN suppliers s ON s.organisation_id = l.supplier_id "
        "JOIN redemptions r ON r.id = l.redemption_id JOIN vouchers v ON v.id = r.voucher_id "
        "WHERE l.sponsor_id = $1 AND l.state IN ('open', 'rejected', 'returned') AND l.payment_id IS NULL "
        "AND l.payable_from <= $2 ORDER BY l.supplier_id, l.created_at, l.id FOR UPDATE OF l",
        sponsor_id,
        now,
    )
    # A redemption refunded in full before it was paid nets to nothing: its
    # lines stay open (they sum to 0) but play no part in a run.
    per_redemption: dict[Any, int] = defaultdict(int)
    for ln in lines:
        per_redemption[ln["redemption_id"]] += ln["amount"]
    by_supplier: dict[int, list[Any]] = defaultdict(list)
    for ln in lines:
        if per_redemption[ln["redemption_id"]] != 0:
            by_supplier[ln["supplier_id"]].append(ln)
    supplier_ids = sorted(by_supplier)
    details = {
        r["supplier_id"]: r
        for r in await conn.fetch(
            "SELECT DISTINCT ON (b.supplier_id) b.supplier_id, b.id, b.iban, b.bic, b.holder_name, b.state, "
            "o.name FROM supplier_bank_details b JOIN organisations o ON o.id = b.supplier_id "
            "WHERE b.supplier_id = ANY($1::bigint[]) AND b.state IN ('active', 'blocked', 'pending') "
            "ORDER BY b.supplier_id, (b.state = 'active') DESC, (b.state = 'blocked') DESC, b.id DESC",
            supplier_ids,
        )
    }
    names = {
        r["id"]: r["name"]
        for r in await conn.fetch("SELECT id, name FROM organisations WHERE id = ANY($1::bigint[])", supplier_ids)
    }

    run_id = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('payout_runs', 'id'))")
    code = f"P{local_today(now):%Y%m%d}{run_id:02d}"
    skipped: list[Skipped] = []
    notes: list[Note] = []
    planned: list[tuple[int, Any, list[Any], int]] = []  # supplier, details, lines, amount
    for sid in supplier_ids:
        sl = by_supplier[sid]
        net = sum(ln["amount"] for ln in sl)
        d = details.get(sid)
        name = names[sid]
        reason = None
        if net < 0:
            reason = ("nothing_to_pay", f"refunds exceed redemptions by {-net} cents; netted in a later run")
        elif net == 0:
            reason = ("nothing_to_pay", "refunds and redemptions cancel out; nothing is owed")
        elif d is None:
            reason = ("no_bank_details", "the supplier has no bank details yet")
        elif d["state"] == "blocked":
            reason = ("bank_details_blocked", "a payment bounced on these bank details; waiting for new ones")
        elif d["state"] == "pending":
            reason = ("bank_details_pending", "bank details await a sponsor approver (four eyes)")
        else:
            try:
                check_iban(d["iban"], d["bic"])
            except SettlementError as exc:
                reason = ("iban_invalid", exc.detail)
        if reason is not None:
            skipped.append(Skipped(supplier_id=sid, name=name, amount=net, reason=reason[0], detail=reason[1]))
            continue
        # Lines that bounced wait for new bank details (their approval reopens them).
        sl = [ln for ln in sl if ln["state"] == "open"]
        net = sum(ln["amount"] for ln in sl)
        if net > SCT_MAX_CENTS:
            skipped.append(
                Skipped(
                    supplier_id=sid,
                    name=name,
                    amount=net,
                    reason="amount_exceeds_maximum",
                    detail=f"{net} cents is above the SEPA credit transfer maximum of {SCT_MAX_CENTS} cents "
                    "a payment; pay it by other means",
                )
            )
        elif net > 0:
            planned.append((sid, d, sl, net))

    if not planned and not allow_empty:
        raise Conflict(
            "nothing to pay on this account now" + (f": {len(skipped)} supplier(s) skipped" if skipped else ""),
            code="nothing_to_pay",
            skipped=msgspec.to_builtins(skipped),
        )

    rows = []
    for seq, (sid, d, sl, net) in enumerate(planned, start=1):
        e2e = end_to_end_id(code, seq)
        pay_instant = instant and net <= INSTANT_MAX_CENTS
        if instant and not pay_instant:
            notes.append(
                Note(
                    code="instant_maximum_exceeded",
                    detail=f"payment {e2e} of {net} cents to supplier {sid} is above the SCT Inst maximum of "
                    f"{INSTANT_MAX_CENTS} cents: it goes as a regular transfer",
                )
            )
        pref = sl[0]["pref"]
        refs = [
            str(
                ln["reference"]
                if pref == "supplier_reference"
                else ln["voucher_code"]
                if pref == "voucher_code"
                else ln["redemption_id"]
            )
            for ln in sl
            if ln["amount"] > 0
        ]
        rem = build_remittance(e2e, refs)
        rows.append(
            (
                run_id,
                sponsor_id,
                sid,
                seq,
                e2e,
                net,
                pay_instant,
                d["id"],
                d["iban"],
                d["bic"],
                d["holder_name"],
                rem.text,
                rem.included,
                rem.omitted,
            )
        )
    await conn.execute(
        "INSERT INTO payout_runs (id, code, sponsor_id, debtor_account_id, instant, payment_count, total, skipped, "
        "notes, schedule_id, created_by, created_by_label, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        run_id,
        code,
        sponsor_id,
        debtor_account_id,
        instant,
        len(rows),
        sum(r[5] for r in rows),
        msgspec.to_builtins(skipped),
        msgspec.to_builtins(notes),
        schedule_id,
        None if isinstance(actor, str) else actor.token_id,
        _label(actor),
        now,
    )
    if rows:
        cols = list(zip(*rows, strict=True))
        pay_ids = await conn.fetch(
            "INSERT INTO payments (run_id, sponsor_id, supplier_id, seq, end_to_end_id, amount, instant, "
            "bank_details_id, creditor_iban, creditor_bic, creditor_name, remittance, refs_included, refs_omitted) "
            "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::int[], $5::text[], $6::bigint[], "
            "$7::bool[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int[], $14::int[]) "
            "RETURNING id, supplier_id",
            *[list(c) for c in cols],
        )
        pid_of = {r["supplier_id"]: r["id"] for r in pay_ids}
        line_ids: list[int] = []
        line_pids: list[int] = []
        for sid, _d, sl, _net in planned:
            for ln in sl:
                line_ids.append(ln["id"])
                line_pids.append(pid_of[sid])
        await conn.execute(
            "UPDATE payable_lines l SET payment_id = u.pid FROM unnest($1::bigint[], $2::bigint[]) AS u(lid, pid) "
            "WHERE l.id = u.lid",
            line_ids,
            line_pids,
        )
        await conn.execute(
            "INSERT INTO payment_lines (payment_id, line_id) SELECT * FROM unnest($1::bigint[], $2::bigint[])",
            line_pids,
            line_ids,
        )
    run = await _run_out(conn, run_id)
    await audit.record(
        conn,
        actor,
        "payout_run.created",
        "payout_run",
        run_id,
        sponsor_id=sponsor_id,
        after={"code": code, "payments": run.payment_count, "total": run.total, "skipped": len(skipped)},
    )
    return run


# --- four eyes, cancel ---------------------------------------------------------------


async def approve(conn: Any, actor: Actor, run_id: int) -> Run:
    if actor.role != "sponsor_approver":
        raise Forbidden("a sponsor approver approves payout runs", code="role_not_allowed")
    scope = await sponsor_scope(conn, actor, ("sponsor_approver",))
    row = await _run_row(conn, run_id, scope, lock=True)
    if row["state"] != "draft":
        raise Conflict(f"the run is {row['state']}; only a draft can be approved", code="payout_run_not_draft")
    if row["created_by"] == actor.token_id:
        raise Forbidden(
            "four eyes: you created this run, another approver must approve it",
            code="approver_must_differ_from_creator",
        )
    if row["payment_count"] == 0:
        raise Conflict("the run pays nothing; cancel it", code="payout_run_empty")
    await conn.execute(
        "UPDATE payout_runs SET state = 'approved', approved_by = $2, approved_at = now() WHERE id = $1",
        run_id,
        actor.token_id,
    )
    await audit.record(
        conn,
        actor,
        "payout_run.approved",
        "payout_run",
        run_id,
        sponsor_id=row["sponsor_id"],
        before={"state": "draft"},
        after={"state": "approved", "total": row["total"], "payments": row["payment_count"]},
    )
    return await _run_out(conn, run_id)


async def cancel(conn: Any, actor: Actor | str, run_id: int, reason: str) -> Run:
    scope = await sponsor_scope(conn, actor, WRITE_ROLES)
    row = await _run_row(conn, run_id, scope, lock=True)
    if row["state"] not in ("draft", "approved"):
        raise Conflict(
            f"the run is {row['state']}; only a draft or approved run can be cancelled",
            code="payout_run_not_cancellable",
        )
    await conn.execute(
        "UPDATE payable_lines SET payment_id = NULL WHERE payment_id IN (SELECT id FROM payments WHERE run_id = $1)",
        run_id,
    )
    await conn.execute("UPDATE payments SET state = 'cancelled', updated_at = now() WHERE run_id = $1", run_id)
    await conn.execute(
        "UPDATE payout_runs SET state = 'cancelled', cancelled_by_label = $2, cancelled_at = now(), "
        "cancel_reason = $3 WHERE id = $1",
        run_id,
        _label(actor),
        reason,
    )
    await audit.record(
        conn,
        actor,
        "payout_run.cancelled",
        "payout_run",
        run_id,
        sponsor_id=row["sponsor_id"],
        before={"state": row["state"]},
        after={"state": "cancelled", "reason": reason},
    )
    return await _run_out(conn, run_id)


# --- export --------------------------------------------------------------------------


async def export(
    conn: Any,
    actor: Actor | str,
    run_id: int,
    *,
    max_per_file: int,
    now: datetime | None = None,
) -> Run:
    """Write the pain.001 file(s), store them, post payable -> in_transit; all or nothing."""
    scope = await sponsor_scope(conn, actor, WRITE_ROLES)
    row = await _run_row(conn, run_id, scope, lock=True)
    if row["state"] != "approved":
        code = {"draft": "payout_run_not_approved", "cancelled": "payout_run_cancelled"}.get(
            row["state"], "payout_run_already_exported"
        )
        raise Conflict(f"the run is {row['state']}; only an approved run can be exported", code=code)
    debtor = await conn.fetchrow(
        "SELECT d.*, o.name AS sponsor_name, s.ledger_id FROM debtor_accounts d "
        "JOIN sponsors s ON s.organisation_id = d.sponsor_id JOIN organisations o ON o.id = d.sponsor_id "
        "WHERE d.id = $1",
        row["debtor_account_id"],
    )
    # The details stay locked (shared) until commit: an approval of new ones, or a block, waits
    # for this file, or this read waits for it and sees the details replaced.
    payments = await conn.fetch(
        "SELECT p.*, b.state AS details_state FROM payments p JOIN supplier_bank_details b "
        "ON b.id = p.bank_details_id WHERE p.run_id = $1 ORDER BY p.seq FOR SHARE OF b",
        run_id,
    )
    stale = [p for p in payments if p["details_state"] != "active"]
    if stale:
        raise Conflict(
            f"the bank details of {len(stale)} supplier(s) changed or were blocked after this run was built; "
            "cancel it and build a new run",
            code="bank_details_changed",
            suppliers=[p["supplier_id"] for p in stale],
        )
    # A refund of a redemption this run pays, made after the run was built, is
    # not netted in it: exporting would pay what the supplier gave back. The
    # redemptions are locked first (a refund locks its redemption), so no
    # refund slips in between this check and the commit.
    await conn.execute(
        "SELECT 1 FROM redemptions WHERE id IN (SELECT l.redemption_id FROM payable_lines l JOIN payments p "
        "ON p.id = l.payment_id WHERE p.run_id = $1) ORDER BY id FOR KEY SHARE",
        run_id,
    )
    refunded = await conn.fetch(
        "SELECT DISTINCT l.supplier_id FROM payable_lines l WHERE l.sponsor_id = $2 AND l.amount < 0 "
        "AND l.state = 'open' AND l.payment_id IS NULL AND l.redemption_id IN (SELECT x.redemption_id "
        "FROM payable_lines x JOIN payments p ON p.id = x.payment_id WHERE p.run_id = $1) ORDER BY 1",
        run_id,
        row["sponsor_id"],
    )
    if refunded:
        raise Conflict(
            f"{len(refunded)} supplier(s) refunded a redemption this run pays after it was built; "
            "cancel it and build a new run, which nets the refunds",
            code="payables_changed",
            suppliers=[r["supplier_id"] for r in refunded],
        )
    now = now or await conn.fetchval("SELECT now()")
    today = local_today(now)
    debtor_party = Party(name=debtor["holder_name"], iban=debtor["iban"], bic=debtor["bic"])
    by_e2e: dict[str, Any] = {p["end_to_end_id"]: p for p in payments}
    sepa_payments = [
        Payment(
            end_to_end_id=p["end_to_end_id"],
            amount_cents=p["amount"],
            creditor=Party(name=p["creditor_name"], iban=p["creditor_iban"], bic=p["creditor_bic"]),
            remittance=p["remittance"],
        )
        for p in payments
    ]
    assignment: list[tuple[int, int, str]] = []  # payment id, file seq, pmt_inf_id
    file_rows = []
    for k, chunk in enumerate(split_payments(sepa_payments, max_per_file), start=1):
        blocks = []
        for inst in (True, False):
            part = tuple(p for p in chunk if by_e2e[p.end_to_end_id]["instant"] is inst)
            if not part:
                continue
            pmt_inf_id = f"{row['code']}-{k}{'I' if inst else 'R'}"
            blocks.append(
                PaymentBlock(
                    pmt_inf_id=pmt_inf_id,
                    debtor=debtor_party,
                    execution_date=execution_date(today, inst),
                    instant=inst,
                    batch_booking=debtor["batch_booking"],
                    iban_only=debtor["iban_only"],
                    payments=part,
                )
            )
            assignment.extend((by_e2e[p.end_to_end_id]["id"], k, pmt_inf_id) for p in part)
        ctf = CreditTransferFile(
            msg_id=f"{row['code']}-{k}",
            created_at=now,
            initiating_party=debtor["sponsor_name"],
            version=debtor["pain_version"],
            blocks=tuple(blocks),
        )
        try:
            data = build_pain001(ctf, max_payments=max_per_file)
        except SepaError as exc:  # every input was checked when the run was built: a bug, not the user's
            raise SettlementError(f"could not build a valid pain.001: {exc}", code="payment_file_invalid") from exc
        file_rows.append((k, ctf.msg_id, ctf.version, ctf.payment_count, sum(p.amount_cents for p in chunk), data))

    file_ids: dict[int, int] = {}
    for k, msg_id, version, count, ctrl_sum, data in file_rows:
        file_ids[k] = await conn.fetchval(
            "INSERT INTO payout_files (run_id, sponsor_id, seq, msg_id, version, payment_count, ctrl_sum, sha256, "
            "content, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            run_id,
            row["sponsor_id"],
            k,
            msg_id,
            version,
            count,
            ctrl_sum,
            hashlib.sha256(data).hexdigest(),
            data,
            now,
        )

    payables = await _payable_accounts(conn, debtor["ledger_id"], [p["supplier_id"] for p in payments])
    entry_ids = [new_entry_id() for _ in payments]
    entries = [
        EntrySpec(
            id=eid,
            ledger_id=debtor["ledger_id"],
            description=f"Payout {row['code']}: payment {p['end_to_end_id']}",
            value_date=today,
            refs={"payment": p["end_to_end_id"], "run": row["code"]},
            transfers=(
                TransferSpec(
                    debit_account_id=payables[p["supplier_id"]],
                    credit_account_id=debtor["in_transit_account_id"],
                    amount=p["amount"],
                    code="payout_exported",
                ),
            ),
        )
        for eid, p in zip(entry_ids, payments, strict=True)
    ]
    await post_all(conn, entries, "a payout posting")
    by_id = {pid: (k, pmt) for pid, k, pmt in assignment}
    await conn.execute(
        "UPDATE payments p SET state = 'sent', file_id = u.fid, pmt_inf_id = u.pmt, export_entry_id = u.eid, "
        "updated_at = now() FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::uuid[]) AS u(pid, fid, pmt, eid) "
        "WHERE p.id = u.pid",
        [p["id"] for p in payments],
        [file_ids[by_id[p["id"]][0]] for p in payments],
        [by_id[p["id"]][1] for p in payments],
        entry_ids,
    )
    await conn.execute(
        "UPDATE payable_lines SET state = 'in_payout' WHERE payment_id IN (SELECT id FROM payments WHERE run_id = $1)",
        run_id,
    )
    await conn.execute(
        "UPDATE payout_runs SET state = 'exported', exported_by_label = $2, exported_at = $3, execution_date = $4 "
        "WHERE id = $1",
        run_id,
        _label(actor),
        now,
        today if all(p["instant"] for p in payments) else execution_date(today, False),
    )
    await audit.record(
        conn,
        actor,
        "payout_run.exported",
        "payout_run",
        run_id,
        sponsor_id=row["sponsor_id"],
        before={"state": "approved"},
        after={
            "state": "exported",
            "files": [{"msg_id": f[1], "sha256": hashlib.sha256(f[5]).hexdigest()} for f in file_rows],
            "total": row["total"],
        },
    )
    return await _run_out(conn, run_id)


async def _payable_accounts(conn: Any, ledger_id: int, supplier_ids: Sequence[int]) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT id, code FROM accounts WHERE ledger_id = $1 AND code = ANY($2::text[])",
        ledger_id,
        [chart.payable(s) for s in set(supplier_ids)],
    )
    found = {r["code"]: r["id"] for r in rows}
    return {s: found[chart.payable(s)] for s in supplier_ids}


# --- reading -------------------------------------------------------------------------


async def get_run(conn: Any, actor: Actor, run_id: int) -> Run:
    scope = await sponsor_scope(conn, actor, READ_ROLES)
    await _run_row(conn, run_id, scope)
    return await _run_out(conn, run_id)


async def list_runs(conn: Any, actor: Actor, *, state: str | None, before_id: int | None, limit: int) -> list[Run]:
    scope = await sponsor_scope(conn, actor, READ_ROLES)
    ids = await conn.fetch(
        "SELECT id FROM payout_runs WHERE sponsor_id = $1 AND ($2::text IS NULL OR state = $2) "
        "AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        scope,
        state,
        before_id,
        max(1, min(limit, MAX_LIST)),
    )
    return [await _run_out(conn, r["id"]) for r in ids]


async def download(conn: Any, actor: Actor | str, run_id: int, file_id: int) -> tuple[str, bytes, str]:
    """(msg_id, bytes, sha256) of a stored file; the digest is checked on the way out."""
    scope = await sponsor_scope(conn, actor, READ_ROLES)
    await _run_row(conn, run_id, scope)
    f = await conn.fetchrow(
        "SELECT msg_id, content, sha256 FROM payout_files WHERE id = $1 AND run_id = $2", file_id, run_id
    )
    if f is None:
        raise NotFound("no such file in this run", code="payout_file_not_found")
    data = bytes(f["content"])
    if hashlib.sha256(data).hexdigest() != f["sha256"]:
        raise SettlementError("the stored file does not match its sha256; it was not served", code="file_corrupt")
    return f["msg_id"], data, f["sha256"]


_PAYMENT_SELECT = """
SELECT p.*, r.code AS run_code, r.execution_date FROM payments p JOIN payout_runs r ON r.id = p.run_id
"""


def _payment_out(p: Any, lines: list[PaymentLine] | None = None) -> PaymentOut:
    return PaymentOut(
        id=p["id"],
        run_id=p["run_id"],
        run_code=p["run_code"],
        sponsor_id=p["sponsor_id"],
        supplier_id=p["supplier_id"],
        end_to_end_id=p["end_to_end_id"],
        amount=p["amount"],
        currency="EUR",
        instant=p["instant"],
        creditor_iban=p["creditor_iban"],
        creditor_bic=p["creditor_bic"],
        creditor_name=p["creditor_name"],
        remittance=p["remittance"],
        refs_included=p["refs_included"],
        refs_omitted=p["refs_omitted"],
        state=p["state"],
        execution_date=p["execution_date"] if p["state"] != "pending" else None,
        pmt_inf_id=p["pmt_inf_id"],
        reason_code=p["reason_code"],
        reason_info=p["reason_info"],
        updated_at=p["updated_at"],
        lines=lines,
    )


def _payment_filter(actor: Actor) -> str:
    if actor.role == "supplier":
        return "p.supplier_id = $1"
    if actor.role in READ_ROLES:
        return "p.sponsor_id = $1"
    raise Forbidden(f"a {actor.role} token may not read payments", code="role_not_allowed")


async def list_payments(
    conn: Any, actor: Actor, *, run_id: int | None, state: str | None, before_id: int | None, limit: int
) -> list[PaymentOut]:
    """A supplier's payments from every sponsor, or a sponsor's payments; newest first."""
    where = _payment_filter(actor)
    rows = await conn.fetch(
        _PAYMENT_SELECT + f" WHERE {where} AND ($2::bigint IS NULL OR p.run_id = $2) "
        "AND ($3::text IS NULL OR p.state = $3) AND ($4::bigint IS NULL OR p.id < $4) "
        "AND p.state <> 'cancelled' ORDER BY p.id DESC LIMIT $5",
        actor.organisation_id,
        run_id,
        state,
        before_id,
        max(1, min(limit, MAX_LIST)),
    )
    return [_payment_out(p) for p in rows]


async def get_payment(conn: Any, actor: Actor, payment_id: int) -> PaymentOut:
    where = _payment_filter(actor)
    p = await conn.fetchrow(_PAYMENT_SELECT + f" WHERE {where} AND p.id = $2", actor.organisation_id, payment_id)
    if p is None:
        raise NotFound("no such payment", code="payment_not_found")
    lines = await conn.fetch(
        "SELECT l.id, l.redemption_id, l.refund_id, v.code, r.reference, l.fund_id, l.amount FROM payment_lines pl "
        "JOIN payable_lines l ON l.id = pl.line_id JOIN redemptions r ON r.id = l.redemption_id "
        "JOIN vouchers v ON v.id = r.voucher_id WHERE pl.payment_id = $1 ORDER BY l.created_at, l.id",
        payment_id,
    )
    return _payment_out(
        p,
        [
            PaymentLine(
                line_id=ln["id"],
                redemption_id=str(ln["redemption_id"]),
                refund_id=str(ln["refund_id"]) if ln["refund_id"] else None,
                voucher_code=ln["code"],
                reference=ln["reference"],
                fund_id=ln["fund_id"],
                amount=ln["amount"],
            )
            for ln in lines
        ],
    )


# --- pain.002 ------------------------------------------------------------------------


class RejectedPayment(msgspec.Struct, frozen=True, kw_only=True):
    payment_id: int
    end_to_end_id: str
    supplier_id: int
    amount: int
    reason_code: str | None
    reason_info: str | None
    bank_details_blocked: bool


class StatusImport(msgspec.Struct, frozen=True, kw_only=True):
    report_id: int
    msg_id: str
    original_msg_id: str
    run_id: int
    run_code: str
    run_state: str
    group_status: str | None
    accepted: int  # payments newly marked accepted (for processing: not paid)
    rejected: list[RejectedPayment]
    unchanged: int
    conflicts: list[str]  # e.g. a rejection for a payment already booked
    duplicate: bool = False


async def import_status_report(conn: Any, actor: Actor | str, data: bytes, *, max_bytes: int) -> StatusImport:
    """Apply a pain.002: rejections go back to payable; acceptance is never payment."""
    scope = await sponsor_scope(conn, actor, WRITE_ROLES)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the report is larger than {max_bytes} bytes")
    try:
        report = parse_pain002(data)
    except SepaError as exc:
        raise BadRequest(str(exc), code=exc.code) from None
    f = await conn.fetchrow(
        "SELECT f.id, f.run_id, f.sponsor_id, r.code FROM payout_files f JOIN payout_runs r ON r.id = f.run_id "
        "WHERE f.msg_id = $1 AND ($2::bigint IS NULL OR f.sponsor_id = $2)",
        report.original_msg_id,
        scope,
    )
    # The answered message is MsgId *and* message name: a report on a direct
    # debit (pain.008) with the same MsgId is not about our credit transfers.
    if f is None or not report.original_msg_name_id.lower().startswith("pain.001."):
        raise NotFound(
            f"the report answers {report.original_msg_name_id} {report.original_msg_id!r}, which is not one of this "
            "sponsor's payout files",
            code="payout_file_not_found",
        )
    sha = hashlib.sha256(data).hexdigest()
    # Same bytes again: the first answer, nothing changes.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('status_report'), $1::int)", f["sponsor_id"])
    seen = await conn.fetchrow(
        "SELECT id, summary FROM status_reports WHERE sponsor_id = $1 AND sha256 = $2", f["sponsor_id"], sha
    )
    if seen is not None:
        prior = msgspec.convert(seen["summary"], StatusImport)
        return msgspec.structs.replace(prior, duplicate=True)

    run = await _run_row(conn, f["run_id"], None, lock=True)
    pays = await conn.fetch("SELECT * FROM payments WHERE file_id = $1 ORDER BY seq FOR UPDATE", f["id"])
    blocks: dict[str, list[SentPayment]] = defaultdict(list)
    for p in pays:
        blocks[p["pmt_inf_id"]].append(SentPayment(end_to_end_id=p["end_to_end_id"], amount_cents=p["amount"]))
    reading = read_against(report, [SentBlock(pmt_inf_id=k, payments=tuple(v)) for k, v in blocks.items()])
    if reading.mismatches:
        # A report that does not describe the file (other counts or totals, a block
        # or payment the file does not have, or statuses that contradict each other)
        # is about something else, or damaged: none of it is applied, not even the
        # part that fits, and it is not kept, so the bank's corrected one goes in.
        raise ValidationFailed(
            f"the report does not fit payout file {report.original_msg_id} ({len(reading.mismatches)} "
            "mismatch(es)); nothing was applied: ask the bank for the right report",
            code="status_report_does_not_match",
            mismatches=list(reading.mismatches[:MAX_MISMATCHES_SHOWN]),
            errors=[{"field": "report", "message": m} for m in reading.mismatches[:MAX_MISMATCHES_SHOWN]],
        )

    debtor = await conn.fetchrow(
        "SELECT d.in_transit_account_id, s.ledger_id FROM debtor_accounts d JOIN sponsors s "
        "ON s.organisation_id = d.sponsor_id WHERE d.id = $1",
        run["debtor_account_id"],
    )
    accepted_ids: list[int] = []
    rejected: list[tuple[Any, str | None, str | None, str | None]] = []
    conflicts: list[str] = []
    unchanged = 0
    for p in pays:
        verdict = reading.verdicts.get(p["end_to_end_id"])
        if verdict is None or verdict.outcome == "pending":
            unchanged += 1
            continue
        if verdict.outcome == "rejected":
            if p["state"] in ("sent", "accepted"):
                rejected.append((p, verdict.reason_code, verdict.reason_info, verdict.own_reason_code))
            elif p["state"] == "rejected":
                unchanged += 1
            else:
                conflicts.append(f"{p['end_to_end_id']}: rejected by the bank but already {p['state']}")
        elif p["state"] == "sent":
            accepted_ids.append(p["id"])
        elif p["state"] == "rejected" and verdict.status in SETTLED_STATUSES:
            # An earlier report rejected it and its money is payable again; this one
            # says it was executed. Paying it again would pay the supplier twice.
            conflicts.append(
                f"{p['end_to_end_id']}: the bank reports it {verdict.status} (executed), but an earlier report "
                "rejected it and its lines are payable again; check with the bank before paying it again"
            )
            unchanged += 1
        else:
            unchanged += 1

    if accepted_ids:
        await conn.execute(
            "UPDATE payments SET state = 'accepted', updated_at = now() WHERE id = ANY($1::bigint[])", accepted_ids
        )
    out_rejected: list[RejectedPayment] = []
    if rejected:
        payables = await _payable_accounts(conn, debtor["ledger_id"], [p["supplier_id"] for p, _, _, _ in rejected])
        today = local_today()
        entries = [
            EntrySpec(
                id=new_entry_id(),
                ledger_id=debtor["ledger_id"],
                description=f"Payment {p['end_to_end_id']} rejected by the bank ({code or 'no reason given'})",
                value_date=today,
                refs={"payment": p["end_to_end_id"], "run": run["code"], "status_report": report.msg_id},
                transfers=(
                    TransferSpec(
                        debit_account_id=debtor["in_transit_account_id"],
                        credit_account_id=payables[p["supplier_id"]],
                        amount=p["amount"],
                        code="payment_rejected",
                    ),
                ),
            )
            for p, code, _, _ in rejected
        ]
        await post_all(conn, entries, "a payout posting")
        for (p, code, info, own_code), entry in zip(rejected, entries, strict=True):
            blocked = False
            if is_account_error(own_code):
                blocked = await suppliers.block(
                    conn,
                    actor,
                    p["supplier_id"],
                    f"payment {p['end_to_end_id']} rejected by the bank: {code}",
                    details_id=p["bank_details_id"],
                    sponsor_id=p["sponsor_id"],
                )
            await conn.execute(
                "UPDATE payments SET state = 'rejected', reason_code = $2, reason_info = $3, resolve_entry_id = $4, "
                "updated_at = now() WHERE id = $1",
                p["id"],
                code,
                info,
                entry.id,
            )
            # The lines are payable again: at once, or once new bank details are approved.
            await conn.execute(
                "UPDATE payable_lines SET state = $2, payment_id = NULL WHERE payment_id = $1",
                p["id"],
                "rejected" if blocked else "open",
            )
            out_rejected.append(
                RejectedPayment(
                    payment_id=p["id"],
                    end_to_end_id=p["end_to_end_id"],
                    supplier_id=p["supplier_id"],
                    amount=p["amount"],
                    reason_code=code,
                    reason_info=info,
                    bank_details_blocked=blocked,
                )
            )
    run_state = await _refresh_run_state(conn, run["id"])
    # A rejection may resolve the run's last open payment (the others booked
    # on a statement already, or all of them rejected): then it is settled.
    if await settle_runs(conn, run["debtor_account_id"], run_id=run["id"]):
        run_state = "settled"
    report_id = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('status_reports', 'id'))")
    result = StatusImport(
        report_id=report_id,
        msg_id=report.msg_id,
        original_msg_id=report.original_msg_id,
        run_id=run["id"],
        run_code=run["code"],
        run_state=run_state,
        group_status=report.group_status,
        accepted=len(accepted_ids),
        rejected=out_rejected,
        unchanged=unchanged,
        conflicts=conflicts,
    )
    await conn.execute(
        "INSERT INTO status_reports (id, sponsor_id, sha256, msg_id, original_msg_id, file_id, group_status, content, "
        "summary, imported_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        report_id,
        f["sponsor_id"],
        sha,
        report.msg_id,
        report.original_msg_id,
        f["id"],
        report.group_status,
        data,
        msgspec.to_builtins(result),
        _label(actor),
    )
    await audit.record(
        conn,
        actor,
        "payment_status.imported",
        "payout_run",
        run["id"],
        sponsor_id=f["sponsor_id"],
        after={
            "report": report.msg_id,
            "sha256": sha,
            "accepted": len(accepted_ids),
            "rejected": [r.end_to_end_id for r in out_rejected],
        },
    )
    return result


async def _refresh_run_state(conn: Any, run_id: int) -> str:
    """exported/accepted/partially_rejected/rejected from the payments' states."""
    row = await conn.fetchrow(
        "SELECT r.state, count(*) FILTER (WHERE p.state <> 'cancelled') AS n, "
        "count(*) FILTER (WHERE p.state = 'rejected') AS rejected, "
        "count(*) FILTER (WHERE p.state IN ('accepted', 'booked')) AS accepted, "
        "count(*) FILTER (WHERE p.state IN ('sent', 'accepted')) AS open "
        "FROM payout_runs r JOIN payments p ON p.run_id = r.id WHERE r.id = $1 GROUP BY r.state",
        run_id,
    )
    state: str = row["state"]
    if state not in ("exported", "accepted", "partially_rejected", "rejected"):
        return state
    if row["rejected"] == row["n"]:
        new = "rejected"
    elif row["rejected"]:
        new = "partially_rejected"
    elif row["accepted"] == row["n"]:
        new = "accepted"
    else:
        new = state
    if new != state:
        await conn.execute("UPDATE payout_runs SET state = $2 WHERE id = $1", run_id, new)
    return new


async def settle_runs(conn: Any, debtor_account_id: int, *, run_id: int | None = None) -> list[str]:
    """Runs whose every payment is booked, rejected or returned become settled.

    Called after a statement import or resolution books or returns payments
    and after a pain.002 rejects them, whichever resolves a run's last open
    payment. A run rejected as a whole is settled too: nothing of it is left
    to book (DESIGN: rejected -> settled). ``run_id`` limits it to one run.
    """
    rows = await conn.fetch(
        "UPDATE payout_runs r SET state = 'settled', settled_at = now() WHERE r.debtor_account_id = $1 "
        "AND ($2::bigint IS NULL OR r.id = $2) "
        "AND r.state IN ('exported', 'accepted', 'partially_rejected', 'rejected') AND NOT EXISTS (SELECT 1 "
        "FROM payments p WHERE p.run_id = r.id AND p.state IN ('pending', 'sent', 'accepted')) RETURNING r.code",
        debtor_account_id,
        run_id,
    )
    return [r["code"] for r in rows]


# --- schedules -----------------------------------------------------------------------


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    debtor_account_id: int
    weekdays: list[int]  # ISO: 1 = Monday
    at_local: str  # HH:MM, Europe/Amsterdam
    instant: bool
    enabled: bool
    last_run_on: date | None


def _schedule_out(r: Any) -> Schedule:
    return Schedule(
        debtor_account_id=r["debtor_account_id"],
        weekdays=list(r["weekdays"]),
        at_local=r["at_local"].strftime("%H:%M"),
        instant=r["instant"],
        enabled=r["enabled"],
        last_run_on=r["last_run_on"],
    )


async def set_schedule(
    conn: Any, actor: Actor, debtor_account_id: int, weekdays: list[int], at_local: str, instant: bool, enabled: bool
) -> Schedule:
    scope = await sponsor_scope(conn, actor, ("sponsor_finance",))
    d = await conn.fetchrow(
        "SELECT id, instant_supported FROM debtor_accounts WHERE id = $1 AND sponsor_id = $2",
        debtor_account_id,
        scope,
    )
    if d is None:
        raise NotFound("no such debtor account", code="debtor_account_not_found")
    if instant and not d["instant_supported"]:
        raise ValidationFailed(
            "this bank account's profile does not support SCT Inst",
            code="instant_not_supported",
            errors=[{"field": "instant", "message": "not supported by the debtor account's bank profile"}],
        )
    try:
        at = datetime.strptime(at_local, "%H:%M").time()
    except ValueError:
        raise ValidationFailed(
            "at_local must be HH:MM", code="invalid_time", errors=[{"field": "at_local", "message": "HH:MM"}]
        ) from None
    before = await conn.fetchrow("SELECT * FROM payout_schedules WHERE debtor_account_id = $1", debtor_account_id)
    row = await conn.fetchrow(
        "INSERT INTO payout_schedules (debtor_account_id, sponsor_id, weekdays, at_local, instant, enabled) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (debtor_account_id) DO UPDATE SET weekdays = EXCLUDED.weekdays, "
        "at_local = EXCLUDED.at_local, instant = EXCLUDED.instant, enabled = EXCLUDED.enabled, updated_at = now() "
        "RETURNING *",
        debtor_account_id,
        scope,
        sorted(set(weekdays)),
        at,
        instant,
        enabled,
    )
    out = _schedule_out(row)
    await audit.record(
        conn,
        actor,
        "payout_schedule.set",
        "debtor_account",
        debtor_account_id,
        sponsor_id=scope,
        before=_schedule_out(before) if before else None,
        after=out,
    )
    return out


async def get_schedule(conn: Any, actor: Actor, debtor_account_id: int) -> Schedule:
    scope = await sponsor_scope(conn, actor, READ_ROLES)
    row = await conn.fetchrow(
        "SELECT * FROM payout_schedules WHERE debtor_account_id = $1 AND sponsor_id = $2", debtor_account_id, scope
    )
    if row is None:
        raise NotFound("this account has no payout schedule", code="payout_schedule_not_found")
    return _schedule_out(row)


async def run_due_schedules(conn: Any, now: datetime | None = None) -> list[Run]:
    """Make draft runs for schedules due now (each in its own transaction; SKIP LOCKED
    so several processes never make the same run twice)."""
    now = now or datetime.now(UTC)
    local = now.astimezone(AMSTERDAM)
    made: list[Run] = []
    while True:
        async with conn.transaction():
            s = await conn.fetchrow(
                "SELECT * FROM payout_schedules WHERE enabled AND $1 = ANY(weekdays) AND at_local <= $2 "
                "AND (last_run_on IS NULL OR last_run_on < $3) ORDER BY debtor_account_id LIMIT 1 "
                "FOR UPDATE SKIP LOCKED",
                local.isoweekday(),
                local.time().replace(tzinfo=None),
                local.date(),
            )
            if s is None:
                return made
            await conn.execute(
                "UPDATE payout_schedules SET last_run_on = $2 WHERE debtor_account_id = $1",
                s["debtor_account_id"],
                local.date(),
            )
            try:
                async with conn.transaction():  # a savepoint: an empty run must not undo last_run_on
                    made.append(
                        await create_run(
                            conn,
                            "schedule",
                            s["debtor_account_id"],
                            instant=s["instant"],
                            now=now,
                            schedule_id=s["debtor_account_id"],
                        )
                    )
            except SettlementError as exc:
                # A rule said no (nothing to pay, or e.g. instant no longer supported): this
                # schedule is done for today, with the reason in the sponsor's audit trail;
                # the schedules after it still run.
                if exc.code != "nothing_to_pay":
                    await audit.record(
                        conn,
                        "system:payout-schedule",
                        "payout_schedule.failed",
                        "debtor_account",
                        s["debtor_account_id"],
                        sponsor_id=s["sponsor_id"],
                        after={"code": exc.code, "detail": exc.detail},
                    )
