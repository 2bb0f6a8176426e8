"""Sponsor set-up and reads: debtor bank accounts, funds, grants, returns, closing, fund overview.

    budget granted          funding:src -> fund:F
    budget returned         fund:F      -> funding:src   at most the fund's available balance
                                                         and the source's net grant to the fund
    fund closed             no more vouchers or grants; the unspent rest returned to the sources

Locks, always in this order: the fund's row, then the sponsor's ledger. Issuing
holds the fund's row shared (``settlement.vouchers.flows``), so a close and an
issue of the same fund take turns; returns and closes of one fund hold it
exclusively and take turns with each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Literal

import msgspec

from ledger.engine import apply_batch
from ledger.model import MAX_DESCRIPTION, EntrySpec, TransferSpec, new_entry_id
from settlement import audit, chart
from settlement.auth import Actor
from settlement.banking import check_holder_name, check_iban
from settlement.clock import local_today
from settlement.errors import Conflict, Forbidden, InsufficientFunds, NotFound, ValidationFailed
from settlement.references import fund_top_up_reference
from settlement.split import split_within_caps

MAX_LIST = 500
# Vouchers named in a refused close (the count and sums cover all of them).
MAX_OUTSTANDING_LISTED = 100
MAX_REASON = 500


class Sponsor(msgspec.Struct, frozen=True, kw_only=True):
    organisation_id: int
    ledger_id: int


async def sponsor_of(conn: Any, actor: Actor) -> Sponsor:
    """The sponsor whose books the actor works in; anything else is not theirs."""
    row = await conn.fetchrow(
        "SELECT organisation_id, ledger_id FROM sponsors WHERE organisation_id = $1", actor.organisation_id
    )
    if row is None:
        raise Forbidden("this organisation keeps no sponsor books", code="not_a_sponsor")
    return Sponsor(organisation_id=row["organisation_id"], ledger_id=row["ledger_id"])


async def sponsor_scope(conn: Any, actor: Actor | str, roles: Sequence[str]) -> int | None:
    """The sponsor the caller works for; None for the operator (CLI, jobs)."""
    if isinstance(actor, str):
        return None
    if actor.role not in roles:
        raise Forbidden(f"a {actor.role} token may not do this", code="role_not_allowed")
    sid: int | None = await conn.fetchval(
        "SELECT organisation_id FROM sponsors WHERE organisation_id = $1", actor.organisation_id
    )
    if sid is None:
        raise Forbidden("this organisation keeps no sponsor books", code="not_a_sponsor")
    return sid


class DebtorAccount(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    iban: str
    bic: str | None
    holder_name: str
    pain_version: str
    instant_supported: bool
    batch_booking: bool
    iban_only: bool
    bank_account_id: int
    in_transit_account_id: int


_DEBTOR_COLS = (
    "id, iban, bic, holder_name, pain_version, instant_supported, batch_booking, iban_only, bank_account_id, "
    "in_transit_account_id"
)


def _debtor(r: Any) -> DebtorAccount:
    return DebtorAccount(**{k: r[k] for k in _DEBTOR_COLS.split(", ")})


async def add_debtor_account(
    conn: Any,
    actor: Actor,
    iban: str,
    holder_name: str,
    bic: str | None,
    pain_version: Literal["pain.001.001.09", "pain.001.001.03"],
    instant_supported: bool,
    batch_booking: bool,
    iban_only: bool = False,
) -> DebtorAccount:
    sponsor = await sponsor_of(conn, actor)
    compact, bic_ = check_iban(iban, bic)
    check_holder_name(holder_name)
    ids = await chart.ensure(
        conn,
        sponsor.ledger_id,
        [(chart.bank(compact), f"Bank {compact}"), (chart.in_transit(compact), f"In transit {compact}")],
    )
    row = await conn.fetchrow(
        f"INSERT INTO debtor_accounts (sponsor_id, iban, bic, holder_name, pain_version, instant_supported, "
        f"batch_booking, bank_account_id, in_transit_account_id, iban_only) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) "
        f"ON CONFLICT (sponsor_id, iban) DO NOTHING RETURNING {_DEBTOR_COLS}",
        sponsor.organisation_id,
        compact,
        bic_,
        holder_name,
        pain_version,
        instant_supported,
        batch_booking,
        ids[chart.bank(compact)],
        ids[chart.in_transit(compact)],
        iban_only,
    )
    if row is None:
        raise Conflict("this bank account is already registered", code="debtor_account_exists")
    acct = _debtor(row)
    await audit.record(
        conn,
        actor,
        "debtor_account.added",
        "debtor_account",
        acct.id,
        sponsor_id=sponsor.organisation_id,
        after=acct,
    )
    return acct


async def list_debtor_accounts(conn: Any, actor: Actor) -> list[DebtorAccount]:
    sponsor = await sponsor_of(conn, actor)
    rows = await conn.fetch(
        f"SELECT {_DEBTOR_COLS} FROM debtor_accounts WHERE sponsor_id = $1 ORDER BY id LIMIT $2",
        sponsor.organisation_id,
        MAX_LIST,
    )
    return [_debtor(r) for r in rows]


class Fund(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    code: str
    name: str
    period_start: date
    period_end: date
    reservation_expiry_days: int
    cancellation_window_days: int
    cap_per_voucher: int
    categories: list[str]
    top_up_reference: str
    validators: list[int]
    state: Literal["open", "closed"] = "open"
    closed_at: datetime | None = None
    closed_by: str | None = None  # the token's name and id
    close_reason: str | None = None


_FUND_COLS = (
    "f.id, f.code, f.name, f.period_start, f.period_end, f.reservation_expiry_days, "
    "f.cancellation_window_days, f.cap_per_voucher, f.categories, f.top_up_reference, "
    "coalesce((SELECT array_agg(organisation_id ORDER BY organisation_id) FROM fund_validators v "
    "WHERE v.fund_id = f.id), '{}') AS validators, f.closed_at, f.closed_by, f.close_reason"
)


def _fund(r: Any) -> Fund:
    return Fund(
        id=r["id"],
        code=r["code"],
        name=r["name"],
        period_start=r["period_start"],
        period_end=r["period_end"],
        reservation_expiry_days=r["reservation_expiry_days"],
        cancellation_window_days=r["cancellation_window_days"],
        cap_per_voucher=r["cap_per_voucher"],
        categories=list(r["categories"]),
        top_up_reference=r["top_up_reference"],
        validators=list(r["validators"]),
        state="closed" if r["closed_at"] is not None else "open",
        closed_at=r["closed_at"],
        closed_by=r["closed_by"],
        close_reason=r["close_reason"],
    )


async def create_fund(
    conn: Any,
    actor: Actor,
    *,
    code: str,
    name: str,
    period_start: date,
    period_end: date,
    cap_per_voucher: int,
    reservation_expiry_days: int,
    cancellation_window_days: int,
    categories: list[str],
    validators: list[int],
) -> Fund:
    sponsor = await sponsor_of(conn, actor)
    if period_end < period_start:
        raise ValidationFailed(
            "period_end is before period_start",
            code="period_invalid",
            errors=[{"field": "period_end", "message": "before period_start"}],
        )
    exists = await conn.fetchval(
        "SELECT 1 FROM funds WHERE sponsor_id = $1 AND code = $2", sponsor.organisation_id, code
    )
    if exists:
        raise Conflict(f"a fund with code {code} exists", code="fund_code_exists")
    fund_id: int = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('funds', 'id'))")
    ids = await chart.ensure(conn, sponsor.ledger_id, [(chart.fund(fund_id), f"Fund {name}")])
    await conn.execute(
        "INSERT INTO funds (id, sponsor_id, code, name, period_start, period_end, reservation_expiry_days, "
        "cancellation_window_days, cap_per_voucher, categories, top_up_reference, account_id) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
        fund_id,
        sponsor.organisation_id,
        code,
        name,
        period_start,
        period_end,
        reservation_expiry_days,
        cancellation_window_days,
        cap_per_voucher,
        sorted(set(categories)),
        fund_top_up_reference(sponsor.organisation_id, code),
        ids[chart.fund(fund_id)],
    )
    for v in validators:
        await _add_validator(conn, fund_id, v)
    fund = await get_fund(conn, actor, fund_id)
    await audit.record(conn, actor, "fund.created", "fund", fund_id, sponsor_id=sponsor.organisation_id, after=fund)
    return fund


async def _add_validator(conn: Any, fund_id: int, org_id: int) -> None:
    kinds = await conn.fetchval("SELECT kinds FROM organisations WHERE id = $1", org_id)
    if kinds is None or "validator" not in kinds:
        raise ValidationFailed(
            f"organisation {org_id} is not a validator",
            code="not_a_validator",
            errors=[{"field": "validators", "message": f"{org_id} is not a validator"}],
        )
    await conn.execute("INSERT INTO fund_validators VALUES ($1, $2) ON CONFLICT DO NOTHING", fund_id, org_id)


async def authorise_validator(conn: Any, actor: Actor, fund_id: int, org_id: int) -> Fund:
    fund = await get_fund(conn, actor, fund_id)
    await _add_validator(conn, fund_id, org_id)
    await audit.record(
        conn,
        actor,
        "fund.validator_authorised",
        "fund",
        fund_id,
        sponsor_id=actor.organisation_id,
        after={"validator": org_id},
    )
    del fund
    return await get_fund(conn, actor, fund_id)


async def deauthorise_validator(conn: Any, actor: Actor, fund_id: int, org_id: int) -> Fund:
    """The validator issues no more vouchers of the fund; those it issued stay valid."""
    await get_fund(conn, actor, fund_id)
    gone = await conn.fetchval(
        "DELETE FROM fund_validators WHERE fund_id = $1 AND organisation_id = $2 RETURNING true", fund_id, org_id
    )
    if not gone:
        raise Conflict(f"organisation {org_id} is not a validator of this fund", code="validator_not_authorised")
    await audit.record(
        conn,
        actor,
        "fund.validator_deauthorised",
        "fund",
        fund_id,
        sponsor_id=actor.organisation_id,
        before={"validator": org_id},
    )
    return await get_fund(conn, actor, fund_id)


async def get_fund(conn: Any, actor: Actor, fund_id: int) -> Fund:
    sponsor = await sponsor_of(conn, actor)
    row = await conn.fetchrow(
        f"SELECT {_FUND_COLS} FROM funds f WHERE f.id = $1 AND f.sponsor_id = $2",
        fund_id,
        sponsor.organisation_id,
    )
    if row is None:
        raise NotFound("no such fund", code="fund_not_found")
    return _fund(row)


async def list_funds(conn: Any, actor: Actor) -> list[Fund]:
    sponsor = await sponsor_of(conn, actor)
    rows = await conn.fetch(
        f"SELECT {_FUND_COLS} FROM funds f WHERE f.sponsor_id = $1 ORDER BY f.id LIMIT $2",
        sponsor.organisation_id,
        MAX_LIST,
    )
    return [_fund(r) for r in rows]


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    fund_id: int
    source: str
    amount: int
    currency: str = "EUR"


async def grant(
    conn: Any,
    actor: Actor,
    fund_id: int,
    source: str,
    source_name: str | None,
    amount: int,
    entry_id: uuid.UUID,
) -> Grant:
    """Budget granted to a fund: funding:src -> fund:F. A closed fund takes no grant."""
    sponsor = await sponsor_of(conn, actor)
    fund = await get_fund(conn, actor, fund_id)
    # shared: grants go side by side, a close waits for them (and they for it)
    row = await _lock_fund(conn, sponsor, fund.id, exclusive=False)
    if row["closed_at"] is not None:
        raise Conflict("the fund is closed: it takes no more budget", code="fund_closed")
    if amount <= 0:
        raise ValidationFailed(
            "amount must be positive",
            code="amount_must_be_positive",
            errors=[{"field": "amount", "message": "must be > 0 cents"}],
        )
    src = await conn.fetchrow(
        "SELECT account_id FROM funding_sources WHERE sponsor_id = $1 AND code = $2",
        sponsor.organisation_id,
        source,
    )
    if src is None:
        if not source_name:
            raise ValidationFailed(
                f"unknown funding source {source}; give source_name to create it",
                code="funding_source_unknown",
                errors=[{"field": "source", "message": "unknown"}],
            )
        ids = await chart.ensure(conn, sponsor.ledger_id, [(chart.funding(source), source_name)])
        await conn.execute(
            "INSERT INTO funding_sources VALUES ($1, $2, $3, $4)",
            sponsor.organisation_id,
            source,
            source_name,
            ids[chart.funding(source)],
        )
        src_account = ids[chart.funding(source)]
    else:
        src_account = src["account_id"]
    fund_account = row["account_id"]
    [res] = await apply_batch(
        conn,
        [
            EntrySpec(
                id=entry_id,
                ledger_id=sponsor.ledger_id,
                description=f"Budget granted to fund {fund.code}",
                value_date=local_today(),
                refs={"fund": str(fund.id), "source": source},
                transfers=(
                    TransferSpec(
                        debit_account_id=src_account,
                        credit_account_id=fund_account,
                        amount=amount,
                        code="budget_granted",
                    ),
                ),
            )
        ],
    )
    if not res.accepted:
        raise Conflict(f"grant refused by the ledger: {res.result}", code=res.result)
    await conn.execute(
        "INSERT INTO grants (id, fund_id, sponsor_id, source, amount) VALUES ($1,$2,$3,$4,$5)",
        entry_id,
        fund.id,
        sponsor.organisation_id,
        source,
        amount,
    )
    g = Grant(id=entry_id, fund_id=fund.id, source=source, amount=amount)
    await audit.record(conn, actor, "fund.granted", "fund", fund.id, sponsor_id=sponsor.organisation_id, after=g)
    return g


class SourceLine(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    name: str
    granted: int
    returned: int  # budget given back to the source (corrections, cuts, the rest at closing)
    net_granted: int  # granted - returned; never negative


class FundOverview(msgspec.Struct, frozen=True, kw_only=True):
    """Read straight from ledger balances. net_granted = available + issued, issued =
    outstanding + reserved + redeemed, ...: the identities are spelled out in ``overview_problems``."""

    fund_id: int
    currency: str
    granted: int  # every grant, gross
    returned_to_sources: int  # budget returned from the fund to its sources
    net_granted: int  # granted - returned_to_sources
    by_source: list[SourceLine]
    issued: int  # net amount moved from the fund to vouchers (issued less returned)
    returned_to_fund: int  # unspent voucher money back (expired, withdrawn)
    vouchers_outstanding: int  # still spendable on this fund's voucher shares (posted balance)
    reserved: int  # held by reservations (pending)
    redeemed: int  # spent at suppliers (posted voucher -> payable), net of refunds
    in_payout: int  # redeemed and in an exported payout, not yet seen on the statement
    paid: int  # redeemed and booked on the bank statement
    open_payable: int  # redeemed, not yet in a payout
    available: int  # can still be issued as vouchers (or returned to the sources)


async def fund_overview(conn: Any, actor: Actor, fund_id: int) -> FundOverview:
    sponsor = await sponsor_of(conn, actor)
    fund = await get_fund(conn, actor, fund_id)
    return await overview_of(conn, sponsor, fund.id)


def overview_problems(o: FundOverview) -> list[str]:
    """The identities a fund overview must satisfy; [] when it adds up."""
    out = []
    if o.granted != sum(s.granted for s in o.by_source):
        out.append(f"granted {o.granted} != sum of sources {sum(s.granted for s in o.by_source)}")
    if o.returned_to_sources != sum(s.returned for s in o.by_source):
        out.append(
            f"returned to sources {o.returned_to_sources} != sum of sources {sum(s.returned for s in o.by_source)}"
        )
    for s in o.by_source:
        if s.net_granted != s.granted - s.returned or s.net_granted < 0:
            out.append(f"source {s.source}: net granted {s.net_granted} (granted {s.granted}, returned {s.returned})")
    if o.net_granted != o.granted - o.returned_to_sources:
        out.append(f"net granted {o.net_granted} != granted {o.granted} - returned {o.returned_to_sources}")
    if o.net_granted != o.available + o.issued:
        out.append(f"net granted {o.net_granted} != available {o.available} + issued {o.issued}")
    if o.issued != o.vouchers_outstanding + o.reserved + o.redeemed:
        out.append(
            f"issued {o.issued} != outstanding {o.vouchers_outstanding} + reserved {o.reserved} + redeemed {o.redeemed}"
        )
    if o.redeemed != o.open_payable + o.in_payout + o.paid:
        out.append(f"redeemed {o.redeemed} != open {o.open_payable} + in payout {o.in_payout} + paid {o.paid}")
    return out


# Per source that granted to the fund: what it granted and what went back, from the
# business records (the ledger's balances must agree: ``overview_problems``).
_SOURCES_SQL = (
    "WITH g AS (SELECT source, sum(amount) AS granted FROM grants WHERE fund_id = $1 GROUP BY source), "
    "r AS (SELECT source, sum(amount) AS returned FROM budget_returns WHERE fund_id = $1 GROUP BY source) "
    "SELECT g.source, s.name, s.account_id, g.granted::bigint AS granted, "
    "coalesce(r.returned, 0)::bigint AS returned FROM g JOIN funding_sources s ON s.sponsor_id = $2 "
    "AND s.code = g.source LEFT JOIN r ON r.source = g.source ORDER BY g.source"
)


def _source_lines(rows: Sequence[Any]) -> list[SourceLine]:
    return [
        SourceLine(
            source=r["source"],
            name=r["name"],
            granted=r["granted"],
            returned=r["returned"],
            net_granted=r["granted"] - r["returned"],
        )
        for r in rows
    ]


async def overview_of(conn: Any, sponsor: Sponsor, fund_id: int) -> FundOverview:
    fund = await conn.fetchrow(
        "SELECT id, account_id FROM funds WHERE id = $1 AND sponsor_id = $2", fund_id, sponsor.organisation_id
    )
    if fund is None:
        raise NotFound("no such fund", code="fund_not_found")
    f = await conn.fetchrow("SELECT debits_posted, credits_posted FROM accounts WHERE id = $1", fund["account_id"])
    sources = _source_lines(await conn.fetch(_SOURCES_SQL, fund["id"], sponsor.organisation_id))
    granted = sum(s.granted for s in sources)
    returned = sum(s.returned for s in sources)
    # Voucher shares of this fund: their accounts' balances.
    v = await conn.fetchrow(
        "SELECT coalesce(sum(a.credits_posted - a.debits_posted), 0)::bigint AS outstanding, "
        "coalesce(sum(a.debits_pending), 0)::bigint AS reserved FROM voucher_shares s JOIN accounts a "
        "ON a.id = s.account_id WHERE s.fund_id = $1",
        fund["id"],
    )
    moved = await conn.fetchrow(
        "SELECT coalesce(sum(amount) FILTER (WHERE code = 'voucher_issued'), 0)::bigint AS issued, "
        "coalesce(sum(amount) FILTER (WHERE code IN ('voucher_expired', 'voucher_withdrawn')), 0)::bigint "
        "AS returned FROM transfers WHERE ledger_id = $1 AND (debit_account_id = $2 OR credit_account_id = $2)",
        sponsor.ledger_id,
        fund["account_id"],
    )
    lines = await conn.fetchrow(
        "SELECT coalesce(sum(amount), 0)::bigint AS redeemed, "
        "coalesce(sum(amount) FILTER (WHERE state IN ('open', 'rejected', 'returned')), 0)::bigint AS open, "
        "coalesce(sum(amount) FILTER (WHERE state = 'in_payout'), 0)::bigint AS in_payout, "
        "coalesce(sum(amount) FILTER (WHERE state = 'paid'), 0)::bigint AS paid "
        "FROM payable_lines WHERE fund_id = $1",
        fund["id"],
    )
    return FundOverview(
        fund_id=fund["id"],
        currency="EUR",
        granted=granted,
        returned_to_sources=returned,
        net_granted=granted - returned,
        by_source=sources,
        issued=moved["issued"] - moved["returned"],
        returned_to_fund=moved["returned"],
        vouchers_outstanding=v["outstanding"] - v["reserved"],
        reserved=v["reserved"],
        redeemed=lines["redeemed"],
        in_payout=lines["in_payout"],
        paid=lines["paid"],
        open_payable=lines["open"],
        available=f["credits_posted"] - f["debits_posted"],
    )


# --- returning budget and closing a fund ----------------------------------------------


class BudgetReturn(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID  # = the ledger entry's id
    fund_id: int
    source: str
    amount: int
    currency: str = "EUR"
    reason: str
    at_close: bool  # the unspent rest, returned when the fund was closed
    by: str  # the token's name and id
    created_at: datetime


class FundClosure(msgspec.Struct, frozen=True, kw_only=True):
    fund: Fund
    returned: list[BudgetReturn]  # one per source that got part of the rest back
    total_returned: int
    currency: str = "EUR"
    overview: FundOverview


async def _lock_fund(conn: Any, sponsor: Sponsor, fund_id: int, *, exclusive: bool) -> Any:
    """The fund's row, locked: shared by grants and issues, exclusive for returns and closing."""
    row = await conn.fetchrow(
        "SELECT id, code, account_id, closed_at FROM funds WHERE id = $1 AND sponsor_id = $2 "
        + ("FOR NO KEY UPDATE" if exclusive else "FOR SHARE"),
        fund_id,
        sponsor.organisation_id,
    )
    if row is None:
        raise NotFound("no such fund", code="fund_not_found")
    return row


def _check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise ValidationFailed(
            f"say why, in 1 to {MAX_REASON} characters: it is kept with the ledger entry and in the audit trail",
            code="reason_required",
            errors=[{"field": "reason", "message": f"1 to {MAX_REASON} characters, not only spaces"}],
        )
    return reason


async def _available(conn: Any, account_id: int) -> int:
    n: int = await conn.fetchval("SELECT credits_posted - debits_posted FROM accounts WHERE id = $1", account_id)
    return n


def _description(what: str, reason: str) -> str:
    text = f"{what}: {reason}"
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


async def _post_returns(
    conn: Any,
    actor: Actor,
    sponsor: Sponsor,
    fund: Any,
    parts: Sequence[tuple[Any, int]],
    reason: str,
    *,
    at_close: bool,
) -> list[BudgetReturn]:
    """fund:F -> funding:src for each (source row, amount > 0): one ledger entry and one
    budget_returns row each, all or nothing."""
    what = "Unspent budget returned at closing" if at_close else "Budget returned"
    specs = [
        (
            src,
            amount,
            EntrySpec(
                id=new_entry_id(),
                ledger_id=sponsor.ledger_id,
                description=_description(f"{what} from fund {fund['code']} to source {src['source']}", reason),
                value_date=local_today(),
                refs={"fund": str(fund["id"]), "source": src["source"]},
                link_group=1,
                transfers=(
                    TransferSpec(
                        debit_account_id=fund["account_id"],
                        credit_account_id=src["account_id"],
                        amount=amount,
                        code="budget_returned",
                    ),
                ),
            ),
        )
        for src, amount in parts
        if amount > 0
    ]
    if not specs:
        return []
    results = await apply_batch(conn, [e for _, _, e in specs])
    failed = next((r for r in results if not r.accepted and r.result != "linked_event_failed"), None)
    if failed is not None or not all(r.accepted for r in results):
        code = failed.result if failed is not None else "linked_event_failed"
        if code == "exceeds_credits":
            raise InsufficientFunds(
                "the fund's available budget is short",
                code="return_exceeds_available",
                available=await _available(conn, fund["account_id"]),
            )
        raise Conflict(f"return refused by the ledger: {code}", code=code)
    created_at = results[0].created_at
    assert created_at is not None
    out = [
        BudgetReturn(
            id=e.id,
            fund_id=fund["id"],
            source=src["source"],
            amount=amount,
            reason=reason,
            at_close=at_close,
            by=actor.label,
            created_at=created_at,
        )
        for src, amount, e in specs
    ]
    # one at a time: the table's trigger checks each against the source's grants again
    for r in out:
        await conn.execute(
            "INSERT INTO budget_returns (id, fund_id, sponsor_id, source, amount, reason, at_close, token_id, actor, "
            "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            r.id,
            r.fund_id,
            sponsor.organisation_id,
            r.source,
            r.amount,
            r.reason,
            r.at_close,
            actor.token_id,
            r.by,
            r.created_at,
        )
    return out


async def return_budget(conn: Any, actor: Actor, fund_id: int, source: str, amount: int, reason: str) -> BudgetReturn:
    """Part of a fund's available budget back to one of its sources: fund:F -> funding:src.

    At most what the fund still has available (budget on vouchers stays there) and at
    most what the source granted to the fund less what went back to it before, so the
    by-source overview never goes negative. Also on a closed fund: a refund on one of
    its vouchers after the close brings money back to the fund."""
    sponsor = await sponsor_of(conn, actor)
    fund = await _lock_fund(conn, sponsor, fund_id, exclusive=True)
    if amount <= 0:
        raise ValidationFailed(
            "amount must be positive",
            code="amount_must_be_positive",
            errors=[{"field": "amount", "message": "must be > 0 cents"}],
        )
    reason = _check_reason(reason)
    sources = {r["source"]: r for r in await conn.fetch(_SOURCES_SQL, fund["id"], sponsor.organisation_id)}
    src = sources.get(source)
    if src is None:
        raise ValidationFailed(
            f"source {source} granted nothing to this fund",
            code="funding_source_not_granted",
            errors=[{"field": "source", "message": f"sources of this fund: {', '.join(sources) or 'none'}"}],
        )
    net = src["granted"] - src["returned"]
    if amount > net:
        raise Conflict(
            f"source {source} granted {src['granted']} cents to this fund and got {src['returned']} back: "
            f"at most {net} can go back to it",
            code="return_exceeds_net_grant",
            net_granted=net,
        )
    # Only issuing takes from the fund, and it waits for this lock: read once, it stays at least this.
    available = await _available(conn, fund["account_id"])
    if amount > available:
        raise InsufficientFunds(
            f"the fund has {available} cents available; budget on vouchers goes back to the fund only "
            "when they expire or are withdrawn",
            code="return_exceeds_available",
            available=available,
        )
    [out] = await _post_returns(conn, actor, sponsor, fund, [(src, amount)], reason, at_close=False)
    await audit.record(
        conn, actor, "fund.budget_returned", "fund", fund["id"], sponsor_id=sponsor.organisation_id, after=out
    )
    return out


async def list_returns(conn: Any, actor: Actor, fund_id: int) -> list[BudgetReturn]:
    fund = await get_fund(conn, actor, fund_id)
    rows = await conn.fetch(
        "SELECT id, fund_id, source, amount, reason, at_close, actor, created_at FROM budget_returns "
        "WHERE fund_id = $1 ORDER BY created_at, id LIMIT $2",
        fund.id,
        MAX_LIST,
    )
    return [
        BudgetReturn(
            id=r["id"],
            fund_id=r["fund_id"],
            source=r["source"],
            amount=r["amount"],
            reason=r["reason"],
            at_close=r["at_close"],
            by=r["actor"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


async def _outstanding(conn: Any, fund_id: int, today: date) -> tuple[int, int, int, list[dict[str, Any]]]:
    """Vouchers with a share of the fund that are still open (count, spendable, reserved, the first few).

    Open means not expired or withdrawn: still spendable, or past its last valid day
    but not yet closed by the expiry sweep (its money is still on the voucher)."""
    rows = await conn.fetch(
        "SELECT v.id, v.code, v.valid_until, a.credits_posted - a.debits_posted - a.debits_pending AS spendable, "
        "a.debits_pending AS reserved, count(*) OVER () AS n, "
        "sum(a.credits_posted - a.debits_posted - a.debits_pending) OVER () AS spendable_total, "
        "sum(a.debits_pending) OVER () AS reserved_total "
        "FROM voucher_shares s JOIN vouchers v ON v.id = s.voucher_id JOIN accounts a ON a.id = s.account_id "
        "WHERE s.fund_id = $1 AND v.state = 'active' ORDER BY v.valid_until, v.code LIMIT $2",
        fund_id,
        MAX_OUTSTANDING_LISTED,
    )
    if not rows:
        return 0, 0, 0, []
    listed = [
        {
            "voucher_id": str(r["id"]),
            "code": r["code"],
            "valid_until": r["valid_until"].isoformat(),
            "spendable": r["spendable"],
            "reserved": r["reserved"],
            "past_validity": r["valid_until"] < today,
        }
        for r in rows
    ]
    return rows[0]["n"], int(rows[0]["spendable_total"]), int(rows[0]["reserved_total"]), listed


async def close_fund(
    conn: Any, actor: Actor, fund_id: int, reason: str, split: Sequence[tuple[str, int]] | None = None
) -> FundClosure:
    """Close a fund: no more vouchers or grants, and the unspent rest back to its sources.

    Refused, with nothing changed, while any voucher of the fund is still open (listed in
    the problem): closing never withdraws a voucher a family may still spend. The rest
    (the fund's available budget) goes back pro rata to each source's net grant, by the
    largest-remainder rule (``settlement.split``), unless ``split`` says how much each
    source gets; then it must add up to the rest exactly."""
    sponsor = await sponsor_of(conn, actor)
    fund = await _lock_fund(conn, sponsor, fund_id, exclusive=True)
    if fund["closed_at"] is not None:
        raise Conflict(f"the fund was closed on {fund['closed_at'].isoformat()}", code="fund_closed")
    reason = _check_reason(reason)
    # The sponsor's ledger, before reading balances: a withdrawal, expiry or refund
    # booking on it now waits, so the rest read below is the rest returned.
    await conn.execute("SELECT 1 FROM ledgers WHERE id = $1 FOR NO KEY UPDATE", sponsor.ledger_id)
    today = local_today()
    count, spendable, reserved, listed = await _outstanding(conn, fund["id"], today)
    if count:
        raise Conflict(
            f"{count} voucher(s) of this fund are still open ({spendable} cents spendable, {reserved} reserved): "
            "withdraw them, or wait until they expire (those past their last valid day are closed by "
            "`settlement vouchers expire`), then close with a new Idempotency-Key",
            code="fund_has_outstanding_vouchers",
            outstanding_count=count,
            outstanding_spendable=spendable,
            outstanding_reserved=reserved,
            vouchers=listed,
        )
    rest = await _available(conn, fund["account_id"])
    sources = await conn.fetch(_SOURCES_SQL, fund["id"], sponsor.organisation_id)
    nets = [r["granted"] - r["returned"] for r in sources]
    parts = split_within_caps(rest, nets) if split is None else _explicit_split(split, sources, rest)
    returned = await _post_returns(
        conn, actor, sponsor, fund, list(zip(sources, parts, strict=True)), reason, at_close=True
    )
    await conn.execute(
        "UPDATE funds SET closed_at = now(), closed_by_token = $2, closed_by = $3, close_reason = $4 WHERE id = $1",
        fund["id"],
        actor.token_id,
        actor.label,
        reason,
    )
    after = await overview_of(conn, sponsor, fund["id"])
    # nothing of the fund is left anywhere it could still be spent from
    assert after.available == 0, after
    assert after.vouchers_outstanding == 0, after
    assert after.reserved == 0, after
    closed = await get_fund(conn, actor, fund["id"])
    total = sum(r.amount for r in returned)
    await audit.record(
        conn,
        actor,
        "fund.closed",
        "fund",
        fund["id"],
        sponsor_id=sponsor.organisation_id,
        before={"state": "open", "available": rest},
        after={
            "state": "closed",
            "reason": reason,
            "split": "explicit" if split is not None else "pro_rata_net_grants",
            "returned": [{"source": r.source, "amount": r.amount, "entry": str(r.id)} for r in returned],
            "total_returned": total,
        },
    )
    return FundClosure(fund=closed, returned=returned, total_returned=total, overview=after)


def _explicit_split(split: Sequence[tuple[str, int]], sources: Sequence[Any], rest: int) -> list[int]:
    """The caller's amount per source, in the order of ``sources`` (a source not named gets 0)."""
    by_source = {r["source"]: r for r in sources}
    wanted: dict[str, int] = {}
    for source, amount in split:
        if source in wanted:
            raise ValidationFailed(
                f"source {source} is named twice",
                code="split_invalid",
                errors=[{"field": "split", "message": f"{source} twice"}],
            )
        if source not in by_source:
            raise ValidationFailed(
                f"source {source} granted nothing to this fund",
                code="funding_source_not_granted",
                errors=[{"field": "split", "message": f"sources of this fund: {', '.join(by_source) or 'none'}"}],
            )
        if amount < 0:
            raise ValidationFailed(
                "amounts are cents, 0 or more",
                code="split_invalid",
                errors=[{"field": "split", "message": f"{source}: {amount}"}],
            )
        wanted[source] = amount
    if sum(wanted.values()) != rest:
        raise Conflict(
            f"the split adds up to {sum(wanted.values())} cents; the fund's unspent rest is {rest}",
            code="split_does_not_match_rest",
            rest=rest,
        )
    for source, amount in wanted.items():
        r = by_source[source]
        if amount > r["granted"] - r["returned"]:
            raise Conflict(
                f"source {source} can get at most its net grant of {r['granted'] - r['returned']} cents back",
                code="return_exceeds_net_grant",
                source=source,
                net_granted=r["granted"] - r["returned"],
            )
    return [wanted.get(r["source"], 0) for r in sources]
