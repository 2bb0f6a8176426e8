"""The books' reports as tables, for CSV, XLSX and PDF (``settlement.reports.formats``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from ledger.rollup import start_of
from settlement.books.flows import FundReport, Journal, SupplierStatement, TrialBalance
from settlement.errors import ValidationFailed
from settlement.reports.formats import Column, Table, to_csv, to_pdf, to_xlsx

Format = Literal["json", "csv", "xlsx", "pdf"]
MEDIA = {
    "csv": "text/csv",  # litestar adds "; charset=utf-8" to every text/* type
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def journal_tables(j: Journal) -> list[Table]:
    rows = [
        {
            "seq": e.seq,
            "recorded_at": e.recorded_at,
            "value_date": e.value_date,
            "entry": e.id,
            "description": e.description,
            "debit": t.debit,
            "credit": t.credit,
            "amount": t.amount,
            "kind": t.kind,
            "code": t.code,
        }
        for e in j.entries
        for t in e.transfers
    ]
    return [
        Table(
            title=f"Journal {j.date_from} to {j.date_to}",
            columns=(
                Column(key="seq", title="Seq", kind="int"),
                Column(key="recorded_at", title="Recorded", kind="datetime"),
                Column(key="value_date", title="Value date", kind="date"),
                Column(key="entry", title="Entry"),
                Column(key="description", title="Description"),
                Column(key="debit", title="Debit account"),
                Column(key="credit", title="Credit account"),
                Column(key="amount", title="Amount", kind="cents"),
                Column(key="kind", title="Kind"),
                Column(key="code", title="Code"),
            ),
            rows=rows,
            totals={"description": "Total posted", "amount": j.total_debit},
        )
    ]


def trial_balance_tables(tb: TrialBalance) -> list[Table]:
    return [
        Table(
            title=f"Trial balance as of {tb.as_of}",
            columns=(
                Column(key="code", title="Account"),
                Column(key="name", title="Name"),
                Column(key="debit", title="Debit", kind="cents"),
                Column(key="credit", title="Credit", kind="cents"),
            ),
            rows=[{"code": x.code, "name": x.name, "debit": x.debit, "credit": x.credit} for x in tb.lines],
            totals={"code": "Total", "debit": tb.total_debit, "credit": tb.total_credit},
        )
    ]


_FUND_COLUMNS = (
    ("granted", "Granted"),
    ("returned_to_sources", "Returned to sources"),
    ("issued", "Issued"),
    ("returned_to_fund", "Returned to fund"),
    ("reserved", "Reserved (now)"),
    ("redeemed", "Redeemed"),
    ("paid", "Paid"),
    ("in_payout", "In payout"),
    ("open_payable", "Not yet paid out"),
    ("available", "Available (now)"),
)


def fund_report_tables(r: FundReport) -> list[Table]:
    funds = Table(
        title=f"Funds {r.date_from} to {r.date_to}",
        columns=(
            Column(key="code", title="Fund"),
            Column(key="name", title="Name"),
            *(Column(key=k, title=t, kind="cents") for k, t in _FUND_COLUMNS),
            Column(key="vouchers", title="Vouchers", kind="int"),
            Column(key="beneficiaries", title="Children reached", kind="int"),
            Column(key="provisions", title="Provisions", kind="int"),
            Column(key="closed_at", title="Closed", kind="datetime"),
        ),
        rows=[
            {
                "code": f.code,
                "name": f.name,
                **{k: getattr(f, k) for k, _ in _FUND_COLUMNS},
                "vouchers": f.vouchers,
                "beneficiaries": f.beneficiaries,
                "provisions": f.provisions,
                "closed_at": f.closed_at,
            }
            for f in r.funds
        ],
        totals={"code": "Total", **{k: sum(getattr(f, k) for f in r.funds) for k, _ in _FUND_COLUMNS}},
    )
    sources = Table(
        title="By funding source",
        columns=(
            Column(key="fund", title="Fund"),
            Column(key="source", title="Source"),
            Column(key="name", title="Name"),
            Column(key="granted", title="Granted", kind="cents"),
            Column(key="returned", title="Returned", kind="cents"),
            Column(key="received", title="Received", kind="cents"),
        ),
        rows=[
            {
                "fund": f.code,
                "source": s.source,
                "name": s.name,
                "granted": s.granted,
                "returned": s.returned,
                "received": s.received,
            }
            for f in r.funds
            for s in f.by_source
        ],
    )
    categories = Table(
        title="By supplier category",
        columns=(
            Column(key="fund", title="Fund"),
            Column(key="category", title="Category"),
            Column(key="redeemed", title="Redeemed", kind="cents"),
            Column(key="redemptions", title="Redemptions", kind="int"),
            Column(key="suppliers", title="Suppliers", kind="int"),
        ),
        rows=[
            {
                "fund": f.code,
                "category": c.category,
                "redeemed": c.redeemed,
                "redemptions": c.redemptions,
                "suppliers": c.suppliers,
            }
            for f in r.funds
            for c in f.by_category
        ],
    )
    return [funds, sources, categories]


def supplier_statement_tables(s: SupplierStatement) -> list[Table]:
    return [
        Table(
            title=f"{s.supplier_name}: {s.date_from} to {s.date_to}",
            columns=(
                Column(key="at", title="Date", kind="datetime"),
                Column(key="kind", title="What"),
                Column(key="reference", title="Reference"),
                Column(key="voucher_code", title="Voucher"),
                Column(key="sponsor", title="Paid by"),
                Column(key="amount", title="Amount", kind="cents"),
                Column(key="covers", title="Covers"),
            ),
            rows=[
                # the balance brought forward: the lines and it add up to the closing total
                {"at": start_of(s.date_from), "kind": "opening_balance", "amount": s.opening_balance},
                *(
                    {
                        "at": x.at,
                        "kind": x.kind,
                        "reference": x.reference,
                        "voucher_code": x.voucher_code or "",
                        "sponsor": x.sponsor,
                        "amount": x.amount,
                        "covers": " ".join(x.covers),
                    }
                    for x in s.lines
                ),
            ],
            totals={"kind": "Closing balance", "amount": s.closing_balance},
        )
    ]


def render(fmt: str, tables: list[Table], *, title: str, subtitle: str = "") -> bytes:
    if fmt == "csv":  # one table per CSV: the report's main table (XLSX and PDF carry all of them)
        return to_csv(tables[0])
    if fmt == "xlsx":
        return to_xlsx(tables, title=title)
    if fmt == "pdf":
        return to_pdf(tables, title=title, subtitle=subtitle, generated_at=datetime.now(UTC))
    raise ValidationFailed(
        "format must be json, csv, xlsx or pdf", code="format_invalid", errors=[{"field": "format", "message": fmt}]
    )
