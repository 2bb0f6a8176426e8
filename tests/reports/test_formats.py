"""Tables as CSV, XLSX and PDF: read back with the tools people use, amounts exact to the cent."""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from ledger.money import parse_decimal
from settlement.reports import formats
from settlement.reports.formats import (
    PDF_BODY_TOP,
    PDF_BOTTOM_MARGIN,
    PDF_HEADER_H,
    PDF_ROW_H,
    PDF_TITLE_H,
    Column,
    ReportTooLarge,
    Table,
    format_eur,
    sheet_name,
    to_csv,
    to_pdf,
    to_xlsx,
)

GENERATED = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
COLUMNS = (
    Column(key="supplier", title="Supplier"),
    Column(key="payments", title="Payments", kind="int"),
    Column(key="amount", title="Amount", kind="cents"),
    Column(key="booked", title="Booked", kind="date"),
    Column(key="exported_at", title="Exported", kind="datetime"),
)
ROWS: list[dict[str, Any]] = [
    {
        "supplier": "Fietsenwinkel De Spaak",
        "payments": 3,
        "amount": 123_456,
        "booked": date(2026, 3, 2),
        "exported_at": datetime(2026, 3, 1, 15, 0, tzinfo=UTC),
    },
    {"supplier": "Café Zoë & Zn.", "payments": 1, "amount": 1, "booked": date(2026, 3, 3), "exported_at": None},
    {"supplier": "Sportclub Ĳsselvogels", "payments": 2, "amount": -250, "booked": None, "exported_at": None},
    {"supplier": "Bibliotheek", "payments": 0, "amount": 0, "booked": None, "exported_at": None},
]
TOTAL = 123_456 + 1 - 250 + 0
PAYOUTS = Table(title="Payouts March 2026", columns=COLUMNS, rows=ROWS, totals={"payments": 6, "amount": TOTAL})


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


# --- format_eur -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (0, "€ 0,00"),
        (1, "€ 0,01"),
        (-1, "-€ 0,01"),
        (99, "€ 0,99"),
        (100, "€ 1,00"),
        (123_456, "€ 1.234,56"),
        (-123_456, "-€ 1.234,56"),
        (123_456_789, "€ 1.234.567,89"),
        (10**17, "€ 1.000.000.000.000.000,00"),
    ],
)
def test_format_eur(cents: int, text: str) -> None:
    assert format_eur(cents) == text


@pytest.mark.parametrize("bad", [1.5, Decimal("1.50"), True, "100"])
def test_format_eur_takes_int_cents_only(bad: Any) -> None:
    with pytest.raises(TypeError):
        format_eur(bad)


# --- CSV ------------------------------------------------------------------------------------


def test_csv_round_trip_is_exact() -> None:
    data = to_csv(PAYOUTS)
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM that makes Excel read UTF-8
    assert b"\r\n" in data
    header, *body, totals = read_csv(data)
    assert header == ["Supplier", "Payments", "Amount", "Booked", "Exported"]
    assert [r[0] for r in body] == [r["supplier"] for r in ROWS]
    assert [parse_decimal(r[2]) for r in body] == [r["amount"] for r in ROWS]
    assert [r[2] for r in body] == ["1234.56", "0.01", "-2.50", "0.00"]
    assert body[0][3:] == ["2026-03-02", "2026-03-01T15:00:00+00:00"]
    assert body[2][3:] == ["", ""]
    assert totals == ["Total", "6", "1232.07", "", ""]
    assert parse_decimal(totals[2]) == sum(parse_decimal(r[2]) for r in body)


def test_csv_neutralises_formulas_in_text_but_not_numbers() -> None:
    evil = ['=HYPERLINK("http://x")', "+31 6 1234", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "safe = fine"]
    table = Table(
        title="t",
        columns=(Column(key="t", title="=Title"), Column(key="c", title="Amount", kind="cents")),
        rows=[{"t": e, "c": -500} for e in evil],
    )
    header, *body = read_csv(to_csv(table))
    assert header == ["'=Title", "Amount"]
    assert [r[0] for r in body] == ["'" + e for e in evil[:-1]] + ["safe = fine"]
    assert {r[1] for r in body} == {"-5.00"}  # a negative amount stays a number


def test_values_must_match_their_column_kind() -> None:
    for kind, bad in [("cents", 12.5), ("cents", Decimal("12.50")), ("int", True), ("date", GENERATED)]:
        table = Table(title="t", columns=(Column(key="v", title="V", kind=kind),), rows=[{"v": bad}])  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            to_csv(table)
    with pytest.raises(ValueError, match="unknown columns"):
        to_csv(Table(title="t", columns=COLUMNS, rows=[], totals={"amonut": 1}))


# --- XLSX -----------------------------------------------------------------------------------


def test_xlsx_sheets_headers_exact_amounts_and_totals() -> None:
    formula_row = {"supplier": "=1+1", "payments": 0, "amount": 5, "booked": None, "exported_at": None}
    second = Table(title="Payouts March 2026", columns=COLUMNS, rows=[formula_row])  # same title: renamed
    wb = load_workbook(io.BytesIO(to_xlsx([PAYOUTS, second], title="Payouts")))
    assert wb.sheetnames == ["Payouts March 2026", "Payouts March 2026 (2)"]
    assert wb.properties.title == "Payouts"
    ws = wb["Payouts March 2026"]
    assert ws.freeze_panes == "A2"
    header = ws[1]
    assert [c.value for c in header] == ["Supplier", "Payments", "Amount", "Booked", "Exported"]
    assert all(c.font.b for c in header)

    rows = list(ws.iter_rows(min_row=2))
    assert len(rows) == len(ROWS) + 1
    *body, totals = rows
    for cells, expected in zip(body, ROWS, strict=True):
        amount = cells[2]
        assert amount.number_format == "#,##0.00"
        assert Decimal(str(amount.value)) == Decimal(expected["amount"]) / 100
    assert body[0][3].value.date() == date(2026, 3, 2)  # a real date, shown dd-mm-yyyy
    assert body[0][3].number_format == "dd-mm-yyyy"
    assert body[0][4].value == datetime(2026, 3, 1, 16, 0)  # 15:00 UTC is 16:00 in Amsterdam in March
    assert [c.value for c in totals][:3] == ["Total", 6, pytest.approx(TOTAL / 100)]
    assert Decimal(str(totals[2].value)) == sum(Decimal(str(c[2].value)) for c in body) == Decimal(TOTAL) / 100
    assert all(c.font.b for c in totals)

    formula = wb["Payouts March 2026 (2)"]["A2"]
    assert formula.value == "=1+1"
    assert formula.data_type == "s"  # stored as text, never evaluated


def test_xlsx_stores_amounts_as_exact_decimal_text() -> None:
    with zipfile.ZipFile(io.BytesIO(to_xlsx([PAYOUTS], title="t"))) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    values = re.findall(r'<c r="C\d+"[^>]*><v>([^<]*)</v>', sheet)
    assert values == ["1234.56", "0.01", "-2.5", "0", "1232.07"]


def test_xlsx_streams_a_generator_of_rows() -> None:
    def rows() -> Iterator[dict[str, Any]]:
        for i in range(5_000):
            yield {"supplier": f"s{i}", "payments": i, "amount": i * 7}

    wb = load_workbook(
        io.BytesIO(to_xlsx([Table(title="big", columns=COLUMNS, rows=rows())], title="t")), read_only=True
    )
    rows_read = list(wb["big"].iter_rows(values_only=True))
    assert len(rows_read) == 5_001
    assert rows_read[-1][:3] == ("s4999", 4_999, pytest.approx(4_999 * 7 / 100))


def test_sheet_names_are_valid_and_unique() -> None:
    taken: set[str] = set()
    names = [
        sheet_name(t, taken) for t in ["a/b:c*d?e[f]g\\h", "x" * 40, "x" * 40, "'quoted'", "", "", "History", "SHEET"]
    ]
    assert names == [
        "abcdefgh",
        "x" * 31,
        "x" * 27 + " (2)",
        "quoted",
        "Sheet",
        "Sheet (2)",
        "History (2)",
        "SHEET (3)",
    ]
    assert all(len(n) <= 31 for n in names)


# --- PDF ------------------------------------------------------------------------------------


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def expected_pages(rows: int, page_height: int) -> int:
    """From the layout constants: the first page carries the table title, later pages only its header."""
    body = page_height - PDF_BOTTOM_MARGIN - PDF_BODY_TOP
    first = (body - PDF_TITLE_H - PDF_HEADER_H) // PDF_ROW_H
    later = (body - PDF_HEADER_H) // PDF_ROW_H
    return 1 if rows <= first else 1 + math.ceil((rows - first) / later)


def many(n: int) -> list[dict[str, Any]]:
    return [{"supplier": f"Leverancier {i}", "payments": i, "amount": i * 1234} for i in range(n)]


@pytest.mark.parametrize("n", [1, 39, 40, 1000])
def test_pdf_pages_for_a_long_table(n: int) -> None:
    pdf = to_pdf([Table(title="Payouts", columns=COLUMNS, rows=many(n))], title="Payout report", generated_at=GENERATED)
    assert pdf.startswith(b"%PDF-")
    assert page_count(pdf) == expected_pages(n, 297)
    assert b"/Title (Payout report)" in pdf
    assert b"/MediaBox [0 0 595.28 841.89]" in pdf  # A4 portrait for five columns


def test_pdf_goes_landscape_for_many_columns() -> None:
    wide = tuple(Column(key=f"c{i}", title=f"Column {i}", kind="cents") for i in range(9))
    pdf = to_pdf([Table(title="Wide", columns=wide, rows=[{"c0": 1}] * 200)], title="Wide", generated_at=GENERATED)
    assert b"/MediaBox [0 0 841.89 595.28]" in pdf
    assert page_count(pdf) == expected_pages(200, 210)


def decompressed_text(pdf: bytes) -> bytes:
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
    out = []
    for s in streams:
        try:
            out.append(zlib.decompress(s))
        except zlib.error:
            continue
    return b"\n".join(out)


def test_pdf_with_the_core_font_numbers_pages_and_spells_the_euro(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "find_unicode_font", lambda: None)  # a system without DejaVu
    table = Table(title="Payouts", columns=COLUMNS, rows=many(100) + ROWS, totals={"amount": 5})
    pdf = to_pdf([table], title="Payout report", subtitle="Stichting Leergeld – Zwolle", generated_at=GENERATED)
    text = decompressed_text(pdf)
    pages = page_count(pdf)
    assert pages == expected_pages(len(ROWS) + 100 + 1, 297)  # + the totals row
    # fpdf writes the page total as its own string after the "{nb}" alias is replaced
    footers = re.findall(rb"\(page (\d+) of (?:\) Tj \()?(\d+)\)", text)
    assert [(int(a), int(b)) for a, b in footers] == [(i, pages) for i in range(1, pages + 1)]
    assert b"(EUR 1.234,56)" in text
    assert b"(-EUR 2,50)" in text
    assert b"Stichting Leergeld - Zwolle" in text
    assert "Café Zoë & Zn.".encode("latin-1") in text
    assert b"(Sportclub IJsselvogels)" in text
    assert b"(Generated 02-03-2026 09:30 CET)" in text


def test_pdf_prints_an_empty_table_and_a_generator() -> None:
    def rows() -> Iterator[dict[str, Any]]:
        yield from many(120)

    tables = [Table(title="Empty", columns=COLUMNS, rows=[]), Table(title="Gen", columns=COLUMNS, rows=rows())]
    pdf = to_pdf(tables, title="Two tables", generated_at=GENERATED)
    assert pdf.startswith(b"%PDF-")
    assert page_count(pdf) >= 3


def test_limits_are_refused() -> None:
    wide = tuple(Column(key=f"c{i}", title="c") for i in range(formats.MAX_PDF_COLUMNS + 1))
    with pytest.raises(ReportTooLarge):
        to_pdf([Table(title="w", columns=wide, rows=[])], title="t", generated_at=GENERATED)
    with pytest.raises(ValueError, match="at least one"):
        to_xlsx([], title="t")


# --- property: every format sums to the cent ------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=-(10**13), max_value=10**13), max_size=60))
def test_csv_and_xlsx_sum_exactly_to_the_integer_total(amounts: list[int]) -> None:
    total = sum(amounts)
    table = Table(
        title="amounts",
        columns=(Column(key="n", title="N", kind="int"), Column(key="a", title="Amount", kind="cents")),
        rows=[{"n": i, "a": a} for i, a in enumerate(amounts)],
        totals={"a": total},
    )
    *body, totals = read_csv(to_csv(table))[1:]
    assert [parse_decimal(r[1]) for r in body] == amounts
    assert sum(parse_decimal(r[1]) for r in body) == parse_decimal(totals[1]) == total

    ws = load_workbook(io.BytesIO(to_xlsx([table], title="t")))["amounts"]
    values = [Decimal(str(c.value)) for (c,) in ws.iter_rows(min_row=2, min_col=2, max_col=2)]
    *cells, total_cell = values
    assert [v * 100 for v in cells] == amounts
    assert sum(cells, Decimal(0)) == total_cell == Decimal(total) / 100
