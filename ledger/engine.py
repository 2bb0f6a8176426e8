"""The batch engine: many journal entries in one database transaction.

For a batch it (1) checks each entry's shape, (2) in one round trip
(`ledger_prepare_batch`, ops/migrations/0007) locks the touched ledgers, reads
which ids already exist (idempotency), and locks the touched holds and
accounts in id order, (3) checks every transfer in order against in-memory
balances, (4) chains the accepted entries' hashes, and (5) writes set-wise:
up to SMALL_BATCH_TRANSFERS in one statement; above that, COPY for entries,
transfers and new holds, then one statement for the resolved holds, the
accounts (each once, with its net delta) and the ledger heads. A request on
the API thus spends two round trips in the engine, holding the ledger's lock
from the first one on.

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


def _which_differs(e: EntrySpec, row: Any) -> str:
    if row["ledger_id"] != e.ledger_id:
        return "exists_with_different_ledger"
    if row["t1"] != e.description:
        return "exists_with_different_description"
    if dict(row["j"]) != e.refs:
        return "exists_with_different_refs"
    if row["d"] != e.value_date:
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

    # --- shape and in-batch repeats first: pure, and they decide what to lock
    first_seen: dict[uuid.UUID, int] = {}
    shape: dict[int, str] = {}
    for i, e in enumerate(entries):
        if e.id not in first_seen:
            first_seen[e.id] = i
            problem = _shape_problem(e)
            if problem:
                shape[i] = problem
    candidates = [i for i, e in enumerate(entries) if first_seen[e.id] == i and i not in shape]
    pending_ids = sorted({t.pending_id for i in candidates for t in entries[i].transfers if t.pending_id is not None})
    wanted_accounts: set[int] = set()
    for i in candidates:
        for t in entries[i].transfers:
            wanted_accounts.add(t.debit_account_id)
            wanted_accounts.add(t.credit_account_id)
    wanted_accounts.discard(0)

    # --- lock ledgers, then holds, then accounts (one order everywhere: no
    # deadlocks), and read the entries that already exist, in one round trip
    # (ops/migrations/0007). The ledgers come first, before looking up ids: a
    # concurrent batch carrying the same new id (a client's retry) then waits,
    # and sees it as `exists`. Holds and accounts of entries that turn out to
    # exist are locked too; harmless.
    ledgers: dict[int, list[Any]] = {}
    existing: dict[uuid.UUID, Any] = {}
    holds: dict[uuid.UUID, _Hold] = {}
    accounts: dict[int, _Acct] = {}
    now: datetime | None = None
    for r in await conn.fetch(
        "SELECT * FROM ledger_prepare_batch($1::bigint[], $2::uuid[], $3::uuid[], $4::bigint[])",
        sorted({e.ledger_id for e in entries}),
        [e.id for e in entries],
        pending_ids,
        sorted(wanted_accounts),
    ):
        kind = r["kind"]  # a "char": bytes
        if kind == b"a":
            accounts[r["n"]] = _Acct(r["ledger_id"], r["f1"], r["f2"], [r["v1"], r["v2"], r["v3"], r["v4"]])
        elif kind == b"e":
            existing[r["u"]] = r
        elif kind == b"h":
            holds[r["u"]] = _Hold(r["ledger_id"], r["v1"], r["v2"], r["v3"], r["ts"], r["t1"], False)
        else:
            now = r["ts"]
            if r["n"] is not None:
                ledgers[r["n"]] = [r["v1"], bytes(r["b"])]
    assert now is not None

    # --- idempotency: ids already in the journal, and repeats inside the batch
    # first occurrences of the ids that are new to the journal
    first_in_batch = {eid: i for eid, i in first_seen.items() if eid not in existing}
    for i, e in enumerate(entries):
        row = existing.get(e.id)
        if row is not None:
            if bytes(row["b"]) == hashes[i]:
                results[i] = EntryResult(id=e.id, result="exists", seq=row["n"], created_at=row["ts"])
            else:
                results[i] = EntryResult(id=e.id, result=_which_differs(e, row))
        elif first_in_batch[e.id] != i:
            j = first_in_batch[e.id]
            if hashes[j] == hashes[i]:
                results[i] = EntryResult(id=e.id, result="exists")
            else:
                f = entries[j]
                earlier = {
                    "ledger_id": f.ledger_id,
                    "t1": f.description,
                    "j": f.refs,
                    "d": f.value_date,
                }
                results[i] = EntryResult(id=e.id, result=_which_differs(e, earlier))
        elif i in shape:
            results[i] = EntryResult(id=e.id, result=shape[i])

    todo = [i for i in range(n) if results[i] is None]
    # An in-batch repeat of an entry that then fails takes its failure (see below).
    _check_link_groups(entries, todo, results)
    todo = [i for i in todo if results[i] is None]

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
    # an in-batch repeat in a link group is checked in its place too: when the
    # entry it repeats was refused, it takes that refusal and fails its group
    grouped_repeats: dict[int, int] = {}
    if n > len(first_seen):
        for i, e in enumerate(entries):
            j, res = first_in_batch.get(e.id, i), results[i]
            if e.link_group is not None and j != i and res is not None and res.result == "exists":
                grouped_repeats[i] = j
    for i in sorted([*todo, *grouped_repeats]) if grouped_repeats else todo:
        e = entries[i]
        g = e.link_group
        undo: list[tuple[Any, ...]]
        rows_out: list[tuple[Any, ...]]
        tcodes: tuple[str, ...]
        origin = grouped_repeats.get(i)
        if origin is not None:
            first = results[origin]
            assert first is not None
            if first.accepted or g in failed_groups:
                continue  # it takes its first occurrence's result below
            code, tcodes, undo, rows_out = first.result, first.transfer_results, [], []
        elif g is not None and g in failed_groups:
            results[i] = EntryResult(id=e.id, result="linked_event_failed")
            continue
        elif e.ledger_id not in ledgers:
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

    ids: list[int] = []
    deltas: list[list[int]] = [[], [], [], []]
    for aid, a in accounts.items():
        d = [a.bal[k] - a.start[k] for k in range(4)]
        if any(d):
            ids.append(aid)
            for k in range(4):
                deltas[k].append(d[k])
            a.start = list(a.bal)
    touched = sorted({entries[i].ledger_id for i in accepted})
    heads = (touched, [ledgers[lid][0] for lid in touched], [ledgers[lid][1] for lid in touched])

    # the parameters of the updates both paths share ($1-$12)
    updates = (*_columns(resolved, 3), now, ids, *deltas, *heads)
    if len(transfer_records) <= SMALL_BATCH_TRANSFERS:
        entry_cols = _columns(entry_records, 10)
        del entry_cols[6]  # created_at: the one `now` ($4)
        transfer_cols = _columns(transfer_records, 11)[:10]  # created_at: `now` again
        hold_cols = _columns([r[:8] for r in new_holds], 8)  # resolved_at: from `now`
        await conn.execute(_WRITE_SMALL, *updates, *entry_cols, *transfer_cols, *hold_cols)
        return
    await _copy(conn, entry_records, transfer_records, new_holds)
    await conn.execute(_WRITE_UPDATES, *updates)


# Up to this many transfers, the writes go in one statement (a round trip is
# what a small request waits for, under the ledger's lock); above it, COPY.
SMALL_BATCH_TRANSFERS = 64

# Both in migration 0008, as functions with a cached generic plan.
# $1-$12: resolved holds, `now`, account deltas, ledger heads.
_WRITE_UPDATES = "SELECT ledger_apply_updates(" + ", ".join(f"${i}" for i in range(1, 13)) + ")"
# $13-$21 entries, $22-$31 transfers, $32-$39 new holds.
_WRITE_SMALL = "SELECT ledger_write_small(" + ", ".join(f"${i}" for i in range(1, 40)) + ")"


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def _copy(
    conn: Any,
    entry_records: list[tuple[Any, ...]],
    transfer_records: list[tuple[Any, ...]],
    new_holds: list[tuple[Any, ...]],
) -> None:
    """COPY for entries, transfers and new holds."""
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
