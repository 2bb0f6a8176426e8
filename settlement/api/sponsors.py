"""Sponsor set-up: debtor bank accounts, funds, grants, validators, overview."""

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
            "(422 holder_name_invalid)."
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
        description="Posts funding:<source> -> fund:<id>. A new source needs source_name.",
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
        description="granted = available + issued; issued = vouchers_outstanding + reserved + redeemed; "
        "redeemed = open_payable + in_payout + paid. All in cents.",
    )
    async def overview(self, actor: Actor, app_state: NamedDependency[AppState], fund_id: int) -> flows.FundOverview:
        require(actor, *READERS)
        out: flows.FundOverview = await in_transaction(
            app_state.pool, lambda conn: flows.fund_overview(conn, actor, fund_id)
        )
        return out
