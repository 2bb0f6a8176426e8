"""Payout runs (four eyes), pain.001 downloads, pain.002 imports, supplier payments."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import Parameter, QueryParameter

from settlement.api.deps import ACTOR, Api
from settlement.auth import Actor, require
from settlement.payouts import flows
from settlement.state import AppState
from settlement.tx import in_transaction, write, write_upload

RunState = Literal[
    "draft", "approved", "exported", "accepted", "partially_rejected", "rejected", "settled", "cancelled"
]
PaymentState = Literal["pending", "sent", "accepted", "booked", "rejected", "returned"]


class RunIn(Api):
    debtor_account_id: int
    instant: bool = msgspec.field(default=False)


class CancelIn(Api):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ScheduleIn(Api):
    weekdays: Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=7)]], msgspec.Meta(min_length=1, max_length=7)]
    at_local: Annotated[str, msgspec.Meta(pattern=r"^[0-2][0-9]:[0-5][0-9]$", description="HH:MM, Europe/Amsterdam")]
    instant: bool = False
    enabled: bool = True


class EmptyIn(Api):
    pass


class PayoutController(Controller):
    path = "/v1"
    tags = ["payouts"]  # noqa: RUF012
    dependencies = ACTOR

    @post(
        "/payout-runs",
        summary="Build a draft payout run for a debtor account (sponsor finance or approver)",
        description="Gathers the sponsor's open payables past each fund's cancellation window, nets refunds, "
        "and makes one payment per supplier with the supplier's approved IBAN, BIC and name copied in. "
        "Suppliers with pending, blocked or missing bank details, with nothing (net) to pay, or owed more than "
        "one SEPA credit transfer carries (EUR 999,999,999.99) are listed under `skipped` with the reason. "
        "`instant: true` makes SCT Inst payments where the bank profile allows, except payments above "
        "EUR 100,000, which go regular and are listed under `notes`. 409 `nothing_to_pay` when there is nothing.",
    )
    async def create(
        self, request: Request[Any, Any, Any], actor: Actor, app_state: NamedDependency[AppState], data: RunIn
    ) -> Response[flows.Run]:
        require(actor, "sponsor_finance", "sponsor_approver")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.create_run(conn, actor, data.debtor_account_id, instant=data.instant),
        )

    @get("/payout-runs", summary="Payout runs of the caller's sponsor, newest first")
    async def index(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        run_state: Annotated[RunState | None, QueryParameter(name="state")] = None,
        before_id: Annotated[
            int | None, Parameter(ge=1, description="cursor: the last id of the previous page")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> list[flows.Run]:
        out: list[flows.Run] = await in_transaction(
            app_state.pool, lambda conn: flows.list_runs(conn, actor, state=run_state, before_id=before_id, limit=limit)
        )
        return out

    @get("/payout-runs/{run_id:int}", summary="One payout run: totals, skipped suppliers, notes, files")
    async def show(self, actor: Actor, app_state: NamedDependency[AppState], run_id: int) -> flows.Run:
        out: flows.Run = await in_transaction(app_state.pool, lambda conn: flows.get_run(conn, actor, run_id))
        return out

    @post(
        "/payout-runs/{run_id:int}/approve",
        summary="Approve a draft run (a sponsor approver who did not create it)",
        status_code=200,
    )
    async def approve(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        run_id: int,
        data: EmptyIn | None = None,
    ) -> Response[flows.Run]:
        require(actor, "sponsor_approver")
        return await write(
            request,
            app_state.pool,
            actor,
            data or EmptyIn(),
            lambda conn: flows.approve(conn, actor, run_id),
            status=200,
        )

    @post("/payout-runs/{run_id:int}/cancel", summary="Cancel a draft or approved run", status_code=200)
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        run_id: int,
        data: CancelIn,
    ) -> Response[flows.Run]:
        require(actor, "sponsor_finance", "sponsor_approver")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.cancel(conn, actor, run_id, data.reason),
            status=200,
        )

    @post(
        "/payout-runs/{run_id:int}/export",
        summary="Export an approved run: pain.001 file(s), XSD-validated, stored with sha256",
        description="Posts payable -> in_transit for every payment in the same transaction as storing the "
        "files: a failure leaves the run approved and nothing stored. Download the files afterwards. "
        "409 `bank_details_changed` when a supplier's bank details changed after the run was built, "
        "409 `payables_changed` when a supplier refunded a redemption the run pays after it was built: "
        "cancel the run and build a new one.",
        status_code=200,
    )
    async def export(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        run_id: int,
        data: EmptyIn | None = None,
    ) -> Response[flows.Run]:
        require(actor, "sponsor_finance", "sponsor_approver")
        limit = app_state.settings.payout_max_payments_per_file
        return await write(
            request,
            app_state.pool,
            actor,
            data or EmptyIn(),
            lambda conn: flows.export(conn, actor, run_id, max_per_file=limit),
            status=200,
        )

    @get(
        "/payout-runs/{run_id:int}/files/{file_id:int}",
        summary="Download a stored pain.001 file",
        description="Served only if the stored bytes still match their sha256 (sent in `X-Content-SHA256`).",
        media_type="application/xml",
    )
    async def download(
        self, actor: Actor, app_state: NamedDependency[AppState], run_id: int, file_id: int
    ) -> Response[bytes]:
        msg_id, data, sha = await in_transaction(
            app_state.pool, lambda conn: flows.download(conn, actor, run_id, file_id)
        )
        return Response(
            content=data,
            media_type="application/xml",
            headers={
                "Content-Disposition": f'attachment; filename="{msg_id}.xml"',
                "X-Content-SHA256": sha,
                "Cache-Control": "no-store",
            },
        )

    @post(
        "/payment-status-reports",
        summary="Import a pain.002 status report (the XML file as the raw request body)",
        description="Rejected transactions go back to payable (in_transit -> payable) and the payment is marked "
        "rejected with its reason; an account error (AC01, AC04, ...) blocks the supplier's bank details. "
        "ACTC/ACCP mean accepted for processing, never paid. A group status applies to the whole file, a "
        "block status (PmtInfSts) to the payments of the block its OrgnlPmtInfId names, a transaction status to "
        "the payment it names within that block; PDNG changes nothing. A report that does not fit the file "
        "(OrgnlNbOfTxs/OrgnlCtrlSum of group or block, a block or payment not in the file or not in the named "
        "block, another original amount, contradicting statuses) is refused whole: 422 "
        "`status_report_does_not_match` with `mismatches`, nothing applied. The same file twice changes nothing "
        "(the first answer comes back with `duplicate: true`).",
        status_code=200,
    )
    async def import_status(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
    ) -> Response[flows.StatusImport]:
        require(actor, "sponsor_finance", "sponsor_approver")
        limit = app_state.settings.max_upload_bytes
        return await write_upload(
            request,
            app_state.pool,
            actor,
            "pain.002 file",
            lambda conn, data: flows.import_status_report(conn, actor, data, max_bytes=limit),
        )

    @get(
        "/payments",
        summary="Payments: a supplier sees every payment made to it; a sponsor sees its own",
    )
    async def payments(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        run_id: int | None = None,
        payment_state: Annotated[PaymentState | None, QueryParameter(name="state")] = None,
        before_id: Annotated[
            int | None, Parameter(ge=1, description="cursor: the last id of the previous page")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> list[flows.PaymentOut]:
        out: list[flows.PaymentOut] = await in_transaction(
            app_state.pool,
            lambda conn: flows.list_payments(
                conn, actor, run_id=run_id, state=payment_state, before_id=before_id, limit=limit
            ),
        )
        return out

    @get("/payments/{payment_id:int}", summary="One payment with the redemptions and refunds it covers")
    async def payment(self, actor: Actor, app_state: NamedDependency[AppState], payment_id: int) -> flows.PaymentOut:
        out: flows.PaymentOut = await in_transaction(
            app_state.pool, lambda conn: flows.get_payment(conn, actor, payment_id)
        )
        return out

    @put(
        "/debtor-accounts/{debtor_account_id:int}/payout-schedule",
        summary="Make draft runs on a schedule (ISO weekdays, local time)",
        description="Scheduled runs are drafts made by the platform; any sponsor approver may approve them.",
    )
    async def set_schedule(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        debtor_account_id: int,
        data: ScheduleIn,
    ) -> flows.Schedule:
        require(actor, "sponsor_finance")
        out: flows.Schedule = await in_transaction(
            app_state.pool,
            lambda conn: flows.set_schedule(
                conn, actor, debtor_account_id, data.weekdays, data.at_local, data.instant, data.enabled
            ),
        )
        return out

    @get("/debtor-accounts/{debtor_account_id:int}/payout-schedule", summary="The account's payout schedule")
    async def get_schedule(
        self, actor: Actor, app_state: NamedDependency[AppState], debtor_account_id: int
    ) -> flows.Schedule:
        out: flows.Schedule = await in_transaction(
            app_state.pool, lambda conn: flows.get_schedule(conn, actor, debtor_account_id)
        )
        return out
