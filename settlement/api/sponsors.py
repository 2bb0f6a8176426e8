"""Sponsor set-up: debtor bank accounts, funds, grants, returns, closing, validators, overview."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency

from ledger.model import new_entry_id
from settlement.api.deps import ACTOR, Api
from settlement.auth import Actor, require
from settlement.sponsors import flows
from settlement.state import AppState
from settlement.tx import in_transaction, write

READERS = ("sponsor_finance", "sponsor_approver", "auditor")
Cents = Annotated[int, msgspec.Meta(gt=0, le=10**13, description="euro cents")]


class DebtorAccountIn(Api):
    iban: Annotated[str, msgspec.Meta(min_length=5, max_length=42)]
    holder_name: Annotated[str, msgspec.Meta(min_length=1, max_length=70)]
    bic: str | None = None
    pain_version: Literal["pain.001.001.09", "pain.001.001.03"] = "pain.001.001.09"
    instant_supported: bool = False
    batch_booking: bool = True
    iban_only: Annotated[
        bool,
        msgspec.Meta(
            description="the bank prefers IBAN-only pain.001: the creditor agent (CdtrAgt BIC) is left out for "
            "creditors in the EEA, where a SEPA credit transfer needs no BIC since 2016; creditors in SEPA "
            "countries outside the EEA (CH, GB, ...) keep it. Both pain.001 versions' XSDs make CdtrAgt optional, "
            "so nothing (no NOTPROVIDED) stands in its place. Default false: the BIC is written."
        ),
    ] = False


class FundIn(Api):
    code: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{1,12}$", description="short code, used in references")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    period_start: date
    period_end: date
    cap_per_voucher: Cents
    reservation_expiry_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    cancellation_window_days: Annotated[int, msgspec.Meta(ge=0, le=90)] = 0
    categories: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,40}$")]] = msgspec.field(default_factory=list)
    validators: list[int] = msgspec.field(default_factory=list)


class GrantIn(Api):
    source: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,40}$")]
    amount: Cents
    source_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


Reason = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=500,
        description="why (a letter, a decision, a correction): kept with the ledger entry and in the audit trail",
    ),
]
SourceCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,40}$")]


class ReturnIn(Api):
    source: SourceCode
    amount: Cents
    reason: Reason


class SplitPartIn(Api):
    source: SourceCode
    amount: Annotated[int, msgspec.Meta(ge=0, le=10**13, description="euro cents")]


class CloseIn(Api):
    reason: Reason
    split: (
        Annotated[
            list[SplitPartIn],
            msgspec.Meta(
                max_length=100,
                description="how much of the unspent rest each source gets back; must add up to the rest. "
                "Left out: pro rata to the sources' net grants (largest remainder).",
            ),
        ]
        | None
    ) = None


class ValidatorIn(Api):
    organisation_id: int


class SponsorController(Controller):
    path = "/v1"
    tags = ["sponsors"]  # noqa: RUF012
    dependencies = ACTOR

    @post(
        "/debtor-accounts",
        summary="Register a bank account the sponsor pays from",
        description=(
            "IBAN checked (checksum, structure, known bank); BIC derived when not given. The holder name must "
            "keep a letter or digit in the SEPA (EPC) character set that payment files use "
            "(422 holder_name_invalid). The bank profile (pain_version, instant_supported, batch_booking, "
            "iban_only) shapes every pain.001 of the account."
        ),
    )
    async def add_debtor(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        data: DebtorAccountIn,
    ) -> Response[flows.DebtorAccount]:
        require(actor, "sponsor_finance")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.add_debtor_account(
                conn,
                actor,
                data.iban,
                data.holder_name,
                data.bic,
                data.pain_version,
                data.instant_supported,
                data.batch_booking,
                data.iban_only,
            ),
        )

    @get("/debtor-accounts", summary="The sponsor's bank accounts")
    async def debtors(self, actor: Actor, app_state: NamedDependency[AppState]) -> list[flows.DebtorAccount]:
        require(actor, *READERS)
        out: list[flows.DebtorAccount] = await in_transaction(
            app_state.pool, lambda conn: flows.list_debtor_accounts(conn, actor)
        )
        return out

    @post("/funds", summary="Create a fund")
    async def create_fund(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        data: FundIn,
    ) -> Response[flows.Fund]:
        require(actor, "sponsor_finance")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.create_fund(
                conn,
                actor,
                code=data.code,
                name=data.name,
                period_start=data.period_start,
                period_end=data.period_end,
                cap_per_voucher=data.cap_per_voucher,
                reservation_expiry_days=data.reservation_expiry_days,
                cancellation_window_days=data.cancellation_window_days,
                categories=list(data.categories),
                validators=list(data.validators),
            ),
        )

    @get("/funds", summary="The sponsor's funds")
    async def funds(self, actor: Actor, app_state: NamedDependency[AppState]) -> list[flows.Fund]:
        require(actor, *READERS)
        out: list[flows.Fund] = await in_transaction(app_state.pool, lambda conn: flows.list_funds(conn, actor))
        return out

    @get("/funds/{fund_id:int}", summary="One fund")
    async def fund(self, actor: Actor, app_state: NamedDependency[AppState], fund_id: int) -> flows.Fund:
        require(actor, *READERS)
        out: flows.Fund = await in_transaction(app_state.pool, lambda conn: flows.get_fund(conn, actor, fund_id))
        return out

    @post(
        "/funds/{fund_id:int}/grants",
        summary="Grant budget to a fund from a funding source",
        description="Posts funding:<source> -> fund:<id>. A new source needs source_name. A closed fund takes no "
        "grant (409 fund_closed).",
    )
    async def grant(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        fund_id: int,
        data: GrantIn,
    ) -> Response[flows.Grant]:
        require(actor, "sponsor_finance")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.grant(conn, actor, fund_id, data.source, data.source_name, data.amount, new_entry_id()),
        )

    @post(
        "/funds/{fund_id:int}/returns",
        summary="Return part of a fund's available budget to one of its funding sources",
        description="Posts fund:<id> -> funding:<source> (code budget_returned), e.g. a grant booked too high or a "
        "source that cuts its contribution. At most the fund's available balance (409 return_exceeds_available, "
        "with `available`: budget on vouchers comes back only when they expire or are withdrawn) and at most what "
        "the source granted to this fund less what went back to it before (409 return_exceeds_net_grant, with "
        "`net_granted`); a source that granted nothing to the fund is 422 funding_source_not_granted. `reason` is "
        "required (422 reason_required when blank) and kept with who and when. The overview then shows the grant "
        "and the return side by side (granted, returned_to_sources, net_granted). Money received on the bank "
        "from the source (bank -> funding:<source>) is not touched. Also on a closed fund, for money a refund "
        "brought back after the close. One person decides, as for a grant: no money leaves the sponsor's bank.",
    )
    async def return_budget(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        fund_id: int,
        data: ReturnIn,
    ) -> Response[flows.BudgetReturn]:
        require(actor, "sponsor_finance")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.return_budget(conn, actor, fund_id, data.source, data.amount, data.reason),
        )

    @get(
        "/funds/{fund_id:int}/returns",
        summary="Budget returned from a fund to its sources: how much, to which source, who, when and why",
    )
    async def returns(
        self, actor: Actor, app_state: NamedDependency[AppState], fund_id: int
    ) -> list[flows.BudgetReturn]:
        require(actor, *READERS)
        out: list[flows.BudgetReturn] = await in_transaction(
            app_state.pool, lambda conn: flows.list_returns(conn, actor, fund_id)
        )
        return out

    @post(
        "/funds/{fund_id:int}/close",
        summary="Close a fund: no more vouchers, and the unspent rest back to the funding sources",
        description="Refused with nothing changed while any voucher of the fund is still open (409 "
        "fund_has_outstanding_vouchers, with outstanding_count, outstanding_spendable, outstanding_reserved and "
        "the first 100 `vouchers`: id, code, valid_until, spendable, reserved, past_validity): closing never "
        "withdraws a voucher a family may still spend. Withdraw them or let them expire (`settlement vouchers "
        "expire` closes those past their last valid day), then close with a new Idempotency-Key (a refusal is "
        "replayed for its key). Then, in one transaction: the fund is closed (issuing answers 409 fund_closed, "
        "a grant 409 fund_closed, closing again 409 fund_closed; there is no reopening) and its available "
        "budget goes back to the sources, one ledger entry per source (fund:<id> -> funding:<source>). The split: "
        "pro rata to each source's net grant (granted less returned) by the largest-remainder rule, ties in "
        "source code order, never a cent lost and no source above its net grant; or `split`, the amount per "
        "source, which must add up to the rest (409 split_does_not_match_rest, with `rest`). A close is possible "
        "before the fund's period ends (a scheme stopped early), as long as no voucher is open. One person "
        "decides, with a required reason; no money leaves the bank.",
        status_code=200,
    )
    async def close(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        fund_id: int,
        data: CloseIn,
    ) -> Response[flows.FundClosure]:
        require(actor, "sponsor_finance")
        split = None if data.split is None else [(p.source, p.amount) for p in data.split]
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.close_fund(conn, actor, fund_id, data.reason, split),
            status=200,
        )

    @post("/funds/{fund_id:int}/validators", summary="Authorise a validator organisation for a fund")
    async def validator(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        fund_id: int,
        data: ValidatorIn,
    ) -> Response[flows.Fund]:
        require(actor, "sponsor_finance")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.authorise_validator(conn, actor, fund_id, data.organisation_id),
        )

    @post(
        "/funds/{fund_id:int}/validators/{organisation_id:int}/revoke",
        summary="End a validator organisation's authorisation for a fund",
        description="It can no longer issue vouchers of the fund, nor withdraw those it issued (403 "
        "not_authorised_for_fund); the vouchers stay valid and spendable, and the sponsor can withdraw them. "
        "409 validator_not_authorised when it is not a validator of the fund.",
        status_code=200,
    )
    async def revoke_validator(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        fund_id: int,
        organisation_id: int,
    ) -> Response[flows.Fund]:
        require(actor, "sponsor_finance")
        return await write(
            request,
            app_state.pool,
            actor,
            {"fund": fund_id, "validator": organisation_id},
            lambda conn: flows.deauthorise_validator(conn, actor, fund_id, organisation_id),
            status=200,
        )

    @get(
        "/funds/{fund_id:int}/overview",
        summary="Fund overview from ledger balances",
        description="net_granted = granted - returned_to_sources = available + issued; issued = "
        "vouchers_outstanding + reserved + redeemed; redeemed = open_payable + in_payout + paid. Per source "
        "(by_source): granted, returned, net_granted (never negative). granted is every grant, gross: budget "
        "returned to a source is shown beside it, never netted away. All in cents.",
    )
    async def overview(self, actor: Actor, app_state: NamedDependency[AppState], fund_id: int) -> flows.FundOverview:
        require(actor, *READERS)
        out: flows.FundOverview = await in_transaction(
            app_state.pool, lambda conn: flows.fund_overview(conn, actor, fund_id)
        )
        return out
