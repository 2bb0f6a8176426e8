"""What a bank would send back for an exported payout run: for trying the product end to end.

``settlement payouts simulate-bank RUN_ID --out DIR`` writes, for every
pain.001 file of the run, the pain.002 status report a bank sends (everything
accepted, or the chosen payments rejected with a reason code), and one
camt.053 day statement of the sponsor's account that books what was accepted:
a batch booking per payment block when the bank profile books in batches,
otherwise one line per payment. Nothing is imported: the files go through the
same upload endpoints and commands as a real bank's files.

The statement continues from the account's last imported statement (its
closing balance and sequence); the first one opens at ``FIRST_OPENING``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from reconciliation.model import BatchInfo, Entry, Statement, TxDetail
from reconciliation.synth import build_camt053
from sepa import CreditTransferFile, read_pain001
from sepa.pain002 import Pain002Version, Rejection, build_pain002
from settlement.errors import Conflict, NotFound, ValidationFailed

FIRST_OPENING = 250_000_00  # EUR 250,000.00 on the account before the first statement


@dataclass(frozen=True)
class SimulatedFiles:
    run_code: str
    status_reports: list[tuple[str, bytes]]  # file name, content
    statement: tuple[str, bytes] | None
    rejected: list[str]
    booked_cents: int


def _entries(files: list[CreditTransferFile], rejected: set[str], day: date) -> list[Entry]:
    out: list[Entry] = []
    for f in files:
        for block in f.blocks:
            paid = [p for p in block.payments if p.end_to_end_id not in rejected]
            if not paid:
                continue
            # SCT Inst settles the day it is sent, a weekend or holiday too.
            on = block.execution_date if block.instant else day
            details = tuple(
                TxDetail(
                    end_to_end_id=p.end_to_end_id,
                    amount_cents=p.amount_cents,
                    counterparty_name=p.creditor.name,
                    counterparty_iban=p.creditor.iban,
                    remittance=p.remittance,
                )
                for p in paid
            )
            if block.batch_booking:
                total = sum(p.amount_cents for p in paid)
                out.append(
                    Entry(
                        index=len(out),
                        amount_cents=total,
                        credit_debit="DBIT",
                        booking_date=on,
                        value_date=on,
                        bank_reference=f"SIM-{block.pmt_inf_id}"[:35],
                        batch=BatchInfo(
                            msg_id=f.msg_id, pmt_inf_id=block.pmt_inf_id, count=len(paid), total_cents=total
                        ),
                        details=details,
                    )
                )
            else:
                for d in details:
                    out.append(
                        Entry(
                            index=len(out),
                            amount_cents=d.amount_cents or 0,
                            credit_debit="DBIT",
                            booking_date=on,
                            value_date=on,
                            bank_reference=f"SIM-{d.end_to_end_id}"[:35],
                            details=(d,),
                        )
                    )
    return out


async def simulate_bank(
    conn: Any,
    run_id: int,
    *,
    reject: Iterable[str] = (),
    reason: str = "AC04",
    day: date | None = None,
    credit: int = 0,
) -> SimulatedFiles:
    """The pain.002 report(s) and the camt.053 for an exported run, as named bytes.

    ``credit`` (cents) adds incoming money without any reference to the
    statement, as a grant paid without the fund's top-up reference: no rule
    matches it, so it waits in the exceptions queue for a person.
    """
    if credit < 0:
        raise ValidationFailed("--credit is an amount in cents, 0 or more", code="amount_invalid")
    run = await conn.fetchrow(
        "SELECT r.code, r.state, d.iban, d.id AS debtor_account_id FROM payout_runs r "
        "JOIN debtor_accounts d ON d.id = r.debtor_account_id WHERE r.id = $1",
        run_id,
    )
    if run is None:
        raise NotFound(f"no payout run {run_id}", code="payout_run_not_found")
    if run["state"] in ("draft", "approved", "cancelled"):
        raise Conflict(f"run {run['code']} is {run['state']}: only an exported run has files", code="run_not_exported")
    rows = await conn.fetch("SELECT msg_id, content FROM payout_files WHERE run_id = $1 ORDER BY seq", run_id)
    files = [read_pain001(bytes(r["content"])) for r in rows]
    ids_of = [{p.end_to_end_id for b in f.blocks for p in b.payments} for f in files]
    known = set().union(*ids_of)
    rejected = set(reject)
    unknown = sorted(rejected - known)
    # payments a status report already rejected were never executed: not on the statement
    already = {
        r["end_to_end_id"]
        for r in await conn.fetch("SELECT end_to_end_id FROM payments WHERE run_id = $1 AND state = 'rejected'", run_id)
    }
    if unknown:
        raise NotFound(f"not in run {run['code']}: {', '.join(unknown)}", code="payment_not_found")
    day = day or max(b.execution_date for f in files for b in f.blocks)
    now = datetime.now(UTC)

    reports = []
    for f, ids in zip(files, ids_of, strict=True):
        mine = [Rejection(end_to_end_id=e, reason_code=reason) for e in sorted(rejected & ids)]
        # A bank answers in the generation of the file it got: .03 for .03, .10 for .09.
        version: Pain002Version = "pain.002.001.03" if f.version == "pain.001.001.03" else "pain.002.001.10"
        data = build_pain002(f, msg_id=f"SIM-{f.msg_id}"[:35], created_at=now, version=version, rejections=mine)
        reports.append((f"{f.msg_id}.pain002.xml", data))

    entries = _entries(files, rejected | already, day)
    paid_cents = -sum(e.signed_cents for e in entries)
    if credit:
        entries.append(
            Entry(
                index=len(entries),
                amount_cents=credit,
                credit_debit="CRDT",
                booking_date=day,
                value_date=day,
                bank_reference=f"SIM-{run['code']}-CREDIT"[:35],
                details=(
                    TxDetail(
                        amount_cents=credit,
                        counterparty_name="Ministerie van SZW",
                        counterparty_iban="NL40INGB0705001234",
                        remittance=f"Rijksbijdrage {day.year}",
                    ),
                ),
            )
        )
    if not entries:
        return SimulatedFiles(run["code"], reports, None, sorted(rejected), 0)
    last = await conn.fetchrow(
        "SELECT closing_balance, electronic_sequence FROM statements WHERE debtor_account_id = $1 "
        "AND closing_balance IS NOT NULL ORDER BY statement_date DESC, id DESC LIMIT 1",
        run["debtor_account_id"],
    )
    opening = last["closing_balance"] if last else FIRST_OPENING
    sequence = (last["electronic_sequence"] or 0) + 1 if last else 1
    statement = Statement(
        kind="camt.053",
        message_id=f"SIM-{run['code']}-{now:%H%M%S}"[:35],
        statement_id=f"SIM-{day:%Y%m%d}-{sequence}"[:35],
        electronic_sequence=sequence,
        account_iban=run["iban"],
        currency="EUR",
        created_at=datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=20),
        opening_balance_cents=opening,
        closing_balance_cents=opening + sum(e.signed_cents for e in entries),
        statement_date=day,
        entries=tuple(entries),
    )
    camt = (f"{run['code']}.camt053.xml", build_camt053(statement))
    return SimulatedFiles(run["code"], reports, camt, sorted(rejected), paid_cents)
