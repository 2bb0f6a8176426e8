"""Bank statements: upload, entries with their match status, the exceptions queue."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter, QueryParameter

from settlement.api.deps import ACTOR, Api
from settlement.auth import Actor, require
from settlement.state import AppState
from settlement.statements import flows
from settlement.tx import in_transaction, write, write_upload

EntryState = Literal["unmatched", "matched", "ignored"]


class ResolveIn(Api):
    action: Literal["match_payment", "match_top_up", "book_external", "ignore"]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500, description="why: kept in the audit trail")]
    payment_id: int | None = None
    payment_ids: Annotated[
        list[int] | None,
        msgspec.Meta(description="instead of payment_id: a line that covers several payments (they must add up)"),
    ] = None
    fund_id: int | None = None
    category: Annotated[
        Literal["bank_charges", "interest", "own_transfer"] | None,
        msgspec.Meta(
            description="with book_external: what the movement is; booked against external:<category>, a clearing "
            "account the sponsor's own administration takes over"
        ),
    ] = None


class StatementController(Controller):
    path = "/v1"
    tags = ["reconciliation"]  # noqa: RUF012
    dependencies = ACTOR

    @post(
        "/statements",
        summary="Import a bank statement file (camt.053, camt.054 or MT940 as the raw request body)",
        description="Every statement in the file must be of one of the sponsor's debtor accounts, else nothing is "
        "imported (404 `statement_account_unknown`); so is a statement whose opening balance plus its booked entries "
        "is not its closing balance (422 `statement_does_not_add_up`). The same statement twice changes nothing; an "
        "entry already seen in another statement is booked once. Entries are matched by EndToEndId, then batch "
        "PmtInfId with count and total, returns, fund top-up references; the rest waits in the exceptions queue. The "
        "answer gives, per statement, the ledger's bank balance at the statement date and its difference from the "
        "closing balance. Day statements go in date order, each opening where the last one imported for the account "
        "closed (409 `statement_out_of_order`, 409 `statement_gap`: a statement in between is missing) and, where "
        "the bank numbers its statements (camt.053 LglSeqNb/ElctrncSeqNb, MT940 :28C:) and the account's statements "
        "have shown the number counting one by one, with the next number (a skipped number is a `statement_gap` "
        "even when the balances meet; a new year may restart at 1 or YY001; numbers that are 0 or a date are no "
        "counter). The same statement id, or the same number, and date again with other content (a corrected "
        "statement) is 409 `statement_differs`. camt.054 is no day statement and never part of that order. Size "
        "limit: SETTLEMENT_MAX_UPLOAD_BYTES (413 beyond it).",
        status_code=200,
    )
    async def upload(
        self, request: Request[Any, Any, Any], actor: Actor, app_state: NamedDependency[AppState]
    ) -> Response[flows.ImportResult]:
        require(actor, "sponsor_finance", "sponsor_approver")
        limit = app_state.settings.max_upload_bytes
        return await write_upload(
            request,
            app_state.pool,
            actor,
            "statement file",
            lambda conn, data: flows.import_file(conn, actor, data, max_bytes=limit),
        )

    @get("/statements", summary="Imported statements, newest first")
    async def index(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        before_id: Annotated[
            int | None, Parameter(ge=1, description="cursor: the last id of the previous page")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> list[flows.StatementSummary]:
        out: list[flows.StatementSummary] = await in_transaction(
            app_state.pool, lambda conn: flows.list_statements(conn, actor, before_id=before_id, limit=limit)
        )
        return out

    @get("/statements/{statement_id:int}", summary="One statement: counts and the balance check")
    async def show(
        self, actor: Actor, app_state: NamedDependency[AppState], statement_id: int
    ) -> flows.StatementSummary:
        out: flows.StatementSummary = await in_transaction(
            app_state.pool, lambda conn: flows.get_statement(conn, actor, statement_id)
        )
        return out

    @get(
        "/statement-entries",
        summary="Statement entries with their match status; `state=unmatched` is the exceptions queue",
    )
    async def entries(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        statement_id: int | None = None,
        entry_state: Annotated[EntryState | None, QueryParameter(name="state")] = None,
        after_id: Annotated[int | None, Parameter(ge=0, description="cursor: the last id of the previous page")] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> list[flows.EntryOut]:
        out: list[flows.EntryOut] = await in_transaction(
            app_state.pool,
            lambda conn: flows.list_entries(
                conn, actor, statement_id=statement_id, state=entry_state, after_id=after_id, limit=limit
            ),
        )
        return out

    @post(
        "/statement-entries/{entry_id:int}/resolve",
        summary="Resolve an unmatched entry: match it to a payment or a fund top-up, book it as outside the "
        "scheme, or ignore it",
        description="`reason` is required and kept with who and when in the audit trail. A debit matched to a "
        "payment books it; a credit matched to a booked payment is a return; a credit matched to a fund is a "
        "top-up. A line that covers several payments is matched with `payment_ids`; their amounts must add up "
        "to the line's (409 `amount_differs`, nothing booked), except a return of one payment that came back "
        "short: the difference is booked as bank charges and the supplier is owed the whole payment. "
        "`book_external` with a `category` "
        "(`bank_charges`, `interest`, `own_transfer`) books a movement that is no part of the scheme against "
        "`external:<category>`, so the ledger's bank account still equals the bank's; `ignore` books nothing, "
        "and the bank account then differs from the statement by that amount.",
        status_code=200,
    )
    async def resolve(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        entry_id: int,
        data: ResolveIn,
    ) -> Response[flows.EntryOut]:
        require(actor, "sponsor_finance", "sponsor_approver")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.resolve(
                conn,
                actor,
                entry_id,
                action=data.action,
                reason=data.reason,
                payment_id=data.payment_id,
                payment_ids=data.payment_ids,
                fund_id=data.fund_id,
                category=data.category,
            ),
            status=200,
        )
