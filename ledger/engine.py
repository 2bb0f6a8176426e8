"""The batch engine: many journal entries in one database transaction.

For a batch it (1) locks the touched ledgers, (2) looks up which ids already
exist (idempotency) and checks each entry's shape, (3) locks the touched holds
and accounts in id order, (4) checks every transfer in order against
in-memory balances, (5) chains the accepted entries' hashes, and (6) writes set-wise:
COPY for entries, transfers and new holds, one UPDATE for all accounts (each
once, with its net delta), one for resolved holds, one for ledger heads.

Result codes are named after the rule they check:

    ok, exists, exists_with_different_description, exists_with_different_refs,
    exists_with_different_value_date, exists_with_different_ledger,
    exists_with_different_transfers, ledger_not_found, description_too_long,
    too_many_refs, ref_too_long, transfers_must_not_be_empty,
    too_many_transfers, linked_entries_must_be_contiguous, linked_event_failed,
    amount_must_be_positive, amount_exceeds_maximum, accounts_must_be_different,
    debit_account_not_found, credit_account_not_found, ledgers_must_match,
    exceeds_credits, exceeds_debits, pending_id_must_be_null,
    pending_id_must_not_be_null, timeout_reserved_for_pending_transfer,
    timeout_out_of_range, pending_transfer_not_found,
    pending_transfer_has_different_debit_account,
    pending_transfer_has_different_credit_account,
    pending_transfer_already_posted, pending_transfer_already_voided,
    pending_transfer_expired, pending_transfer_not_expired,
    exceeds_pending_transfer_amount, amount_must_equal_pending,
    overflows_debits, overflows_credits

The caller owns the transaction: ``apply_batch`` never commits. The database
re-checks the limits (CHECK constraints), so no path can skip them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ledger import chain
from ledger.errors import BatchTooLarge, NotInTransaction
from ledger.model import (
    MAX_BATCH_ENTRIES,
    MAX_BATCH_TRANSFERS,
    MAX_DESCRIPTION,
    MAX_HOLD_TIMEOUT_S,
    MAX_REF_LENGTH,
    MAX_REFS,
    MAX_TRANSFERS_PER_ENTRY,
    MIN_HOLD_TIMEOUT_S,
    EntryResult,
    EntrySpec,
    TransferSpec,
    transfer_id,
)
from ledger.money import MAX_AMOUNT

# Balance slots of an account in memory.
DP, CP, DPE, CPE = 0, 1, 2, 3
# Account totals are bigint columns; posted plus pending must fit (the limit
# CHECKs add them).
MAX_TOTAL = 2**63 - 1

_HOLD_STATE_FOR = {"post_pending": "posted", "void_pending": "voided", "expire_pending": "expired"}
_ALREADY = {
    "posted": "pending_transfer_already_posted",
    "voided": "pending_transfer_already_voided",
    "expired": "pending_transfer_expired",
}


class _Acct:
    __slots__ = ("bal", "cmned", "dmnec", "ledger_id", "start")

    def __init__(self, ledger_id: int, dmnec: bool, cmned: bool, bal: list[int]) -> None:
        self.ledger_id = ledger_id
        self.dmnec = dmnec
        self.cmned = cmned
        self.bal = bal
        self.start = list(bal)

    def violation(self) -> str | None:
        b = self.bal
        if b[DP] + b[DPE] > MAX_TOTAL:
            return "overflows_debits"
        if b[CP] + b[CPE] > MAX_TOTAL:
            return "overflows_credits"
        if self.dmnec and b[DP] + b[DPE] > b[CP]:
            return "exceeds_credits"
        if self.cmned and b[CP] + b[CPE] > b[DP]:
            return "exceeds_debits"
        return None


class _Hold:
    __slots__ = ("amount", "credit", "debit", "expires_at", "is_new", "ledger_id", "resolved_by", "state")

    def __init__(
        self,
        ledger_id: int,
        debit: int,
        credit: int,
        amount: int,
        expires_at: datetime | None,
        state: str,
        is_new: bool,
    ) -> None:
        self.ledger_id = ledger_id
        self.debit = debit
        self.credit = credit
        self.amount = amount
        self.expires_at = expires_at
        self.state = state
        self.is_new = is_new
        self.resolved_by: uuid.UUID | None = None


def _request_payload(e: EntrySpec) -> list[Any]:
    return [
        e.ledger_id,
        e.description,
        e.refs,
        e.value_date.isoformat(),
        [
            [
                t.kind,
                t.debit_account_id,
                t.credit_account_id,
                t.amount,
                str(t.pending_id) if t.pending_id else None,
                t.timeout_s,
                t.code,
            ]
            for t in e.transfers
        ],
    ]


def _shape_problem(e: EntrySpec) -> str | None:
    if len(e.description) > MAX_DESCRIPTION:
        return "description_too_long"
    if len(e.refs) > MAX_REFS:
        return "too_many_refs"
    for k, v in e.refs.items():
        if len(k) > MAX_REF_LENGTH or len(v) > MAX_REF_LENGTH:
            return "ref_too_long"
    if not e.transfers:
        return "transfers_must_not_be_empty"
    if len(e.transfers) > MAX_TRANSFERS_PER_ENTRY:
        return "too_many_transfers"
    return None


async def _existing(conn: Any, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    rows = await conn.fetch(
        "SELECT id, ledger_id, description, refs, value_date, content_hash, seq, created_at "
        "FROM journal_entries WHERE id = ANY($1::uuid[])",
        ids,
    )
    return {r["id"]: r for r in rows}


def _which_differs(e: EntrySpec, row: Any) -> str:
    if row["ledger_id"] != e.ledger_id:
        return "exists_with_different_ledger"
    if row["description"] != e.description:
        return "exists_with_different_description"
    if dict(row["refs"]) != e.refs:
        return "exists_with_different_refs"
    if row["value_date"] != e.value_date:
        return "exists_with_different_value_date"
    return "exists_with_different_transfers"


async def apply_batch(conn: Any, entries: Sequence[EntrySpec]) -> list[EntryResult]:
    """Apply entries in order; return one result per entry (and per transfer)."""
    if not conn.is_in_transaction():
        raise NotInTransaction("apply_batch runs inside the caller's transaction")
    if len(entries) > MAX_BATCH_ENTRIES:
        raise BatchTooLarge(f"at most {MAX_BATCH_ENTRIES} entries per batch")
    if sum(len(e.transfers) for e in entries) > MAX_BATCH_TRANSFERS:
        raise BatchTooLarge(f"at most {MAX_BATCH_TRANSFERS} transfers per batch")
    if not entries:
        return []

    n = len(entries)
    results: list[EntryResult | None] = [None] * n
    hashes = [chain.content_hash(_request_payload(e)) for e in entries]

    # --- lock ledgers, then holds, then accounts (one order everywhere: no deadlocks).
    # The ledgers first, before looking up ids: a concurrent batch carrying the
    # same new id (a client's retry) then waits, and sees it as `exists`.
    ledger_ids = sorted({e.ledger_id for e in entries})
    ledgers: dict[int, list[Any]] = {}
    now: datetime | None = None
    if ledger_ids:
        rows = await conn.fetch(
            "SELECT id, head_seq, head_hash, clock_timestamp() AS now FROM ledgers "
            "WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
            ledger_ids,
        )
        for r in rows:
            ledgers[r["id"]] = [r["head_seq"], bytes(r["head_hash"])]
            now = r["now"]
    if now is None:
        now = await conn.fetchval("SELECT clock_timestamp()")
    assert now is not None

    # --- idempotency: ids already in the journal, and repeats inside the batch
    existing = await _existing(conn, [e.id for e in entries])
    first_in_batch: dict[uuid.UUID, int] = {}
    for i, e in enumerate(entries):
        row = existing.get(e.id)
        if row is not None:
            if bytes(row["content_hash"]) == hashes[i]:
                results[i] = EntryResult(id=e.id, result="exists", seq=row["seq"], created_at=row["created_at"])
            else:
                results[i] = EntryResult(id=e.id, result=_which_differs(e, row))
        elif e.id in first_in_batch:
            j = first_in_batch[e.id]
            if hashes[j] == hashes[i]:
                results[i] = EntryResult(id=e.id, result="exists")
            else:
                f = entries[j]
                earlier = {
                    "ledger_id": f.ledger_id,
                    "description": f.description,
                    "refs": f.refs,
                    "value_date": f.value_date,
                }
                results[i] = EntryResult(id=e.id, result=_which_differs(e, earlier))
        else:
            first_in_batch[e.id] = i
            problem = _shape_problem(e)
            if problem:
                results[i] = EntryResult(id=e.id, result=problem)

    todo = [i for i in range(n) if results[i] is None]
    # An in-batch repeat of an entry that then fails takes its failure (see below).
    _check_link_groups(entries, todo, results)
    todo = [i for i in todo if results[i] is None]

    pending_ids = {t.pending_id for i in todo for t in entries[i].transfers if t.pending_id is not None}
    holds: dict[uuid.UUID, _Hold] = {}
    if pending_ids:
        for r in await conn.fetch(
            "SELECT transfer_id, ledger_id, debit_account_id, credit_account_id, amount, expires_at, state "
            "FROM holds WHERE transfer_id = ANY($1::uuid[]) ORDER BY transfer_id FOR UPDATE",
            list(pending_ids),
        ):
            holds[r["transfer_id"]] = _Hold(
                r["ledger_id"],
                r["debit_account_id"],
                r["credit_account_id"],
                r["amount"],
                r["expires_at"],
                r["state"],
                False,
            )

    account_ids: set[int] = set()
    for i in todo:
        for t in entries[i].transfers:
            account_ids.add(t.debit_account_id)
            account_ids.add(t.credit_account_id)
    for h in holds.values():
        account_ids.add(h.debit)
        account_ids.add(h.credit)
    account_ids.discard(0)
    accounts: dict[int, _Acct] = {}
    if account_ids:
        for r in await conn.fetch(
            "SELECT id, ledger_id, debits_must_not_exceed_credits, credits_must_not_exceed_debits, "
            "debits_posted, credits_posted, debits_pending, credits_pending "
            "FROM accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
            sorted(account_ids),
        ):
            accounts[r["id"]] = _Acct(
                r["ledger_id"],
                r["debits_must_not_exceed_credits"],
                r["credits_must_not_exceed_debits"],
                [r["debits_posted"], r["credits_posted"], r["debits_pending"], r["credits_pending"]],
            )

    # --- check every transfer in order against in-memory balances
    accepted: list[int] = []
    transfer_rows: dict[int, list[tuple[Any, ...]]] = {}
    group_undo: dict[int, list[tuple[Any, ...]]] = {}
    group_ok: dict[int, list[int]] = {}
    # a member refused before checking (shape, reused id, bad group) fails its group
    failed_groups: set[int] = {
        g
        for g, r in ((e.link_group, results[i]) for i, e in enumerate(entries))
        if g is not None and r is not None and not r.accepted
    }
    for i in todo:
        e = entries[i]
        g = e.link_group
        if g is not None and g in failed_groups:
            results[i] = EntryResult(id=e.id, result="linked_event_failed")
            continue
        undo: list[tuple[Any, ...]]
        rows_out: list[tuple[Any, ...]]
        tcodes: tuple[str, ...]
        if e.ledger_id not in ledgers:
            code, tcodes, undo, rows_out = "ledger_not_found", (), [], []
        else:
            code, tcodes, undo, rows_out = _apply_entry(e, accounts, holds, now)
        if code == "ok":
            results[i] = EntryResult(id=e.id, result="ok", transfer_results=tcodes)
            transfer_rows[i] = rows_out
            accepted.append(i)
            if g is not None:
                group_undo.setdefault(g, []).extend(undo)
                group_ok.setdefault(g, []).append(i)
            continue
        results[i] = EntryResult(id=e.id, result=code, transfer_results=tcodes)
        if g is not None:
            # all-or-nothing: undo the members already applied
            failed_groups.add(g)
            _undo(group_undo.pop(g, []), accounts, holds)
            for m in group_ok.pop(g, []):
                results[m] = EntryResult(id=entries[m].id, result="linked_event_failed")
                del transfer_rows[m]
                accepted.remove(m)

    # --- in-batch repeats take the result of their first occurrence
    for i, e in enumerate(entries):
        origin = first_in_batch.get(e.id)
        current = results[i]
        if origin is not None and origin != i and current is not None and current.result == "exists":
            first = results[origin]
            assert first is not None
            if not first.accepted:
                results[i] = EntryResult(id=e.id, result=first.result, transfer_results=first.transfer_results)

    if accepted:
        await _write(conn, entries, accepted, transfer_rows, hashes, ledgers, accounts, holds, now, results)
        # ... and a repeat of an accepted entry names the entry it repeats
        for i, e in enumerate(entries):
            origin = first_in_batch.get(e.id)
            current, orig = results[i], results[origin] if origin is not None else None
            if origin != i and current is not None and current.result == "exists" and orig is not None and orig.seq:
                results[i] = EntryResult(id=e.id, result="exists", seq=orig.seq, created_at=orig.created_at)
    out: list[EntryResult] = []
    for r in results:
        assert r is not None
        out.append(r)
    return out


def _undo(log: list[tuple[Any, ...]], accounts: dict[int, _Acct], holds: dict[uuid.UUID, _Hold]) -> None:
    """Roll the in-memory state back through an undo log, newest first."""
    for kind, key, old in reversed(log):
        if kind == "acct":
            accounts[key].bal[:] = old
        elif kind == "hold":
            holds[key].state, holds[key].resolved_by = old
        else:
            del holds[key]


def _check_link_groups(entries: Sequence[EntrySpec], todo: list[int], results: list[EntryResult | None]) -> None:
    """A link group must be contiguous in the batch, so that nothing outside the
    group can build on a balance the group may still roll back."""
    seen_closed: set[int] = set()
    prev: int | None = None
    bad: set[int] = set()
    for e in entries:
        g = e.link_group
        if g is not None and g != prev and g in seen_closed:
            bad.add(g)
        if prev is not None and g != prev:
            seen_closed.add(prev)
        prev = g
    if not bad:
        return
    for i in todo:
        if entries[i].link_group in bad:
            results[i] = EntryResult(id=entries[i].id, result="linked_entries_must_be_contiguous")


def _apply_entry(
    e: EntrySpec, accounts: dict[int, _Acct], holds: dict[uuid.UUID, _Hold], now: datetime
) -> tuple[str, tuple[str, ...], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Apply one entry to the in-memory state, all-or-nothing.

    Returns (result, transfer results, undo log, transfer rows to write).
    """
    undo: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    tcodes: list[str] = []
    failed: str | None = None
    for idx, t in enumerate(e.transfers):
        if failed is not None:
            tcodes.append("linked_event_failed")
            continue
        tid = transfer_id(e.id, idx)
        code = _apply_transfer(e, t, tid, accounts, holds, now, undo, rows)
        tcodes.append(code)
        if code != "ok":
            failed = code
    if failed is not None:
        _undo(undo, accounts, holds)
        # transfers before the failing one were fine on their own, but the
        # entry is all-or-nothing: say so
        tcodes = [c if c != "ok" else "linked_event_failed" for c in tcodes]
        return failed, tuple(tcodes), [], []
    return "ok", tuple(tcodes), undo, rows


def _apply_transfer(
    e: EntrySpec,
    t: TransferSpec,
    tid: uuid.UUID,
    accounts: dict[int, _Acct],
    holds: dict[uuid.UUID, _Hold],
    now: datetime,
    undo: list[tuple[Any, ...]],
    rows: list[tuple[Any, ...]],
) -> str:
    kind = t.kind
    if kind in ("posted", "pending"):
        amount = t.amount
        if amount is None or amount <= 0:
            return "amount_must_be_positive"
        if amount > MAX_AMOUNT:
            return "amount_exceeds_maximum"
        if t.pending_id is not None:
            return "pending_id_must_be_null"
        if t.debit_account_id == t.credit_account_id:
            return "accounts_must_be_different"
        dr = accounts.get(t.debit_account_id)
        if dr is None:
            return "debit_account_not_found"
        cr = accounts.get(t.credit_account_id)
        if cr is None:
            return "credit_account_not_found"
        if dr.ledger_id != e.ledger_id or cr.ledger_id != e.ledger_id:
            return "ledgers_must_match"
        expires_at: datetime | None = None
        if kind == "posted":
            if t.timeout_s is not None:
                return "timeout_reserved_for_pending_transfer"
            slot_d, slot_c = DP, CP
        else:
            if t.timeout_s is not None:
                if not MIN_HOLD_TIMEOUT_S <= t.timeout_s <= MAX_HOLD_TIMEOUT_S:
                    return "timeout_out_of_range"
                expires_at = now + timedelta(seconds=t.timeout_s)
            slot_d, slot_c = DPE, CPE
        undo.append(("acct", t.debit_account_id, list(dr.bal)))
        undo.append(("acct", t.credit_account_id, list(cr.bal)))
        dr.bal[slot_d] += amount
        cr.bal[slot_c] += amount
        problem = dr.violation() or cr.violation()
        if problem:
            _undo([undo.pop(), undo.pop()][::-1], accounts, holds)
            return problem
        if kind == "pending":
            holds[tid] = _Hold(
                e.ledger_id, t.debit_account_id, t.credit_account_id, amount, expires_at, "pending", True
            )
            undo.append(("newhold", tid, None))
        rows.append((tid, t.debit_account_id, t.credit_account_id, amount, kind, None, expires_at, t.code))
        return "ok"

    # post, void or expire a pending transfer
    if t.pending_id is None:
        return "pending_id_must_not_be_null"
    if t.timeout_s is not None:
        return "timeout_reserved_for_pending_transfer"
    h = holds.get(t.pending_id)
    if h is None:
        return "pending_transfer_not_found"
    if h.ledger_id != e.ledger_id:
        return "ledgers_must_match"
    if t.debit_account_id and t.debit_account_id != h.debit:
        return "pending_transfer_has_different_debit_account"
    if t.credit_account_id and t.credit_account_id != h.credit:
        return "pending_transfer_has_different_credit_account"
    if h.state != "pending":
        return _ALREADY[h.state]
    expired = h.expires_at is not None and h.expires_at <= now
    if kind == "expire_pending":
        if not expired:
            return "pending_transfer_not_expired"
    elif expired:
        return "pending_transfer_expired"
    if kind == "post_pending":
        amount = h.amount if t.amount is None else t.amount
        if amount <= 0:
            return "amount_must_be_positive"
        if amount > h.amount:
            return "exceeds_pending_transfer_amount"
    else:
        if t.amount is not None and t.amount != h.amount:
            return "exceeds_pending_transfer_amount" if t.amount > h.amount else "amount_must_equal_pending"
        amount = h.amount
    dr = accounts[h.debit]
    cr = accounts[h.credit]
    undo.append(("acct", h.debit, list(dr.bal)))
    undo.append(("acct", h.credit, list(cr.bal)))
    undo.append(("hold", t.pending_id, (h.state, h.resolved_by)))
    dr.bal[DPE] -= h.amount
    cr.bal[CPE] -= h.amount
    if kind == "post_pending":
        dr.bal[DP] += amount
        cr.bal[CP] += amount
    # Posting at most the held amount cannot break a limit the hold respected;
    # checked anyway because the database will check it too.
    problem = dr.violation() or cr.violation()
    if problem:
        _undo([undo.pop(), undo.pop(), undo.pop()][::-1], accounts, holds)
        return problem
    h.state = _HOLD_STATE_FOR[kind]
    h.resolved_by = tid
    rows.append((tid, h.debit, h.credit, amount, kind, t.pending_id, None, t.code))
    return "ok"


async def _write(
    conn: Any,
    entries: Sequence[EntrySpec],
    accepted: list[int],
    transfer_rows: dict[int, list[tuple[Any, ...]]],
    hashes: list[bytes],
    ledgers: dict[int, list[Any]],
    accounts: dict[int, _Acct],
    holds: dict[uuid.UUID, _Hold],
    now: datetime,
    results: list[EntryResult | None],
) -> None:
    entry_records: list[tuple[Any, ...]] = []
    transfer_records: list[tuple[Any, ...]] = []
    for i in accepted:
        e = entries[i]
        head = ledgers[e.ledger_id]
        seq = head[0] + 1
        rows = transfer_rows[i]
        canon_rows: list[chain.TransferRow] = [
            (r[0], r[4], r[1], r[2], r[3], r[5], chain.micros(r[6]) if r[6] is not None else None, r[7]) for r in rows
        ]
        canonical = chain.canonical_entry(e.ledger_id, seq, e.id, e.description, e.refs, e.value_date, now, canon_rows)
        h = chain.link(head[1], canonical)
        entry_records.append((e.id, e.ledger_id, seq, e.description, e.refs, e.value_date, now, hashes[i], head[1], h))
        head[0] = seq
        head[1] = h
        for r in rows:
            transfer_records.append((r[0], e.id, e.ledger_id, r[1], r[2], r[3], r[4], r[5], r[6], r[7], now))
        prev = results[i]
        assert prev is not None
        results[i] = EntryResult(id=e.id, result="ok", transfer_results=prev.transfer_results, seq=seq, created_at=now)

    await conn.copy_records_to_table(
        "journal_entries",
        records=entry_records,
        columns=[
            "id",
            "ledger_id",
            "seq",
            "description",
            "refs",
            "value_date",
            "created_at",
            "content_hash",
            "prev_hash",
            "hash",
        ],
    )
    await conn.copy_records_to_table(
        "transfers",
        records=transfer_records,
        columns=[
            "id",
            "entry_id",
            "ledger_id",
            "debit_account_id",
            "credit_account_id",
            "amount",
            "kind",
            "pending_id",
            "expires_at",
            "code",
            "created_at",
        ],
    )

    new_holds: list[tuple[Any, ...]] = []
    resolved: list[tuple[uuid.UUID, str, uuid.UUID]] = []
    for hid, hold in holds.items():
        if hold.is_new:
            new_holds.append(
                (
                    hid,
                    hold.ledger_id,
                    hold.debit,
                    hold.credit,
                    hold.amount,
                    hold.expires_at,
                    hold.state,
                    hold.resolved_by,
                    now if hold.resolved_by else None,
                )
            )
        elif hold.state != "pending" and hold.resolved_by is not None:
            resolved.append((hid, hold.state, hold.resolved_by))
    if new_holds:
        await conn.copy_records_to_table(
            "holds",
            records=new_holds,
            columns=[
                "transfer_id",
                "ledger_id",
                "debit_account_id",
                "credit_account_id",
                "amount",
                "expires_at",
                "state",
                "resolved_by",
                "resolved_at",
            ],
        )
    if resolved:
        await conn.execute(
            "UPDATE holds h SET state = r.state, resolved_by = r.resolved_by, resolved_at = $4 "
            "FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS r(id, state, resolved_by) "
            "WHERE h.transfer_id = r.id",
            [r[0] for r in resolved],
            [r[1] for r in resolved],
            [r[2] for r in resolved],
            now,
        )

    ids: list[int] = []
    deltas: list[list[int]] = [[], [], [], []]
    for aid, a in accounts.items():
        d = [a.bal[k] - a.start[k] for k in range(4)]
        if any(d):
            ids.append(aid)
            for k in range(4):
                deltas[k].append(d[k])
            a.start = list(a.bal)
    if ids:
        await conn.execute(
            "UPDATE accounts a SET debits_posted = a.debits_posted + d.dp, "
            "credits_posted = a.credits_posted + d.cp, debits_pending = a.debits_pending + d.dpe, "
            "credits_pending = a.credits_pending + d.cpe "
            "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) "
            "AS d(id, dp, cp, dpe, cpe) WHERE a.id = d.id",
            ids,
            *deltas,
        )
    touched = sorted({entries[i].ledger_id for i in accepted})
    await conn.execute(
        "UPDATE ledgers l SET head_seq = h.seq, head_hash = h.hash "
        "FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS h(id, seq, hash) WHERE l.id = h.id",
        touched,
        [ledgers[lid][0] for lid in touched],
        [ledgers[lid][1] for lid in touched],
    )
