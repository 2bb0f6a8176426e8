"""Vouchers, reservations, redemptions and refunds (DESIGN.md "Posting rules").

    voucher issued          fund:F      -> voucher:V   (one entry per share, linked)
    reservation             voucher:V   -> payable:P   pending, expires per fund
    redemption              post the pending transfers (partial allowed; rest released)
    direct redemption       voucher:V   -> payable:P   posted at once
    refund                  payable:P   -> voucher:V
    expired / withdrawn     voucher:V   -> fund:F      unspent money back to the fund

A co-funded voucher has one share per fund, possibly of different sponsors;
every movement is split over the shares (settlement.split) and applied as
linked entries, one per sponsor ledger, that commit all-or-nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from ledger.engine import apply_batch
from ledger.holds import expiry_entry
from ledger.model import (
    MAX_BATCH_ENTRIES,
    MIN_HOLD_TIMEOUT_S,
    EntryResult,
    EntrySpec,
    TransferSpec,
    new_entry_id,
    transfer_id,
)
from settlement import audit, chart, gate
from settlement.auth import Actor
from settlement.clock import end_of_day, local_today
from settlement.errors import Conflict, Forbidden, InsufficientFunds, NotFound, ValidationFailed
from settlement.references import new_voucher_code
from settlement.split import BP_TOTAL, split_by_bp, split_capped, split_proportional

MAX_BULK_VOUCHERS = 100_000
MAX_SHARES = 8
MAX_PAGE = 500


# --- wire-independent records -------------------------------------------------------


class ShareRequest(msgspec.Struct, frozen=True, kw_only=True):
    fund_id: int
    bp: int = BP_TOTAL


class VoucherRequest(msgspec.Struct, frozen=True, kw_only=True):
    amount: int
    beneficiary_ref: str
    shares: list[ShareRequest]
    valid_until: date | None = None


class VoucherShare(msgspec.Struct, frozen=True, kw_only=True):
    fund_id: int
    sponsor_id: int
    bp: int
    amount: int


class Voucher(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    code: str
    amount: int
    currency: str
    state: str
    valid_from: date
    valid_until: date
    beneficiary_ref: str | None
    shares: list[VoucherShare]
    available: int | None = None
    reserved: int | None = None
    spent: int | None = None


class BulkItemResult(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    ok: bool
    voucher_id: uuid.UUID | None = None
    code: str | None = None
    error: str | None = None
    detail: str | None = None


class BulkResult(msgspec.Struct, frozen=True, kw_only=True):
    issued: int
    failed: int
    results: list[BulkItemResult]


class _Share(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    fund_id: int
    sponsor_id: int
    ledger_id: int
    fund_account: int
    bp: int
    amount: int


class _Fund(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    sponsor_id: int
    ledger_id: int
    account_id: int
    code: str
    period_start: date
    period_end: date
    cap: int
    expiry_days: int
    cancellation_days: int
    categories: tuple[str, ...]
    validators: tuple[int, ...]
    closed: bool


# DESIGN.md "Security": no personal data of beneficiaries. A name cannot be told
# from a pseudonym, but a citizen service number (BSN: 9 digits, also written
# 1234.56.782, passing the 11-test) or an email address can.
_BSN = re.compile(r"(?<!\d)(\d{4})\.?(\d{2})\.?(\d{3})(?!\d)")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")


def _is_bsn(digits: str) -> bool:
    d = [int(c) for c in digits]
    return any(d) and (sum(x * w for x, w in zip(d[:8], range(9, 1, -1), strict=True)) - d[8]) % 11 == 0


def personal_data_in(ref: str) -> str | None:
    """What in a beneficiary reference is personal data ('bsn', 'email'), or None."""
    if "@" in ref and _EMAIL.search(ref):
        return "email"
    for m in _BSN.finditer(ref):
        if _is_bsn("".join(m.groups())):
            return "bsn"
    return None


class _ItemError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


async def _load_funds(conn: Any, fund_ids: Sequence[int]) -> dict[int, _Fund]:
    # Shared row locks until commit: closing a fund locks it exclusively, so it waits for
    # these vouchers (and then lists them as open), or these wait and see the fund closed.
    rows = await conn.fetch(
        "SELECT f.id, f.sponsor_id, s.ledger_id, f.account_id, f.code, f.period_start, f.period_end, "
        "f.cap_per_voucher, f.reservation_expiry_days, f.cancellation_window_days, f.categories, f.closed_at, "
        "coalesce((SELECT array_agg(organisation_id) FROM fund_validators v WHERE v.fund_id = f.id), '{}') AS vals "
        "FROM funds f JOIN sponsors s ON s.organisation_id = f.sponsor_id WHERE f.id = ANY($1::bigint[]) "
        "ORDER BY f.id FOR SHARE OF f",
        sorted(set(fund_ids)),
    )
    return {
        r["id"]: _Fund(
            id=r["id"],
            sponsor_id=r["sponsor_id"],
            ledger_id=r["ledger_id"],
            account_id=r["account_id"],
            code=r["code"],
            period_start=r["period_start"],
            period_end=r["period_end"],
            cap=r["cap_per_voucher"],
            expiry_days=r["reservation_expiry_days"],
            cancellation_days=r["cancellation_window_days"],
            categories=tuple(r["categories"]),
            validators=tuple(r["vals"]),
            closed=r["closed_at"] is not None,
        )
        for r in rows
    }


def _may_issue(actor: Actor, fund: _Fund) -> bool:
    if actor.role == "sponsor_finance":
        return fund.sponsor_id == actor.organisation_id
    if actor.role == "validator":
        return actor.organisation_id in fund.validators
    return False


def _plan_voucher(actor: Actor, req: VoucherRequest, funds: dict[int, _Fund], today: date) -> tuple[list[_Share], date]:
    if req.amount <= 0:
        raise _ItemError("amount_must_be_positive", "amount must be > 0 cents")
    if not req.shares or len(req.shares) > MAX_SHARES:
        raise _ItemError("shares_invalid", f"a voucher has 1 to {MAX_SHARES} shares")
    if sum(s.bp for s in req.shares) != BP_TOTAL or any(s.bp <= 0 for s in req.shares):
        raise _ItemError("shares_must_sum_to_10000", "share basis points must be positive and sum to 10,000")
    if len({s.fund_id for s in req.shares}) != len(req.shares):
        raise _ItemError("shares_invalid", "each fund may appear once")
    if not req.beneficiary_ref.strip() or len(req.beneficiary_ref) > 100:
        raise _ItemError("beneficiary_ref_invalid", "beneficiary_ref is an opaque pseudonymous reference, 1-100 chars")
    found = personal_data_in(req.beneficiary_ref)
    if found:
        what = "a citizen service number (BSN)" if found == "bsn" else "an email address"
        raise _ItemError(
            "beneficiary_ref_personal_data",
            f"beneficiary_ref holds {what}: give a pseudonymous reference, never personal data",
        )
    amounts = split_by_bp(req.amount, [s.bp for s in req.shares])
    shares: list[_Share] = []
    valid_until = req.valid_until
    for pos, (s, amt) in enumerate(zip(req.shares, amounts, strict=True)):
        fund = funds.get(s.fund_id)
        # someone else's fund answers like an unknown one
        if fund is None or (not _may_issue(actor, fund) and not _visible(actor, fund)):
            raise _ItemError("fund_not_found", f"no such fund {s.fund_id}")
        if not _may_issue(actor, fund):
            raise _ItemError("not_authorised_for_fund", f"not authorised to issue vouchers of fund {fund.id}")
        if fund.closed:
            raise _ItemError("fund_closed", f"fund {fund.id} is closed: it issues no more vouchers")
        if not fund.period_start <= today <= fund.period_end:
            raise _ItemError("fund_not_in_period", f"fund {fund.id} runs {fund.period_start} to {fund.period_end}")
        if amt > fund.cap:
            raise _ItemError("amount_exceeds_cap", f"fund {fund.id} pays at most {fund.cap} cents per voucher")
        if amt <= 0:
            raise _ItemError("share_amount_must_be_positive", "every share must receive at least one cent")
        shares.append(
            _Share(
                position=pos,
                fund_id=fund.id,
                sponsor_id=fund.sponsor_id,
                ledger_id=fund.ledger_id,
                fund_account=fund.account_id,
                bp=s.bp,
                amount=amt,
            )
        )
    if len(shares) > 1:
        # spent only where every share's fund allows it (empty: any supplier)
        limited = [set(funds[s.fund_id].categories) for s in shares if funds[s.fund_id].categories]
        if limited and not set.intersection(*limited):
            raise _ItemError(
                "fund_categories_disjoint",
                "the shares' funds allow no supplier category in common: no supplier could take this voucher",
            )
    last = min(funds[s.fund_id].period_end for s in shares)
    if valid_until is None:
        valid_until = last
    if valid_until < today or valid_until > last:
        raise _ItemError("valid_until_invalid", f"valid_until must lie between today and {last}")
    return shares, valid_until


def _visible(actor: Actor, fund: _Fund) -> bool:
    return fund.sponsor_id == actor.organisation_id


async def issue_vouchers(conn: Any, actor: Actor, requests: Sequence[VoucherRequest]) -> BulkResult:
    """Issue many vouchers; each succeeds or fails on its own."""
    if len(requests) > MAX_BULK_VOUCHERS:
        raise ValidationFailed(f"at most {MAX_BULK_VOUCHERS} vouchers per request", code="too_many_items")
    today = local_today()
    funds = await _load_funds(conn, [s.fund_id for r in requests for s in r.shares])
    results: list[BulkItemResult | None] = [None] * len(requests)
    planned: list[tuple[int, uuid.UUID, str, VoucherRequest, list[_Share], date]] = []
    for i, req in enumerate(requests):
        try:
            shares, valid_until = _plan_voucher(actor, req, funds, today)
        except _ItemError as e:
            results[i] = BulkItemResult(index=i, ok=False, error=e.code, detail=e.detail)
            continue
        planned.append((i, new_entry_id(), new_voucher_code(), req, shares, valid_until))

    # one voucher account per share, in the share's sponsor ledger
    by_ledger: dict[int, list[tuple[str, str]]] = {}
    for _, _, code, _, shares, _ in planned:
        for s in shares:
            by_ledger.setdefault(s.ledger_id, []).append((chart.voucher(code), f"Voucher {code}"))
    account_ids: dict[tuple[int, str], int] = {}
    for ledger_id, items in by_ledger.items():
        for start in range(0, len(items), MAX_BATCH_ENTRIES):
            ids = await chart.ensure(conn, ledger_id, items[start : start + MAX_BATCH_ENTRIES])
            for code, aid in ids.items():
                account_ids[(ledger_id, code)] = aid

    # ledger: linked entries per voucher, in engine-sized chunks
    accepted: list[tuple[int, uuid.UUID, str, VoucherRequest, list[_Share], date]] = []
    chunk: list[EntrySpec] = []
    chunk_items: list[tuple[Any, ...]] = []

    async def flush() -> None:
        if not chunk:
            return
        res = await apply_batch(conn, chunk)
        pos = 0
        for item in chunk_items:
            n = len(item[4])
            rs = res[pos : pos + n]
            pos += n
            failed = next((r for r in rs if not r.accepted and r.result != "linked_event_failed"), None)
            if failed is None and all(r.accepted for r in rs):
                accepted.append(item)
            else:
                code = failed.result if failed else "linked_event_failed"
                err = "fund_budget_insufficient" if code == "exceeds_credits" else code
                results[item[0]] = BulkItemResult(
                    index=item[0],
                    ok=False,
                    error=err,
                    detail="the fund's available budget is short" if err == "fund_budget_insufficient" else code,
                )
        chunk.clear()
        chunk_items.clear()

    for group, item in enumerate(planned):
        i, vid, code, req, shares, valid_until = item
        if len(chunk) + len(shares) > MAX_BATCH_ENTRIES:
            await flush()
        for s in shares:
            chunk.append(
                EntrySpec(
                    id=new_entry_id(),
                    ledger_id=s.ledger_id,
                    description=f"Voucher {code} issued",
                    value_date=today,
                    refs={"voucher": str(vid), "fund": str(s.fund_id)},
                    link_group=group,
                    transfers=(
                        TransferSpec(
                            debit_account_id=s.fund_account,
                            credit_account_id=account_ids[(s.ledger_id, chart.voucher(code))],
                            amount=s.amount,
                            code="voucher_issued",
                        ),
                    ),
                )
            )
        chunk_items.append(item)
    await flush()

    if accepted:
        await conn.copy_records_to_table(
            "vouchers",
            records=[
                (
                    vid,
                    code,
                    shares[0].sponsor_id,
                    req.beneficiary_ref,
                    req.amount,
                    today,
                    valid_until,
                    actor.organisation_id,
                    actor.token_id,
                )
                for _, vid, code, req, shares, valid_until in accepted
            ],
            columns=[
                "id",
                "code",
                "sponsor_id",
                "beneficiary_ref",
                "amount",
                "valid_from",
                "valid_until",
                "issued_by_org",
                "issued_by_token",
            ],
        )
        await conn.copy_records_to_table(
            "voucher_shares",
            records=[
                (
                    vid,
                    s.position,
                    s.fund_id,
                    s.sponsor_id,
                    s.ledger_id,
                    account_ids[(s.ledger_id, chart.voucher(code))],
                    s.bp,
                    s.amount,
                    req.beneficiary_ref,
                )
                for _, vid, code, req, shares, _ in accepted
                for s in shares
            ],
            columns=[
                "voucher_id",
                "position",
                "fund_id",
                "sponsor_id",
                "ledger_id",
                "account_id",
                "bp",
                "amount",
                "beneficiary_ref",
            ],
        )
        for i, vid, code, _, _, _ in accepted:
            results[i] = BulkItemResult(index=i, ok=True, voucher_id=vid, code=code)
        # one audit line per request: a bulk issue is one decision
        sponsors = sorted({s.sponsor_id for _, _, _, _, shares, _ in accepted for s in shares})
        for sp in sponsors:
            await audit.record(
                conn,
                actor,
                "vouchers.issued",
                "fund_batch",
                ",".join(
                    sorted({str(s.fund_id) for _, _, _, _, shares, _ in accepted for s in shares if s.sponsor_id == sp})
                ),
                sponsor_id=sp,
                after={
                    "count": sum(1 for a in accepted if any(s.sponsor_id == sp for s in a[4])),
                    "total": sum(s.amount for a in accepted for s in a[4] if s.sponsor_id == sp),
                },
            )
    out = [r for r in results if r is not None]
    assert len(out) == len(requests)
    return BulkResult(issued=len(accepted), failed=len(requests) - len(accepted), results=out)


# --- reading vouchers --------------------------------------------------------------


async def _voucher_row(conn: Any, *, voucher_id: uuid.UUID | None = None, code: str | None = None) -> Any:
    if voucher_id is not None:
        return await conn.fetchrow("SELECT * FROM vouchers WHERE id = $1", voucher_id)
    return await conn.fetchrow("SELECT * FROM vouchers WHERE code = $1", code)


async def _shares(conn: Any, voucher_id: uuid.UUID) -> list[Any]:
    return list(
        await conn.fetch(
            "SELECT s.*, a.debits_posted, a.credits_posted, a.debits_pending, f.categories, f.reservation_expiry_days, "
            "f.cancellation_window_days, f.account_id AS fund_account FROM voucher_shares s "
            "JOIN accounts a ON a.id = s.account_id JOIN funds f ON f.id = s.fund_id "
            "WHERE s.voucher_id = $1 ORDER BY s.position",
            voucher_id,
        )
    )


def _may_read(actor: Actor, row: Any, shares: list[Any]) -> bool:
    if actor.role in ("sponsor_finance", "sponsor_approver", "auditor"):
        return any(s["sponsor_id"] == actor.organisation_id for s in shares)
    if actor.role == "validator":
        return bool(row["issued_by_org"] == actor.organisation_id)
    return actor.role == "supplier"  # suppliers read by code only, without the beneficiary


def _voucher(row: Any, shares: list[Any], *, with_beneficiary: bool) -> Voucher:
    available = sum(s["credits_posted"] - s["debits_posted"] - s["debits_pending"] for s in shares)
    reserved = sum(s["debits_pending"] for s in shares)
    return Voucher(
        id=row["id"],
        code=row["code"],
        amount=row["amount"],
        currency="EUR",
        state=row["state"],
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        beneficiary_ref=row["beneficiary_ref"] if with_beneficiary else None,
        shares=[
            VoucherShare(fund_id=s["fund_id"], sponsor_id=s["sponsor_id"], bp=s["bp"], amount=s["amount"])
            for s in shares
        ],
        available=available,
        reserved=reserved,
    )


async def get_voucher(
    conn: Any, actor: Actor, *, voucher_id: uuid.UUID | None = None, code: str | None = None
) -> Voucher:
    row = await _voucher_row(conn, voucher_id=voucher_id, code=code)
    shares = await _shares(conn, row["id"]) if row else []
    if row is None or not _may_read(actor, row, shares) or (actor.role == "supplier" and code is None):
        raise NotFound("no such voucher", code="voucher_not_found")
    v = _voucher(row, shares, with_beneficiary=actor.role != "supplier")
    spent = await conn.fetchval(
        "SELECT coalesce(sum(amount - refunded), 0)::bigint FROM redemptions WHERE voucher_id = $1", row["id"]
    )
    return msgspec.structs.replace(v, spent=spent)


class HistoryLine(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    sponsor_id: int
    kind: str
    code: str
    amount: int  # + into the voucher, - out of it; a hold (kind 'pending') is -, its release (void or expiry) +
    entry_id: uuid.UUID
    description: str


async def voucher_history(conn: Any, actor: Actor, voucher_id: uuid.UUID) -> list[HistoryLine]:
    row = await _voucher_row(conn, voucher_id=voucher_id)
    shares = await _shares(conn, voucher_id) if row else []
    if row is None or actor.role == "supplier" or not _may_read(actor, row, shares):
        raise NotFound("no such voucher", code="voucher_not_found")
    accounts = {s["account_id"]: s["sponsor_id"] for s in shares}
    rows = await conn.fetch(
        "SELECT t.created_at, t.kind, t.code, t.amount, t.debit_account_id, t.credit_account_id, t.entry_id, "
        "e.description FROM transfers t JOIN journal_entries e ON e.id = t.entry_id "
        "WHERE t.debit_account_id = ANY($1::bigint[]) OR t.credit_account_id = ANY($1::bigint[]) ORDER BY t.n "
        "LIMIT 10000",
        list(accounts),
    )
    out = []
    for r in rows:
        acct = r["credit_account_id"] if r["credit_account_id"] in accounts else r["debit_account_id"]
        sign = 1 if r["credit_account_id"] in accounts else -1
        if r["kind"] in ("void_pending", "expire_pending"):
            sign = -sign  # the released hold goes back to where it was taken from
        out.append(
            HistoryLine(
                at=r["created_at"],
                sponsor_id=accounts[acct],
                kind=r["kind"],
                code=r["code"],
                amount=sign * r["amount"],
                entry_id=r["entry_id"],
                description=r["description"],
            )
        )
    return out


# --- reservations and redemptions ----------------------------------------------------


class Reservation(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    voucher_code: str
    supplier_id: int
    amount: int
    currency: str
    description: str
    state: str
    expires_at: datetime
    created_at: datetime
    redemption_id: uuid.UUID | None = None


class Redemption(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    voucher_code: str
    supplier_id: int
    amount: int
    refunded: int
    currency: str
    reference: str
    description: str
    created_at: datetime
    reservation_id: uuid.UUID | None = None
    status: str = "open"  # open | in_payout | paid | partly_paid | refunded (in full, before payment)
    payments: list[int] = msgspec.field(default_factory=list)


def _ledger_failure(results: list[EntryResult]) -> str:
    failed = next((r for r in results if not r.accepted and r.result != "linked_event_failed"), None)
    return failed.result if failed else "linked_event_failed"


_FAILURES = {
    "exceeds_credits": (InsufficientFunds, "voucher_balance_insufficient", "the voucher's balance is short"),
    "pending_transfer_expired": (Conflict, "reservation_expired", "the reservation has expired"),
    "pending_transfer_already_posted": (Conflict, "reservation_already_redeemed", "already redeemed"),
    "pending_transfer_already_voided": (Conflict, "reservation_cancelled", "the reservation was cancelled"),
}


def _raise_for(results: list[EntryResult]) -> None:
    code = _ledger_failure(results)
    cls, rule, detail = _FAILURES.get(code, (Conflict, code, f"refused by the ledger: {code}"))
    raise cls(detail, code=rule)


async def _supplier_usable_voucher(conn: Any, actor: Actor, code: str) -> tuple[Any, list[Any]]:
    # FOR KEY SHARE (what the reservation's or redemption's foreign key takes anyway, only
    # earlier): a withdrawal or expiry closing the voucher at the same time either waits
    # for this spend, or this read waits for it and sees the voucher closed.
    row = await conn.fetchrow("SELECT * FROM vouchers WHERE code = $1 FOR KEY SHARE", code)
    if row is None:
        raise NotFound("no such voucher", code="voucher_not_found")
    today = local_today()
    if row["state"] == "withdrawn":
        raise Conflict("the voucher was withdrawn", code="voucher_withdrawn")
    if row["state"] == "expired" or row["valid_until"] < today:
        raise Conflict("the voucher has expired", code="voucher_expired")
    if row["valid_from"] > today:
        raise Conflict("the voucher is not valid yet", code="voucher_not_yet_valid")
    shares = await _shares(conn, row["id"])
    category = await conn.fetchval("SELECT category FROM suppliers WHERE organisation_id = $1", actor.organisation_id)
    for s in shares:
        if s["categories"] and category not in s["categories"]:
            raise Forbidden(f"this voucher cannot be spent at a {category}", code="supplier_category_not_allowed")
    return row, shares


async def _payable_accounts(conn: Any, supplier_id: int, shares: list[Any]) -> dict[int, int]:
    name = await conn.fetchval("SELECT name FROM organisations WHERE id = $1", supplier_id)
    out = {}
    for ledger_id in {s["ledger_id"] for s in shares}:
        ids = await chart.ensure(conn, ledger_id, [(chart.payable(supplier_id), f"Payable to {name}")])
        out[ledger_id] = ids[chart.payable(supplier_id)]
    return out


def _check_amount(amount: int) -> None:
    if amount <= 0:
        raise ValidationFailed(
            "amount must be positive",
            code="amount_must_be_positive",
            errors=[{"field": "amount", "message": "must be > 0 cents"}],
        )


def _split_over_shares(amount: int, shares: list[Any]) -> list[int]:
    caps = [s["credits_posted"] - s["debits_posted"] - s["debits_pending"] for s in shares]
    parts = split_capped(amount, [s["bp"] for s in shares], caps)
    if parts is None:
        raise InsufficientFunds(
            "the voucher's balance is short", code="voucher_balance_insufficient", available=max(sum(caps), 0)
        )
    return parts


async def _book(conn: Any, entries: list[EntrySpec]) -> list[EntryResult]:
    """Book ``entries`` all or nothing; a refusal raises its rule's error."""
    results = await apply_batch(conn, entries)
    if not all(r.accepted for r in results):
        _raise_for(results)
    return results


async def _book_last(conn: Any, entries: list[EntrySpec]) -> None:
    """``_book`` as the flow's last step (nothing but the answer and the commit
    follows), queued in this process behind other bookings on the same ledgers
    (``settlement.gate``)."""
    await gate.enter(e.ledger_id for e in entries)
    await _book(conn, entries)


async def reserve(conn: Any, actor: Actor, voucher_code: str, amount: int, description: str) -> Reservation:
    _check_amount(amount)
    row, shares = await _supplier_usable_voucher(conn, actor, voucher_code)
    parts = _split_over_shares(amount, shares)
    payables = await _payable_accounts(conn, actor.organisation_id, shares)
    timeout_s = min(s["reservation_expiry_days"] for s in shares) * 86_400
    # A reservation ends with its voucher, at the end of its last valid (Amsterdam) day:
    # otherwise whether it could still be redeemed would depend on when the sweep ran.
    left = int((end_of_day(row["valid_until"]) - datetime.now(UTC)).total_seconds())
    timeout_s = max(MIN_HOLD_TIMEOUT_S, min(timeout_s, left))
    rid = new_entry_id()
    entries = []
    part_rows = []
    for s, part in zip(shares, parts, strict=True):
        if part == 0:
            continue
        eid = new_entry_id()
        entries.append(
            EntrySpec(
                id=eid,
                ledger_id=s["ledger_id"],
                description=f"Reservation on voucher {row['code']}",
                value_date=local_today(),
                refs={"reservation": str(rid), "voucher": str(row["id"])},
                link_group=1,
                transfers=(
                    TransferSpec(
                        kind="pending",
                        debit_account_id=s["account_id"],
                        credit_account_id=payables[s["ledger_id"]],
                        amount=part,
                        timeout_s=timeout_s,
                        code="reservation",
                    ),
                ),
            )
        )
        part_rows.append((rid, s["position"], transfer_id(eid, 0), part))
    # Our own rows first and the ledger last: from its first lock on, the
    # sponsor's ledger (and the supplier's payable account) wait for this
    # transaction to commit, so nothing else may happen after it. A refusal
    # rolls all of it back. The reservation's clock is the transaction's start,
    # so it never shows a later expiry than the ledger's hold.
    stamp = await conn.fetchrow(
        "INSERT INTO reservations (id, voucher_id, supplier_id, amount, description, expires_at, created_at) "
        "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), now()) RETURNING created_at, expires_at",
        rid,
        row["id"],
        actor.organisation_id,
        amount,
        description,
        timeout_s,
    )
    created, expires_at = stamp["created_at"], stamp["expires_at"]
    await conn.executemany("INSERT INTO reservation_parts VALUES ($1, $2, $3, $4)", part_rows)
    await audit.record_each(
        conn,
        actor,
        "reservation.held",
        "reservation",
        rid,
        sponsor_ids=[s["sponsor_id"] for s, part in zip(shares, parts, strict=True) if part > 0],
        after={"voucher": str(row["id"]), "amount": amount},
    )
    await _book_last(conn, entries)
    res = Reservation(
        id=rid,
        voucher_code=row["code"],
        supplier_id=actor.organisation_id,
        amount=amount,
        currency="EUR",
        description=description,
        state="held",
        expires_at=expires_at,
        created_at=created,
    )
    return res


async def _reservation(conn: Any, actor: Actor, rid: uuid.UUID, *, lock: bool = False) -> Any:
    row = await conn.fetchrow(
        "SELECT r.*, v.code AS voucher_code, v.sponsor_id FROM reservations r JOIN vouchers v ON v.id = r.voucher_id "
        "WHERE r.id = $1" + (" FOR UPDATE OF r" if lock else ""),
        rid,
    )
    if row is None:
        raise NotFound("no such reservation", code="reservation_not_found")
    if actor.role == "supplier" and row["supplier_id"] == actor.organisation_id:
        return row
    if actor.role in ("sponsor_finance", "sponsor_approver", "auditor"):
        shares = await conn.fetch("SELECT sponsor_id FROM voucher_shares WHERE voucher_id = $1", row["voucher_id"])
        if any(s["sponsor_id"] == actor.organisation_id for s in shares):
            return row
    raise NotFound("no such reservation", code="reservation_not_found")


def _reservation_out(row: Any) -> Reservation:
    return Reservation(
        id=row["id"],
        voucher_code=row["voucher_code"],
        supplier_id=row["supplier_id"],
        amount=row["amount"],
        currency="EUR",
        description=row["description"],
        state=row["state"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        redemption_id=row["redemption_id"],
    )


async def get_reservation(conn: Any, actor: Actor, rid: uuid.UUID) -> Reservation:
    return _reservation_out(await _reservation(conn, actor, rid))


def _state_error(state: str) -> Conflict:
    return {
        "redeemed": Conflict("the reservation was already redeemed", code="reservation_already_redeemed"),
        "cancelled": Conflict("the reservation was cancelled", code="reservation_cancelled"),
        "expired": Conflict("the reservation has expired", code="reservation_expired"),
    }[state]


async def redeem_reservation(
    conn: Any, actor: Actor, rid: uuid.UUID, amount: int | None, reference: str, description: str | None
) -> Redemption:
    row = await _reservation(conn, actor, rid, lock=True)
    if actor.role != "supplier":
        raise Forbidden("only the supplier redeems its reservation", code="role_not_allowed")
    if row["state"] != "held":
        raise _state_error(row["state"])
    amount = row["amount"] if amount is None else amount
    _check_amount(amount)
    if amount > row["amount"]:
        raise Conflict(f"at most the reserved {row['amount']} cents can be redeemed", code="amount_exceeds_reservation")
    parts = await conn.fetch(
        "SELECT p.position, p.pending_transfer_id, p.amount, s.ledger_id, s.sponsor_id, s.fund_id, "
        "f.cancellation_window_days FROM reservation_parts p JOIN voucher_shares s ON s.voucher_id = $2 "
        "AND s.position = p.position JOIN funds f ON f.id = s.fund_id WHERE p.reservation_id = $1 ORDER BY p.position",
        rid,
        row["voucher_id"],
    )
    posts = split_proportional(amount, [p["amount"] for p in parts])
    redemption_id = new_entry_id()
    entries = [
        EntrySpec(
            id=new_entry_id(),
            ledger_id=p["ledger_id"],
            description=f"Redemption on voucher {row['voucher_code']}",
            value_date=local_today(),
            link_group=1,
            refs={"redemption": str(redemption_id), "reservation": str(rid), "reference": reference},
            transfers=(
                TransferSpec(kind="post_pending", pending_id=p["pending_transfer_id"], amount=amt, code="redemption")
                if amt > 0
                else TransferSpec(kind="void_pending", pending_id=p["pending_transfer_id"], code="redemption"),
            ),
        )
        for p, amt in zip(parts, posts, strict=True)
    ]
    # our own rows first, the ledger last (see reserve)
    created = await _record_redemption(
        conn,
        actor,
        redemption_id,
        row["voucher_id"],
        row["voucher_code"],
        row["sponsor_id"],
        amount,
        reference,
        description or row["description"],
        rid,
        [
            (p["sponsor_id"], p["fund_id"], p["cancellation_window_days"], amt)
            for p, amt in zip(parts, posts, strict=True)
        ],
    )
    await conn.execute(
        "UPDATE reservations SET state = 'redeemed', closed_at = $2, redemption_id = $3 WHERE id = $1",
        rid,
        created,
        redemption_id,
    )
    await _book_last(conn, entries)
    return _new_redemption(
        actor, redemption_id, row["voucher_code"], amount, reference, description or row["description"], created, rid
    )


def _new_redemption(
    actor: Actor,
    redemption_id: uuid.UUID,
    voucher_code: str,
    amount: int,
    reference: str,
    description: str,
    created: datetime,
    reservation_id: uuid.UUID | None,
) -> Redemption:
    """What get_redemption answers for a redemption just written: nothing refunded, nothing paid yet."""
    return _redemption_out(
        {
            "id": redemption_id,
            "voucher_code": voucher_code,
            "supplier_id": actor.organisation_id,
            "amount": amount,
            "refunded": 0,
            "reference": reference,
            "description": description,
            "created_at": created,
            "reservation_id": reservation_id,
            "states": [],
            "payments": [],
        }
    )


async def _record_redemption(
    conn: Any,
    actor: Actor,
    redemption_id: uuid.UUID,
    voucher_id: uuid.UUID,
    voucher_code: str,
    sponsor_id: int,
    amount: int,
    reference: str,
    description: str,
    reservation_id: uuid.UUID | None,
    lines: list[tuple[int, int, int, int]],
) -> datetime:
    """The redemption, its payable lines and its audit line; returns its time (the transaction's start)."""
    now: datetime = await conn.fetchval(
        "INSERT INTO redemptions (id, voucher_id, supplier_id, reservation_id, amount, reference, description, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now()) RETURNING created_at",
        redemption_id,
        voucher_id,
        actor.organisation_id,
        reservation_id,
        amount,
        reference,
        description,
    )
    await conn.executemany(
        "INSERT INTO payable_lines (sponsor_id, supplier_id, fund_id, redemption_id, amount, payable_from, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            (sp, actor.organisation_id, fund_id, redemption_id, amt, now + timedelta(days=window), now)
            for sp, fund_id, window, amt in lines
            if amt > 0
        ],
    )
    await audit.record_each(
        conn,
        actor,
        "voucher.redeemed",
        "redemption",
        redemption_id,
        sponsor_ids=[sp for sp, _, _, amt in lines if amt > 0] or [sponsor_id],
        after={"voucher": voucher_code, "amount": amount, "reference": reference},
    )
    return now


async def cancel_reservation(conn: Any, actor: Actor, rid: uuid.UUID) -> Reservation:
    row = await _reservation(conn, actor, rid, lock=True)
    if actor.role not in ("supplier", "sponsor_finance"):
        raise Forbidden("the supplier or the sponsor's finance team cancels a reservation", code="role_not_allowed")
    if row["state"] != "held":
        raise _state_error(row["state"])
    parts = await conn.fetch(
        "SELECT p.pending_transfer_id, s.ledger_id, s.sponsor_id FROM reservation_parts p JOIN voucher_shares s "
        "ON s.voucher_id = $2 AND s.position = p.position WHERE p.reservation_id = $1",
        rid,
        row["voucher_id"],
    )
    await _book(
        conn,
        [
            EntrySpec(
                id=new_entry_id(),
                ledger_id=p["ledger_id"],
                description="Reservation cancelled",
                value_date=local_today(),
                refs={"reservation": str(rid)},
                link_group=1,
                transfers=(
                    TransferSpec(
                        kind="void_pending", pending_id=p["pending_transfer_id"], code="reservation_cancelled"
                    ),
                ),
            )
            for p in parts
        ],
    )
    await conn.execute("UPDATE reservations SET state = 'cancelled', closed_at = now() WHERE id = $1", rid)
    await audit.record_each(
        conn, actor, "reservation.cancelled", "reservation", rid, sponsor_ids=[p["sponsor_id"] for p in parts]
    )
    return _reservation_out(await _reservation(conn, actor, rid))


async def redeem_direct(
    conn: Any, actor: Actor, voucher_code: str, amount: int, reference: str, description: str
) -> Redemption:
    _check_amount(amount)
    row, shares = await _supplier_usable_voucher(conn, actor, voucher_code)
    parts = _split_over_shares(amount, shares)
    payables = await _payable_accounts(conn, actor.organisation_id, shares)
    redemption_id = new_entry_id()
    entries = [
        EntrySpec(
            id=new_entry_id(),
            ledger_id=s["ledger_id"],
            description=f"Redemption on voucher {row['code']}",
            value_date=local_today(),
            link_group=1,
            refs={"redemption": str(redemption_id), "reference": reference},
            transfers=(
                TransferSpec(
                    debit_account_id=s["account_id"],
                    credit_account_id=payables[s["ledger_id"]],
                    amount=part,
                    code="redemption",
                ),
            ),
        )
        for s, part in zip(shares, parts, strict=True)
        if part > 0
    ]
    # our own rows first, the ledger last (see reserve)
    created = await _record_redemption(
        conn,
        actor,
        redemption_id,
        row["id"],
        row["code"],
        row["sponsor_id"],
        amount,
        reference,
        description,
        None,
        [
            (s["sponsor_id"], s["fund_id"], s["cancellation_window_days"], part)
            for s, part in zip(shares, parts, strict=True)
        ],
    )
    await _book_last(conn, entries)
    return _new_redemption(actor, redemption_id, row["code"], amount, reference, description, created, None)


class Refund(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    redemption_id: uuid.UUID
    amount: int
    currency: str
    reason: str
    created_at: datetime


async def refund(conn: Any, actor: Actor, redemption_id: uuid.UUID, amount: int, reason: str) -> Refund:
    _check_amount(amount)
    # The voucher row too (shared): a withdrawal or expiry locks it to close the voucher, so
    # either it sees this refund's money and returns it to the fund, or this refund sees
    # the voucher closed and sends the money straight back to the fund itself.
    red = await conn.fetchrow(
        "SELECT r.*, v.code AS voucher_code, v.state AS voucher_state, v.sponsor_id FROM redemptions r "
        "JOIN vouchers v ON v.id = r.voucher_id WHERE r.id = $1 FOR UPDATE OF r FOR SHARE OF v",
        redemption_id,
    )
    if red is None or actor.role != "supplier" or red["supplier_id"] != actor.organisation_id:
        raise NotFound("no such redemption", code="redemption_not_found")
    if amount > red["amount"] - red["refunded"]:
        raise Conflict(
            f"at most {red['amount'] - red['refunded']} cents can still be refunded",
            code="refund_exceeds_redemption",
        )
    # split over the redemption's shares, in proportion to what each share paid
    lines = await conn.fetch(
        "SELECT p.sponsor_id, p.fund_id, sum(p.amount)::bigint AS amount, s.ledger_id, s.account_id, "
        "max(p.payable_from) FILTER (WHERE p.amount > 0) AS due, "
        "f.account_id AS fund_account FROM payable_lines p JOIN voucher_shares s ON s.voucher_id = $2 "
        "AND s.fund_id = p.fund_id JOIN funds f ON f.id = p.fund_id WHERE p.redemption_id = $1 "
        "GROUP BY p.sponsor_id, p.fund_id, s.ledger_id, s.account_id, f.account_id, s.position ORDER BY s.position",
        redemption_id,
        red["voucher_id"],
    )
    parts = split_proportional(amount, [max(ln["amount"], 0) for ln in lines])
    payables = await _payable_accounts(conn, actor.organisation_id, list(lines))
    refund_id = new_entry_id()
    closed = red["voucher_state"] != "active"
    entries = []
    for ln, part in zip(lines, parts, strict=True):
        if part <= 0:
            continue
        transfers = [
            TransferSpec(
                debit_account_id=payables[ln["ledger_id"]],
                credit_account_id=ln["account_id"],
                amount=part,
                code="refund",
            )
        ]
        if closed:  # the voucher no longer spends: the money goes straight back to the fund
            transfers.append(
                TransferSpec(
                    debit_account_id=ln["account_id"],
                    credit_account_id=ln["fund_account"],
                    amount=part,
                    code="voucher_expired",
                )
            )
        entries.append(
            EntrySpec(
                id=new_entry_id(),
                ledger_id=ln["ledger_id"],
                description=f"Refund on voucher {red['voucher_code']}",
                value_date=local_today(),
                link_group=1,
                refs={"refund": str(refund_id), "redemption": str(redemption_id)},
                transfers=tuple(transfers),
            )
        )
    results = await _book(conn, entries)
    now = results[0].created_at
    assert now is not None
    await conn.execute(
        "INSERT INTO refunds (id, redemption_id, amount, reason, created_at) VALUES ($1,$2,$3,$4,$5)",
        refund_id,
        redemption_id,
        amount,
        reason,
        now,
    )
    await conn.execute("UPDATE redemptions SET refunded = refunded + $2 WHERE id = $1", redemption_id, amount)
    # A refund's line falls due with the redemption it reverses: netted against
    # it when that is paid after its cancellation window, at once when it was
    # paid already (the supplier then owes it, netted in its next payment).
    await conn.executemany(
        "INSERT INTO payable_lines (sponsor_id, supplier_id, fund_id, redemption_id, refund_id, amount, payable_from, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                ln["sponsor_id"],
                actor.organisation_id,
                ln["fund_id"],
                redemption_id,
                refund_id,
                -part,
                max(now, ln["due"] or now),
                now,
            )
            for ln, part in zip(lines, parts, strict=True)
            if part > 0
        ],
    )
    await audit.record_each(
        conn,
        actor,
        "redemption.refunded",
        "redemption",
        redemption_id,
        sponsor_ids=[ln["sponsor_id"] for ln, part in zip(lines, parts, strict=True) if part > 0],
        after={"refund": str(refund_id), "amount": amount, "reason": reason},
    )
    return Refund(
        id=refund_id,
        redemption_id=redemption_id,
        amount=amount,
        currency="EUR",
        reason=reason,
        created_at=now,
    )


_REDEMPTION_SELECT = """
SELECT r.id, v.code AS voucher_code, r.supplier_id, r.amount, r.refunded, r.reference, r.description, r.created_at,
       r.reservation_id,
       coalesce(array_agg(DISTINCT p.state) FILTER (WHERE p.amount > 0), '{}') AS states,
       coalesce((SELECT array_agg(DISTINCT pl.payment_id) FROM payment_lines pl JOIN payable_lines x
                 ON x.id = pl.line_id WHERE x.redemption_id = r.id), '{}') AS payments
FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id
LEFT JOIN payable_lines p ON p.redemption_id = r.id
"""


def _status(states: list[str], *, refunded_in_full: bool = False) -> str:
    s = set(states)
    if not s or s <= {"open", "rejected", "returned"}:
        # refunded before any of it was paid: nothing is owed, and nothing will be
        return "refunded" if refunded_in_full else "open"
    if s == {"paid"}:
        return "paid"
    if s == {"in_payout"}:
        return "in_payout"
    return "partly_paid" if "paid" in s else "in_payout"


def _redemption_out(r: Any) -> Redemption:
    return Redemption(
        id=r["id"],
        voucher_code=r["voucher_code"],
        supplier_id=r["supplier_id"],
        amount=r["amount"],
        refunded=r["refunded"],
        currency="EUR",
        reference=r["reference"],
        description=r["description"],
        created_at=r["created_at"],
        reservation_id=r["reservation_id"],
        status=_status(list(r["states"]), refunded_in_full=r["refunded"] == r["amount"]),
        payments=sorted(r["payments"]),
    )


async def get_redemption(conn: Any, actor: Actor, redemption_id: uuid.UUID) -> Redemption:
    r = await conn.fetchrow(_REDEMPTION_SELECT + " WHERE r.id = $1 GROUP BY r.id, v.code", redemption_id)
    if r is None:
        raise NotFound("no such redemption", code="redemption_not_found")
    if actor.role == "supplier" and r["supplier_id"] == actor.organisation_id:
        return _redemption_out(r)
    if actor.role in ("sponsor_finance", "sponsor_approver", "auditor"):
        sponsors = await conn.fetch(
            "SELECT DISTINCT sponsor_id FROM payable_lines WHERE redemption_id = $1", redemption_id
        )
        if any(s["sponsor_id"] == actor.organisation_id for s in sponsors):
            return _redemption_out(r)
    raise NotFound("no such redemption", code="redemption_not_found")


async def list_redemptions(
    conn: Any,
    actor: Actor,
    *,
    since: datetime | None,
    until: datetime | None,
    cursor: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Redemption]:
    """A supplier's own redemptions, or those a sponsor pays for; newest first."""
    limit = max(1, min(limit, MAX_PAGE))
    since = since or datetime(1970, 1, 1, tzinfo=UTC)
    until = until or datetime(9999, 1, 1, tzinfo=UTC)
    c_at, c_id = cursor or (datetime(9999, 1, 1, tzinfo=UTC), uuid.UUID(int=(1 << 128) - 1))
    if actor.role == "supplier":
        where = "r.supplier_id = $1"
    elif actor.role in ("sponsor_finance", "sponsor_approver", "auditor"):
        where = "EXISTS (SELECT 1 FROM payable_lines x WHERE x.redemption_id = r.id AND x.sponsor_id = $1)"
    else:
        raise Forbidden("role may not list redemptions", code="role_not_allowed")
    rows = await conn.fetch(
        _REDEMPTION_SELECT + f" WHERE {where} AND r.created_at >= $2 AND r.created_at < $3 "
        "AND (r.created_at, r.id) < ($4, $5) GROUP BY r.id, v.code ORDER BY r.created_at DESC, r.id DESC LIMIT $6",
        actor.organisation_id,
        since,
        until,
        c_at,
        c_id,
        limit,
    )
    return [_redemption_out(r) for r in rows]


# --- closing vouchers: withdrawal and expiry ----------------------------------------

_CLOSE_ATTEMPTS = 3


async def _close_voucher(conn: Any, actor: Actor | str, row: Any, state: str) -> None:
    """Close the open reservations, return the unspent money to the funds, close it.

    A reservation whose hold has lapsed but that the expiry job has not reached
    yet is expired here as that job would (the ledger refuses to void a lapsed
    hold: ``pending_transfer_expired``); the others are cancelled (voided)."""
    code = "voucher_withdrawn" if state == "withdrawn" else "voucher_expired"
    expired: list[uuid.UUID] = []
    for attempt in range(_CLOSE_ATTEMPTS):
        # A hold may lapse between this read and the ledger's check (its clock
        # is read after the lock wait): the refused batch books nothing, so read again.
        held = await conn.fetch(
            "SELECT r.id, p.pending_transfer_id, s.ledger_id, h.expires_at <= clock_timestamp() AS lapsed "
            "FROM reservations r JOIN reservation_parts p ON p.reservation_id = r.id "
            "JOIN voucher_shares s ON s.voucher_id = r.voucher_id AND s.position = p.position "
            "JOIN holds h ON h.transfer_id = p.pending_transfer_id "
            "WHERE r.voucher_id = $1 AND r.state = 'held' AND h.state = 'pending'",
            row["id"],
        )
        today = local_today()
        lapsed_holds = [h for h in held if h["lapsed"]]
        lapsed = [expiry_entry(h["pending_transfer_id"], h["ledger_id"], today) for h in lapsed_holds]
        voids = [
            EntrySpec(
                id=new_entry_id(),
                ledger_id=h["ledger_id"],
                description=f"Reservation cancelled: voucher {state}",
                value_date=today,
                refs={"reservation": str(h["id"])},
                link_group=1,
                transfers=(
                    TransferSpec(
                        kind="void_pending", pending_id=h["pending_transfer_id"], code="reservation_cancelled"
                    ),
                ),
            )
            for h in held
            if not h["lapsed"]
        ]
        if not lapsed and not voids:
            break
        results = await apply_batch(conn, [*lapsed, *voids])
        expired += [
            h["pending_transfer_id"] for h, r in zip(lapsed_holds, results[: len(lapsed)], strict=True) if r.accepted
        ]
        if all(r.accepted for r in results):
            break
        late = any("pending_transfer_expired" in r.transfer_results for r in results)
        if not late or attempt == _CLOSE_ATTEMPTS - 1:
            _raise_for(results)
    await sync_expired_reservations(conn, expired, actor)
    await conn.execute(
        "UPDATE reservations SET state = 'cancelled', closed_at = now() WHERE voucher_id = $1 AND state = 'held'",
        row["id"],
    )
    shares = await _shares(conn, row["id"])
    back = [
        EntrySpec(
            id=new_entry_id(),
            ledger_id=s["ledger_id"],
            description=f"Voucher {row['code']} {state}",
            value_date=local_today(),
            refs={"voucher": str(row["id"])},
            link_group=2,
            transfers=(
                TransferSpec(
                    debit_account_id=s["account_id"],
                    credit_account_id=s["fund_account"],
                    amount=s["credits_posted"] - s["debits_posted"],
                    code=code,
                ),
            ),
        )
        for s in shares
        if s["credits_posted"] - s["debits_posted"] > 0
    ]
    if back:
        await _book(conn, back)
    await conn.execute("UPDATE vouchers SET state = $2, closed_at = now() WHERE id = $1", row["id"], state)
    await audit.record_each(
        conn,
        actor,
        f"voucher.{state}",
        "voucher",
        row["id"],
        sponsor_ids=[s["sponsor_id"] for s in shares],
        after={"returned": sum(s["credits_posted"] - s["debits_posted"] for s in shares)},
    )


async def withdraw(conn: Any, actor: Actor, voucher_id: uuid.UUID) -> Voucher:
    row = await conn.fetchrow("SELECT * FROM vouchers WHERE id = $1 FOR UPDATE", voucher_id)
    shares = await _shares(conn, voucher_id) if row else []
    allowed = row is not None and (
        (actor.role == "sponsor_finance" and any(s["sponsor_id"] == actor.organisation_id for s in shares))
        or (actor.role == "validator" and row["issued_by_org"] == actor.organisation_id)
    )
    if row is None or not allowed:
        raise NotFound("no such voucher", code="voucher_not_found")
    if actor.role == "validator":
        # a desk withdraws what it issued while it may still issue against the voucher's funds
        authorised = await conn.fetchval(
            "SELECT count(*) FROM fund_validators WHERE organisation_id = $1 AND fund_id = ANY($2::bigint[])",
            actor.organisation_id,
            [s["fund_id"] for s in shares],
        )
        if authorised < len(shares):
            raise Forbidden(
                "no longer authorised for this voucher's fund: its sponsor withdraws it",
                code="not_authorised_for_fund",
            )
    if row["state"] != "active":
        raise Conflict(f"the voucher is already {row['state']}", code=f"voucher_{row['state']}")
    await _close_voucher(conn, actor, row, "withdrawn")
    return await get_voucher(conn, actor, voucher_id=voucher_id)


EXPIRE_BATCH = 500


async def expire_vouchers(conn: Any, today: date | None = None, limit: int = EXPIRE_BATCH) -> int:
    """Close vouchers past their validity (the year-end sweep); returns how many.
    Safe with several processes: rows are claimed with SKIP LOCKED."""
    today = today or local_today()
    rows = await conn.fetch(
        "SELECT * FROM vouchers WHERE state = 'active' AND valid_until < $1 ORDER BY valid_until "
        "LIMIT $2 FOR UPDATE SKIP LOCKED",
        today,
        limit,
    )
    # Closing books on each voucher's ledgers and keeps their locks until commit: taken in
    # voucher order, two sweeps (or a sweep and a batch over several ledgers) would deadlock.
    # Lock them all first, in id order, as the engine locks a batch's ledgers.
    await conn.execute(
        "SELECT 1 FROM ledgers WHERE id IN (SELECT ledger_id FROM voucher_shares WHERE voucher_id = ANY($1::uuid[])) "
        "ORDER BY id FOR NO KEY UPDATE",
        [r["id"] for r in rows],
    )
    for row in rows:
        await _close_voucher(conn, "system:voucher-expiry", row, "expired")
    return len(rows)


async def sync_expired_reservations(
    conn: Any, hold_ids: Sequence[uuid.UUID], actor: Actor | str = "system:hold-expiry"
) -> int:
    """Holds the ledger expired: their reservations become 'expired', each with its audit line
    in the trail of every sponsor whose share it held (the money went back to the voucher)."""
    if not hold_ids:
        return 0
    rows = await conn.fetch(
        "WITH x AS (UPDATE reservations r SET state = 'expired', closed_at = now() WHERE r.state = 'held' AND r.id IN "
        "(SELECT reservation_id FROM reservation_parts WHERE pending_transfer_id = ANY($1::uuid[])) "
        "RETURNING r.id, r.voucher_id, r.amount) "
        "SELECT x.id, x.voucher_id, x.amount, array_agg(DISTINCT s.sponsor_id) AS sponsors FROM x "
        "JOIN reservation_parts p ON p.reservation_id = x.id JOIN voucher_shares s ON s.voucher_id = x.voucher_id "
        "AND s.position = p.position GROUP BY x.id, x.voucher_id, x.amount ORDER BY x.id",
        list(hold_ids),
    )
    await audit.record_lines(
        conn,
        [
            line
            for r in rows
            for line in audit.lines_each(
                actor,
                "reservation.expired",
                "reservation",
                r["id"],
                sponsor_ids=r["sponsors"],
                after={"voucher": str(r["voucher_id"]), "amount": r["amount"]},
            )
        ],
    )
    return len(rows)
