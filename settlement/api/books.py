"""Books for accountants and councils: journal, trial balance, XAF, fund report,
supplier statement, trace, sample, checks, audit trail. Read-only: every write
an auditor token attempts anywhere answers 403."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import Parameter, QueryParameter

from settlement.api.deps import ACTOR
from settlement.auth import Actor
from settlement.books import flows, tables
from settlement.state import AppState
from settlement.tx import in_transaction

Format = Literal["json", "csv", "xlsx", "pdf"]
FromDate = Annotated[date, QueryParameter(name="from", description="first day (local), inclusive")]
ToDate = Annotated[date, QueryParameter(name="to", description="last day (local), inclusive")]


def _file(fmt: str, data: bytes, stem: str) -> Response[bytes]:
    return Response(
        content=data,
        media_type=tables.MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"', "Cache-Control": "no-store"},
    )


class BooksController(Controller):
    path = "/v1/books"
    tags = ["books"]  # noqa: RUF012
    dependencies = ACTOR

    @get("/journal", summary="The journal of the sponsor's ledger for a period (JSON, CSV, XLSX, PDF)")
    async def journal(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        date_from: FromDate,
        date_to: ToDate,
        format: Format = "json",
    ) -> Any:
        j: flows.Journal = await in_transaction(
            app_state.pool, lambda conn: flows.journal(conn, actor, date_from, date_to)
        )
        if format == "json":
            return j
        data = tables.render(format, tables.journal_tables(j), title="Journal", subtitle=f"{date_from} - {date_to}")
        return _file(format, data, f"journal-{date_from}-{date_to}")

    @get(
        "/trial-balance",
        summary="Trial balance as of the end of a day (JSON, CSV, XLSX, PDF); debits equal credits",
    )
    async def trial_balance(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        as_of: date,
        format: Format = "json",
    ) -> Any:
        tb: flows.TrialBalance = await in_transaction(
            app_state.pool, lambda conn: flows.trial_balance(conn, actor, as_of)
        )
        if format == "json":
            return tb
        data = tables.render(format, tables.trial_balance_tables(tb), title="Trial balance", subtitle=str(as_of))
        return _file(format, data, f"trial-balance-{as_of}")

    @get(
        "/auditfile",
        summary="XML Auditfile Financieel 3.2 of a fiscal year (validated against its XSD)",
        media_type="application/xml",
    )
    async def auditfile(
        self, actor: Actor, app_state: NamedDependency[AppState], year: Annotated[int, Parameter(ge=2000, le=2100)]
    ) -> Response[bytes]:
        from settlement.books.xaf import auditfile

        data: bytes = await in_transaction(app_state.pool, lambda conn: auditfile(conn, actor, year))
        return Response(
            content=data,
            media_type="application/xml",
            headers={
                "Content-Disposition": f'attachment; filename="auditfile-{year}.xaf"',
                "Cache-Control": "no-store",
            },
        )

    @get(
        "/fund-report",
        summary="Per fund and funding source: granted, issued, reserved, redeemed, paid, returned, available; "
        "by supplier category; reach (JSON, CSV, XLSX, PDF)",
    )
    async def fund_report(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        date_from: FromDate,
        date_to: ToDate,
        format: Format = "json",
    ) -> Any:
        r: flows.FundReport = await in_transaction(
            app_state.pool, lambda conn: flows.fund_report(conn, actor, date_from, date_to)
        )
        if format == "json":
            return r
        data = tables.render(
            format, tables.fund_report_tables(r), title="Fund report", subtitle=f"{date_from} - {date_to}"
        )
        return _file(format, data, f"fund-report-{date_from}-{date_to}")

    @get(
        "/supplier-statement/{supplier_id:int}",
        summary="A supplier's statement: every redemption, refund and payment, what each payment covered, "
        "the open balance (the supplier itself, or a sponsor for its own part)",
    )
    async def supplier_statement(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        supplier_id: int,
        date_from: FromDate,
        date_to: ToDate,
        format: Format = "json",
    ) -> Any:
        s: flows.SupplierStatement = await in_transaction(
            app_state.pool, lambda conn: flows.supplier_statement(conn, actor, supplier_id, date_from, date_to)
        )
        if format == "json":
            return s
        data = tables.render(
            format, tables.supplier_statement_tables(s), title=s.supplier_name, subtitle=f"{date_from} - {date_to}"
        )
        return _file(format, data, f"statement-{supplier_id}-{date_from}-{date_to}")

    @get(
        "/trace/{redemption_id:uuid}",
        summary="From a redemption to its bank line and back, with the ledger entries of each step",
    )
    async def trace(self, actor: Actor, app_state: NamedDependency[AppState], redemption_id: uuid.UUID) -> flows.Trace:
        out: flows.Trace = await in_transaction(app_state.pool, lambda conn: flows.trace(conn, actor, redemption_id))
        return out

    @get(
        "/sample",
        summary="A reproducible random sample of redemptions with their full traces (same seed, same sample)",
    )
    async def sample(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        date_from: FromDate,
        date_to: ToDate,
        seed: Annotated[str, Parameter(min_length=1, max_length=100)],
        n: Annotated[int, Parameter(ge=1, le=flows.MAX_SAMPLE)] = 25,
    ) -> flows.Sample:
        out: flows.Sample = await in_transaction(
            app_state.pool, lambda conn: flows.sample(conn, actor, n, seed, date_from, date_to)
        )
        return out

    @get(
        "/checks/repeat-beneficiaries",
        summary="Beneficiaries (pseudonymous references) with several vouchers from one fund in a period",
        description=f"At most {flows.MAX_LIST} hits; beyond that 422 period_too_large (ask for a shorter period), "
        "never a cut list.",
    )
    async def repeat_beneficiaries(
        self, actor: Actor, app_state: NamedDependency[AppState], date_from: FromDate, date_to: ToDate
    ) -> list[flows.RepeatBeneficiary]:
        out: list[flows.RepeatBeneficiary] = await in_transaction(
            app_state.pool, lambda conn: flows.repeat_beneficiaries(conn, actor, date_from, date_to)
        )
        return out

    @get("/audit-trail", summary="The sponsor's audit trail: who did what, when, from which token, before and after")
    async def audit_trail(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        after_id: Annotated[int, Parameter(ge=0, description="cursor: the last id of the previous page")] = 0,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
        action: str | None = None,
        subject: Annotated[str | None, Parameter(description="type:id, e.g. payout_run:3")] = None,
    ) -> list[flows.AuditLine]:
        out: list[flows.AuditLine] = await in_transaction(
            app_state.pool,
            lambda conn: flows.audit_trail(conn, actor, after_id=after_id, limit=limit, action=action, subject=subject),
        )
        return out
