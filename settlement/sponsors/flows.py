"""Sponsor set-up and reads: debtor bank accounts, funds, grants, fund overview."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

import msgspec

from ledger.engine import apply_batch
from ledger.model import EntrySpec, TransferSpec
from settlement import audit, chart
from settlement.auth import Actor
from settlement.banking import check_holder_name, check_iban
from settlement.clock import local_today
from settlement.errors import Conflict, Forbidden, NotFound, ValidationFailed
from settlement.references import fund_top_up_reference

MAX_LIST = 500


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
    bank_account_id: int
    in_transit_account_id: int


_DEBTOR_COLS = (
    "id, iban, bic, holder_name, pain_version, instant_supported, batch_booking, bank_account_id, in_transit_account_id"
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
        f"batch_booking, bank_account_id, in_transit_account_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) "
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


_FUND_COLS = (
    "f.id, f.code, f.name, f.period_start, f.period_end, f.reservation_expiry_days, "
    "f.cancellation_window_days, f.cap_per_voucher, f.categories, f.top_up_reference, "
    "coalesce((SELECT array_agg(organisation_id ORDER BY organisation_id) FROM fund_validators v "
    "WHERE v.fund_id = f.id), '{}') AS validators"
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
    """Budget granted to a fund: funding:src -> fund:F."""
    sponsor = await sponsor_of(conn, actor)
    fund = await get_fund(conn, actor, fund_id)
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
    fund_account = await conn.fetchval("SELECT account_id FROM funds WHERE id = $1", fund.id)
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


class FundOverview(msgspec.Struct, frozen=True, kw_only=True):
    """Read straight from ledger balances. granted = available + issued_outstanding
    + reserved + redeemed_unpaid... the identities are spelled out in ``checks``."""

    fund_id: int
    currency: str
    granted: int
    by_source: list[SourceLine]
    issued: int  # net amount moved from the fund to vouchers (issued less returned)
    returned_to_fund: int  # unspent voucher money back (expired, withdrawn)
    vouchers_outstanding: int  # still spendable on this fund's voucher shares (posted balance)
    reserved: int  # held by reservations (pending)
    redeemed: int  # spent at suppliers (posted voucher -> payable), net of refunds
    in_payout: int  # redeemed and in an exported payout, not yet seen on the statement
    paid: int  # redeemed and booked on the bank statement
    open_payable: int  # redeemed, not yet in a payout
    available: int  # can still be issued as vouchers


async def fund_overview(conn: Any, actor: Actor, fund_id: int) -> FundOverview:
    sponsor = await sponsor_of(conn, actor)
    fund = await get_fund(conn, actor, fund_id)
    return await overview_of(conn, sponsor, fund.id)


def overview_problems(o: FundOverview) -> list[str]:
    """The identities a fund overview must satisfy; [] when it adds up."""
    out = []
    if o.granted != sum(s.granted for s in o.by_source):
        out.append(f"granted {o.granted} != sum of sources {sum(s.granted for s in o.by_source)}")
    if o.granted != o.available + o.issued:
        out.append(f"granted {o.granted} != available {o.available} + issued {o.issued}")
    if o.issued != o.vouchers_outstanding + o.reserved + o.redeemed:
        out.append(
            f"issued {o.issued} != outstanding {o.vouchers_outstanding} + reserved {o.reserved} + redeemed {o.redeemed}"
        )
    if o.redeemed != o.open_payable + o.in_payout + o.paid:
        out.append(f"redeemed {o.redeemed} != open {o.open_payable} + in payout {o.in_payout} + paid {o.paid}")
    return out


async def overview_of(conn: Any, sponsor: Sponsor, fund_id: int) -> FundOverview:
    fund = await conn.fetchrow(
        "SELECT id FROM funds WHERE id = $1 AND sponsor_id = $2", fund_id, sponsor.organisation_id
    )
    if fund is None:
        raise NotFound("no such fund", code="fund_not_found")
    f = await conn.fetchrow(
        "SELECT a.debits_posted, a.credits_posted FROM funds JOIN accounts a "
        "ON a.id = funds.account_id WHERE funds.id = $1",
        fund["id"],
    )
    sources = await conn.fetch(
        "SELECT g.source, s.name, sum(g.amount)::bigint AS granted FROM grants g JOIN funding_sources s "
        "ON s.sponsor_id = g.sponsor_id AND s.code = g.source WHERE g.fund_id = $1 GROUP BY g.source, s.name "
        "ORDER BY g.source",
        fund["id"],
    )
    granted = sum(r["granted"] for r in sources)
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
        await conn.fetchval("SELECT account_id FROM funds WHERE id = $1", fund["id"]),
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
        by_source=[SourceLine(source=r["source"], name=r["name"], granted=r["granted"]) for r in sources],
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
