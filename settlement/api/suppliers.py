"""Suppliers and bank-detail changes (four eyes)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter

from settlement.api.deps import ACTOR, Api
from settlement.auth import Actor, require
from settlement.state import AppState
from settlement.suppliers import flows
from settlement.tx import in_transaction, write


class BankDetailsIn(Api):
    iban: Annotated[str, msgspec.Meta(min_length=5, max_length=42)]
    holder_name: Annotated[str, msgspec.Meta(min_length=1, max_length=70)]
    bic: str | None = None


class DecisionIn(Api):
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class SupplierController(Controller):
    path = "/v1"
    tags = ["suppliers"]  # noqa: RUF012
    dependencies = ACTOR

    @get("/suppliers", summary="Supplier directory (a supplier sees itself only)")
    async def index(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        after: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> list[flows.Supplier]:
        out: list[flows.Supplier] = await in_transaction(
            app_state.pool, lambda conn: flows.list_suppliers(conn, actor, after, limit)
        )
        return out

    @get("/suppliers/{supplier_id:int}", summary="One supplier, with bank details and any pending change")
    async def show(self, actor: Actor, app_state: NamedDependency[AppState], supplier_id: int) -> flows.Supplier:
        out: flows.Supplier = await in_transaction(
            app_state.pool, lambda conn: flows.get_supplier(conn, actor, supplier_id)
        )
        return out

    @post(
        "/suppliers/{supplier_id:int}/bank-details",
        summary="Request a change of bank details",
        description="By the supplier itself, or the finance team of a sponsor that deals with the supplier "
        "(holds its payable account; otherwise 404 supplier_not_found). Pending until an approver who may "
        "decide it approves it (see GET /v1/bank-detail-requests); payouts never use pending details. "
        "One change is pending at a time: while another organisation's request awaits a decision, a new one "
        "answers 409 bank_details_change_pending (with pending_request_id); a request from the organisation "
        "that asked for the pending one, or from the supplier itself, replaces it (it becomes superseded). "
        "The holder name must keep "
        "a letter or digit in the SEPA (EPC) character set that payment files use (422 holder_name_invalid).",
    )
    async def request_change(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        supplier_id: int,
        data: BankDetailsIn,
    ) -> Response[flows.BankDetails]:
        require(actor, "supplier", "sponsor_finance")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.request_bank_details(conn, actor, supplier_id, data.iban, data.bic, data.holder_name),
        )

    @get(
        "/bank-detail-requests",
        summary="Pending bank-detail changes the caller's sponsor may decide",
        description="A change a sponsor's finance team requested: that sponsor's approvers. A change the supplier "
        "requested: the approvers of any sponsor that deals with the supplier (holds its payable account), or of "
        "any sponsor while none does (its first details). Never the requesting token, never the supplier's own "
        "organisation (403 approver_is_the_supplier); any other request answers 404 to approve and reject.",
    )
    async def pending(self, actor: Actor, app_state: NamedDependency[AppState]) -> list[flows.BankDetails]:
        out: list[flows.BankDetails] = await in_transaction(
            app_state.pool, lambda conn: flows.list_pending(conn, actor)
        )
        return out

    @post(
        "/bank-detail-requests/{request_id:int}/approve",
        summary="Approve a change (sponsor approver)",
        status_code=200,
    )
    async def approve(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        request_id: int,
        data: DecisionIn | None = None,
    ) -> Response[flows.BankDetails]:
        body = data or DecisionIn()
        return await write(
            request,
            app_state.pool,
            actor,
            body,
            lambda conn: flows.decide(conn, actor, request_id, True, body.reason),
            status=200,
        )

    @post(
        "/bank-detail-requests/{request_id:int}/reject",
        summary="Reject a change (sponsor approver)",
        status_code=200,
    )
    async def reject(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        request_id: int,
        data: DecisionIn | None = None,
    ) -> Response[flows.BankDetails]:
        body = data or DecisionIn()
        return await write(
            request,
            app_state.pool,
            actor,
            body,
            lambda conn: flows.decide(conn, actor, request_id, False, body.reason),
            status=200,
        )
