"""Organisations and API tokens: the platform admin's endpoints."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter

from settlement.api.deps import ACTOR, Api
from settlement.auth import Actor, require
from settlement.orgs import flows
from settlement.state import AppState
from settlement.tx import in_transaction, write

Kind = Literal["platform", "sponsor", "validator", "supplier"]
RoleName = Literal["platform_admin", "sponsor_finance", "sponsor_approver", "validator", "supplier", "auditor"]


class OrganisationIn(Api):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kinds: Annotated[list[Kind], msgspec.Meta(min_length=1)]
    supplier_category: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,40}$")] | None = None
    kvk: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{8}$")] | None = None
    remittance: Literal["supplier_reference", "voucher_code", "redemption_id"] = "supplier_reference"


class TokenIn(Api):
    role: RoleName
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class TokenAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """flows.TokenCreated as the API answers it: the secret is null on a replay."""

    id: int
    organisation_id: int
    role: str
    name: str
    token: str | None


def _without_secret(answer: dict[str, Any]) -> dict[str, Any]:
    """What a replay of a token request gets: everything but the secret."""
    return {**answer, "token": None}


class OrganisationController(Controller):
    path = "/v1"
    tags = ["organisations"]  # noqa: RUF012
    dependencies = ACTOR

    @post(
        "/organisations",
        summary="Create an organisation (platform admin)",
        description="Kinds: sponsor (gets its own ledger), validator, supplier (needs supplier_category), platform.",
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        data: OrganisationIn,
    ) -> Response[flows.Organisation]:
        require(actor, "platform_admin")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.create_organisation(
                conn,
                actor,
                data.name,
                list(data.kinds),
                supplier_category=data.supplier_category,
                kvk=data.kvk,
                remittance=data.remittance,
            ),
        )

    @get("/organisations", summary="List organisations (platform admin)")
    async def index(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        after: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 100,
    ) -> list[flows.Organisation]:
        require(actor, "platform_admin")
        result: list[flows.Organisation] = await in_transaction(
            app_state.pool, lambda conn: flows.list_organisations(conn, after, limit)
        )
        return result

    @post(
        "/organisations/{organisation_id:int}/tokens",
        summary="Issue an API token (platform admin)",
        description=(
            "The secret is in the response once; only its hash is stored. A replay of the request (same "
            "Idempotency-Key) answers with the same token's id, role and name and `token: null`: the secret "
            "is kept nowhere, not even for replays. Lost it? Revoke the token and issue a new one."
        ),
    )
    async def token(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        organisation_id: int,
        data: TokenIn,
    ) -> Response[TokenAnswer]:
        require(actor, "platform_admin")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.issue_token(conn, actor, organisation_id, data.role, data.name),
            stored=_without_secret,
        )

    @get(
        "/tokens",
        summary="List API tokens (platform admin)",
        description=(
            "Every organisation's tokens by id: role, holder's name, the first characters of the secret "
            "(`prefix`, to recognise a token someone reports as leaked) and when it was created and revoked. "
            "Never a secret. Filter with `organisation_id` and `revoked`; page with `after` (the last id seen)."
        ),
    )
    async def tokens(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        organisation_id: Annotated[int | None, Parameter(ge=1)] = None,
        revoked: bool | None = None,
        after: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=flows.MAX_TOKENS_PAGE)] = 100,
    ) -> list[flows.TokenInfo]:
        require(actor, "platform_admin")
        result: list[flows.TokenInfo] = await in_transaction(
            app_state.pool,
            lambda conn: flows.list_tokens(
                conn, organisation_id=organisation_id, revoked=revoked, after=after, limit=limit
            ),
        )
        return result

    @post(
        "/tokens/{token_id:int}/revoke",
        summary="Revoke an API token (platform admin)",
        description=(
            "The token stops working in this process at once and in every other API process within "
            "5 seconds (their token cache). Revoking a revoked token answers the same and changes nothing. "
            "Without a working admin token: `settlement tokens revoke ID` on the server."
        ),
        status_code=200,
    )
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        token_id: int,
    ) -> Response[flows.TokenInfo]:
        require(actor, "platform_admin")
        answer = await write(
            request,
            app_state.pool,
            actor,
            {"token_id": token_id},
            lambda conn: flows.revoke_token(conn, actor, token_id),
            status=200,
        )
        # This process forgets at once (others within TOKEN_CACHE_TTL_S): after the commit,
        # since a use of the token while the revocation was being written cached it again.
        cache = app_state.extras.get("token_cache")
        if cache is not None:
            cache.clear()
        return answer
