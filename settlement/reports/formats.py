"""A ``Table`` as CSV, XLSX or PDF: the same columns, values and totals row in each.

Values by column kind, as the rows must give them (``None``: empty cell):

    text      any value, shown as ``str(value)``
    cents     int cents (never float: ``TypeError``)
    int       int
    date      ``datetime.date`` (not a datetime)
    datetime  ``datetime.datetime``; aware ones are shown in Dutch time
              (Europe/Amsterdam) in XLSX and PDF, and keep their offset in CSV

Choices, per format
    CSV   For programs first: UTF-8 *with* a BOM (Excel then reads é and €
          right instead of guessing a code page; Python reads it with
          ``encoding="utf-8-sig"``), comma separated, CRLF (RFC 4180), cents
          as ``1234.56`` (point, no thousands separator), dates ISO 8601.
          Excel with Dutch regional settings expects ``;`` and puts a comma
          file in one column; people who want a spreadsheet get the XLSX.
          Text cells starting with ``= + - @`` tab or CR get a leading ``'``
          so no spreadsheet runs them as a formula (OWASP "CSV injection");
          numbers and dates are ours and never start with anything but a
          digit or ``-`` of a negative number, so they stay numbers. Only
          the header and rows, no title.
    XLSX  One sheet per table (names cleaned of ``[]:*?/\\``, at most 31
          characters, unique), header bold and frozen, cents as exact
          ``Decimal`` euros with ``#,##0.00``, dates as dates
          (``dd-mm-yyyy``), totals row bold. openpyxl's write-only mode, so a
          large table streams. Text is stored typed as text, never as a
          formula, so it needs no ``'`` prefix.
    PDF   For printing: A4, landscape above six columns; on every page the
          title, subtitle and generation time, the table header repeated
          after each page break, "page X of Y" at the foot. Amounts right
          aligned as ``€ 1.234,56``, counts as ``1.234``, dates ``dd-mm-yyyy``;
          text too wide for its column is cut with an ellipsis. DejaVu Sans (Condensed) is embedded when
          the system has it; otherwise the core Helvetica font, which only
          covers latin-1: ``€`` becomes ``EUR``, typographic quotes and dashes
          plain ones, accents it cannot draw are dropped (``ł`` becomes ``?``).
          No network, ever.

A table's ``rows`` may be a generator: each writer reads it once (so a
generator serves one format only). Rows may carry keys no column names;
``totals`` may not (a typo would silently lose a sum).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from fpdf import FPDF
from fpdf.fonts import TTFFont
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

ColumnKind = Literal["text", "cents", "int", "date", "datetime"]
KINDS: frozenset[str] = frozenset({"text", "cents", "int", "date", "datetime"})

# Limits: a named bound on everything, refused loudly when exceeded.
MAX_TABLES = 100  # sheets in one workbook, tables in one PDF
MAX_COLUMNS = 100
MAX_CSV_ROWS = 10_000_000
MAX_XLSX_ROWS = 1_048_576 - 2  # Excel's row limit, less the header and totals rows
MAX_PDF_ROWS = 50_000  # about 1,250 pages and 25 s; nobody prints more
MAX_PDF_COLUMNS = 20
MAX_CELL_TEXT = 32_767  # Excel's limit per cell, applied to every format
MAX_REPORT_CENTS = 10**18  # far beyond any total; keeps Decimal(cents) / 100 exact
SHEET_NAME_MAX = 31

CENTS_FORMAT = "#,##0.00"
DATE_FORMAT = "dd-mm-yyyy"
DATETIME_FORMAT = "dd-mm-yyyy hh:mm"
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


class ReportTooLarge(ValueError):
    """A table over one of the limits above."""


class Column(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    title: str
    kind: ColumnKind = "text"


class Table(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    columns: tuple[Column, ...]
    rows: Iterable[Mapping[str, Any]]  # a Sequence, or a generator read once
    totals: Mapping[str, Any] | None = None  # column key -> value, e.g. sums of the cents columns
    totals_label: str = "Total"  # goes in the first column the totals leave empty


# --- values ---------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_eur(cents: int) -> str:
    """Dutch euro text: 123456 -> '€ 1.234,56', -1 -> '-€ 0,01'. Integer arithmetic only."""
    if not _is_int(cents):
        raise TypeError(f"amounts are int cents, got {type(cents).__name__}")
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}€ {_thousands(whole)},{frac:02d}"


def _thousands(n: int) -> str:
    return f"{n:,}".replace(",", ".")


def _decimal_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def _euros(cents: int) -> Decimal:
    # Exact: at most 18 digits, and decimal's default context keeps 28.
    return Decimal(cents) / 100


def _check_table(table: Table) -> None:
    if not table.columns:
        raise ValueError(f"table {table.title!r} has no columns")
    if len(table.columns) > MAX_COLUMNS:
        raise ReportTooLarge(f"table {table.title!r}: {len(table.columns)} columns, at most {MAX_COLUMNS}")
    keys = [c.key for c in table.columns]
    if len(set(keys)) != len(keys):
        raise ValueError(f"table {table.title!r}: column keys repeat: {keys}")
    for c in table.columns:
        if c.kind not in KINDS:
            raise ValueError(f"column {c.key!r}: kind {c.kind!r} is not one of {sorted(KINDS)}")
    if table.totals is not None and not set(table.totals) <= set(keys):
        raise ValueError(f"table {table.title!r}: totals name unknown columns {sorted(set(table.totals) - set(keys))}")


def _value(kind: str, key: str, raw: Any) -> Any:
    """The row's value checked against its column kind (None stays None)."""
    if raw is None:
        return None
    if kind == "text":
        return raw if isinstance(raw, str) else str(raw)
    if kind in ("cents", "int"):
        if not _is_int(raw):
            raise TypeError(f"column {key!r} ({kind}): {raw!r} is not an int")
        if kind == "cents" and abs(raw) > MAX_REPORT_CENTS:
            raise ValueError(f"column {key!r}: {raw} cents is beyond {MAX_REPORT_CENTS}")
        return raw
    if kind == "date":
        if not isinstance(raw, date) or isinstance(raw, datetime):
            raise TypeError(f"column {key!r} (date): {raw!r} is not a date")
        return raw
    if not isinstance(raw, datetime):
        raise TypeError(f"column {key!r} (datetime): {raw!r} is not a datetime")
    return raw


def _row(columns: Sequence[Column], row: Mapping[str, Any]) -> list[Any]:
    return [_value(c.kind, c.key, row.get(c.key)) for c in columns]


def _totals(table: Table) -> tuple[list[str], list[Any]] | None:
    """(kinds, values) of the totals row: the label, as text, in the first column the totals leave empty."""
    if table.totals is None:
        return None
    kinds: list[str] = [c.kind for c in table.columns]
    values = _row(table.columns, table.totals)
    for i, c in enumerate(table.columns):
        if c.key not in table.totals:
            kinds[i] = "text"
            values[i] = table.totals_label
            break
    return kinds, values


@cache
def _report_tz() -> tzinfo:
    try:
        return ZoneInfo("Europe/Amsterdam")
    except ZoneInfoNotFoundError:  # a system without tzdata: UTC, labelled as such, is never wrong
        return UTC


def _local(value: datetime) -> datetime:
    """Aware -> wall time in Dutch time without tzinfo (what Excel and a printed page can show)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(_report_tz()).replace(tzinfo=None)


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clip(text: str) -> str:
    return _CONTROL.sub("", text)[:MAX_CELL_TEXT]


def _neutralise(text: str) -> str:
    """Defuse spreadsheet formulas in text cells (CSV injection)."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


# --- CSV ------------------------------------------------------------------------------------


def _csv_cell(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "text":
        return _neutralise(_clip(value))
    if kind == "cents":
        return _decimal_text(value)
    if kind == "int":
        return str(value)
    return str(value.isoformat())


def to_csv(table: Table) -> bytes:
    """UTF-8 with BOM, comma separated, CRLF; see the module docstring."""
    _check_table(table)
    kinds = [c.kind for c in table.columns]
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([_neutralise(_clip(c.title)) for c in table.columns])
    for n, row in enumerate(table.rows, start=1):
        if n > MAX_CSV_ROWS:
            raise ReportTooLarge(f"table {table.title!r}: more than {MAX_CSV_ROWS} rows")
        writer.writerow([_csv_cell(k, v) for k, v in zip(kinds, _row(table.columns, row), strict=True)])
    totals = _totals(table)
    if totals is not None:
        writer.writerow([_csv_cell(k, v) for k, v in zip(*totals, strict=True)])
    return buf.getvalue().encode("utf-8")


# --- XLSX -----------------------------------------------------------------------------------

_SHEET_BAD = re.compile(r"[\[\]:*?/\\\x00-\x1f\x7f]")
_XLSX_BASE_WIDTH = {"text": 14, "cents": 14, "int": 10, "date": 12, "datetime": 17}
_XLSX_MAX_WIDTH = 60
_WIDTH_SAMPLE = 200  # rows looked at to size text columns, when rows is a Sequence


def sheet_name(title: str, taken: set[str]) -> str:
    """An Excel sheet name for ``title``, unique among ``taken`` (casefolded; updated)."""
    base = _SHEET_BAD.sub("", title).strip().strip("'").strip() or "Sheet"
    base = base[:SHEET_NAME_MAX].rstrip().rstrip("'")
    name, n = base, 2
    # "History" is reserved by Excel for its change tracking.
    while name.casefold() in taken or name.casefold() == "history":
        suffix = f" ({n})"
        name = base[: SHEET_NAME_MAX - len(suffix)].rstrip().rstrip("'") + suffix
        n += 1
    taken.add(name.casefold())
    return name


def _xlsx_widths(table: Table) -> list[float]:
    widths = [float(max(_XLSX_BASE_WIDTH[c.kind], len(c.title) + 3)) for c in table.columns]
    if isinstance(table.rows, Sequence):
        for row in islice(table.rows, _WIDTH_SAMPLE):
            for i, c in enumerate(table.columns):
                value = row.get(c.key)
                if c.kind == "text" and value is not None:
                    widths[i] = max(widths[i], len(str(value)) + 2)
                elif c.kind == "cents" and _is_int(value):
                    widths[i] = max(widths[i], len(f"{abs(value) // 100:,}") + 6)
    return [min(w, _XLSX_MAX_WIDTH) for w in widths]


def to_xlsx(tables: Sequence[Table], *, title: str) -> bytes:
    """One sheet per table; see the module docstring."""
    if not tables:
        raise ValueError("a workbook needs at least one table")
    if len(tables) > MAX_TABLES:
        raise ReportTooLarge(f"{len(tables)} tables, at most {MAX_TABLES}")
    for t in tables:
        _check_table(t)

    bold = Font(bold=True)
    wb = Workbook(write_only=True)
    wb.properties.title = ILLEGAL_CHARACTERS_RE.sub("", title)[:255]
    wb.properties.creator = "settlement"
    taken: set[str] = set()

    def cell(ws: Any, kind: str, value: Any, *, strong: bool = False) -> Any:
        if value is None:
            if not strong:
                return None
            c = WriteOnlyCell(ws, value=None)
        elif kind == "text":
            text = ILLEGAL_CHARACTERS_RE.sub("", value)[:MAX_CELL_TEXT]
            if not strong and not text.startswith("="):
                return text  # a plain value: no cell object needed
            c = WriteOnlyCell(ws, value=text)
            c.data_type = "s"  # typed text: "=..." is shown, never evaluated
        elif kind == "cents":
            c = WriteOnlyCell(ws, value=_euros(value))
            c.number_format = CENTS_FORMAT
        elif kind == "int":
            if not strong:
                return value
            c = WriteOnlyCell(ws, value=value)
        elif kind == "date":
            c = WriteOnlyCell(ws, value=value)
            c.number_format = DATE_FORMAT
        else:
            c = WriteOnlyCell(ws, value=_local(value))
            c.number_format = DATETIME_FORMAT
        if strong:
            c.font = bold
        return c

    for t in tables:
        ws = wb.create_sheet(title=sheet_name(t.title, taken))
        ws.freeze_panes = "A2"
        for i, width in enumerate(_xlsx_widths(t), start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
        ws.append([cell(ws, "text", c.title, strong=True) for c in t.columns])
        kinds = [c.kind for c in t.columns]
        for n, row in enumerate(t.rows, start=1):
            if n > MAX_XLSX_ROWS:
                raise ReportTooLarge(f"table {t.title!r}: more than {MAX_XLSX_ROWS} rows (Excel's limit)")
            ws.append([cell(ws, k, v) for k, v in zip(kinds, _row(t.columns, row), strict=True)])
        totals = _totals(t)
        if totals is not None:
            ws.append([cell(ws, k, v, strong=True) for k, v in zip(*totals, strict=True)])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --- PDF ------------------------------------------------------------------------------------

# Layout in mm. Integers, so fpdf's page-break arithmetic is exact and the
# number of rows a page holds is predictable (the tests count on it).
PDF_MARGIN = 12
PDF_TOP = 10
PDF_BODY_TOP = 32  # below the title, subtitle and generation lines
PDF_BOTTOM_MARGIN = 16  # the page-break line; the footer sits below it
PDF_TITLE_H = 8  # a table's title
PDF_HEADER_H = 7  # a table's header row (repeated on every page)
PDF_ROW_H = 6
PDF_GAP = 6  # between tables
PDF_CELL_PAD = 1  # text inset from a column's edges
PORTRAIT_MAX_COLUMNS = 6

_PDF_WEIGHT = {"text": 3.0, "cents": 2.0, "int": 1.2, "date": 1.6, "datetime": 2.4}
_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
)
_FONT_FILES = (
    ("DejaVuSansCondensed.ttf", "DejaVuSansCondensed-Bold.ttf"),
    ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
)
# Core-font fallback: what latin-1 lacks, spelled with what it has.
_LATIN1_SPELLING = str.maketrans(
    {
        "€": "EUR",
        "‘": "'",
        "’": "'",
        "‚": ",",
        "“": '"',
        "”": '"',
        "„": '"',
        "–": "-",
        "—": "-",
        "…": "...",
        "•": "*",
        "\u2009": " ",
        "\u202f": " ",
        "ĳ": "ij",
        "Ĳ": "IJ",
    }
)
_SPACE = re.compile(r"\s+")


def find_unicode_font() -> tuple[Path, Path] | None:
    """(regular, bold) DejaVu files on this system, or None (then the core font is used)."""
    for directory in _FONT_DIRS:
        for regular, bold in _FONT_FILES:
            if (directory / regular).is_file() and (directory / bold).is_file():
                return directory / regular, directory / bold
    return None


def _latin1(text: str) -> str:
    out = []
    for ch in text.translate(_LATIN1_SPELLING):
        if ord(ch) < 256:
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if ord(c) < 256 and not unicodedata.combining(c))
        out.append(base or "?")
    return "".join(out)


class _Doc(FPDF):
    """fpdf calls header() and footer() on every page; they draw the report's."""

    report: _Pdf

    def header(self) -> None:
        self.report.page_header()

    def footer(self) -> None:
        self.report.page_footer()


class _Pdf:
    """One report: the fpdf document, its font, and the table header to repeat after page breaks.

    Composition rather than a subclass of FPDF, whose many public names
    (``text``, ``title``, ...) ours would shadow. Table rows are drawn with
    fpdf's low-level ``text``/``rect``/``line`` and widths from the font's
    metrics: ``cell()`` costs ~160 us a call and ``get_string_width`` ~60 us,
    which made 10,000 rows of four columns take 20 s; this way about 5 s.
    """

    def __init__(self, *, title: str, subtitle: str, generated_at: datetime, landscape: bool) -> None:
        self.font_files = find_unicode_font()
        self.pdf = pdf = _Doc(orientation="L" if landscape else "P", unit="mm", format="A4")
        pdf.report = self
        if self.font_files is not None:
            pdf.add_font("report", "", str(self.font_files[0]))
            pdf.add_font("report", "B", str(self.font_files[1]))
            self.family = "report"
            regular, bold = pdf.fonts["report"], pdf.fonts["reportB"]
            assert isinstance(regular, TTFFont)
            assert isinstance(bold, TTFFont)
            # Characters both faces draw; anything else prints as "?" rather than as an empty box.
            self.glyphs: frozenset[int] = frozenset(regular.cmap) & frozenset(bold.cmap)
        else:
            self.family = "helvetica"
            self.glyphs = frozenset()
        self.ellipsis = self.text("…")
        self.title = self.text(title)
        self.subtitle = self.text(subtitle)
        stamp = generated_at
        zone = ""
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(_report_tz())
            zone = f" {stamp.tzname()}"
        self.generated = self.text(f"Generated {stamp:%d-%m-%Y %H:%M}{zone}")
        pdf.set_margins(PDF_MARGIN, PDF_TOP, PDF_MARGIN)
        pdf.set_auto_page_break(True, margin=PDF_BOTTOM_MARGIN)
        pdf.set_title(title)
        pdf.set_subject(subtitle)
        pdf.set_creator("settlement")
        pdf.set_creation_date(generated_at)
        self.metrics: dict[tuple[str, float], dict[str, float]] = {}
        # (width, align, text) of the current table's header, repeated after every page break.
        self.header_cells: list[tuple[float, str, str]] = []

    def text(self, value: str) -> str:
        """One line of text the font can draw."""
        value = _SPACE.sub(" ", _CONTROL.sub("", value)).strip()
        if self.family == "helvetica":
            return _latin1(value)
        return "".join(ch if ord(ch) in self.glyphs else "?" for ch in value)

    def _metrics(self) -> dict[str, float]:
        """Character widths in mm for the current font and size, filled as characters are met."""
        pdf = self.pdf
        font = pdf.current_font
        assert font is not None
        key = (font.fontkey, pdf.font_size_pt)
        table = self.metrics.get(key)
        if table is None:
            table = self.metrics[key] = {}
        return table

    def width(self, text: str) -> float:
        """Width in mm of ``text`` (already made drawable by ``text()``) in the current font.

        The sum of the characters' advance widths: what fpdf itself computes
        when text shaping is off, as it is here.
        """
        table = self._metrics()
        total = 0.0
        for ch in text:
            w = table.get(ch)
            if w is None:
                w = table[ch] = self._char_width(ch)
            total += w
        return total

    def _char_width(self, ch: str) -> float:
        font = self.pdf.current_font
        assert font is not None
        return float(font.get_text_width(ch, self.pdf.font_size_pt, None)[1]) / self.pdf.k

    def fit(self, text: str, width: float) -> str:
        """``text``, cut with an ellipsis if it is wider than a column ``width`` wide."""
        room = width - 2 * PDF_CELL_PAD
        if self.width(text) <= room:
            return text
        table = self._metrics()
        budget = room - self.width(self.ellipsis)
        used = 0.0
        for i, ch in enumerate(text):
            used += table[ch]  # measured by width() above
            if used > budget:
                return text[:i].rstrip() + self.ellipsis
        return text  # not reached: the whole text was wider than room

    def page_header(self) -> None:
        pdf = self.pdf
        pdf.set_xy(PDF_MARGIN, PDF_TOP)
        pdf.set_font(self.family, "B", 14)
        pdf.cell(0, 8, self.fit(self.title, pdf.epw), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(self.family, "", 10)
        pdf.cell(0, 5, self.fit(self.subtitle, pdf.epw), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(self.family, "", 8)
        pdf.set_text_color(90)
        pdf.cell(0, 5, self.generated, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
        pdf.set_draw_color(160)
        pdf.line(PDF_MARGIN, PDF_BODY_TOP - 2, pdf.w - PDF_MARGIN, PDF_BODY_TOP - 2)
        pdf.set_y(PDF_BODY_TOP)

    def page_footer(self) -> None:
        pdf = self.pdf
        pdf.set_y(-12)
        pdf.set_font(self.family, "", 8)
        pdf.set_text_color(90)
        pdf.cell(0, 6, self.fit(self.title, pdf.epw * 0.7), align="L")
        pdf.set_x(PDF_MARGIN)
        pdf.cell(0, 6, f"page {pdf.page_no()} of {{nb}}", align="R")
        pdf.set_text_color(0)

    def row(self, cells: Sequence[tuple[float, str, str]], height: float, *, fill: int | None, rule: str = "") -> None:
        """One table row at the current y: cells of (width, align, text), optional grey fill and rule lines."""
        pdf = self.pdf
        x, y = float(pdf.l_margin), float(pdf.y)
        total = sum(w for w, _, _ in cells)
        if fill is not None:
            pdf.set_fill_color(fill)
            pdf.rect(x, y, total, height, style="F")
        baseline = y + 0.5 * height + 0.3 * pdf.font_size
        for w, align, text in cells:
            if text:
                tx = x + w - PDF_CELL_PAD - self.width(text) if align == "R" else x + PDF_CELL_PAD
                pdf.text(tx, baseline, text)
            x += w
        if "T" in rule:
            pdf.line(pdf.l_margin, y, pdf.l_margin + total, y)
        if "B" in rule:
            pdf.line(pdf.l_margin, y + height, pdf.l_margin + total, y + height)
        pdf.set_y(y + height)

    def _table_header(self) -> None:
        self.pdf.set_font(self.family, "B", 8)
        self.row(self.header_cells, PDF_HEADER_H, fill=225, rule="B")
        self.pdf.set_font(self.family, "", 8)

    def _cells(
        self, widths: list[float], aligns: list[str], kinds: Sequence[str], values: list[Any]
    ) -> list[tuple[float, str, str]]:
        return [
            (w, a, self.fit(self.text(_pdf_cell(k, v)), w))
            for w, a, k, v in zip(widths, aligns, kinds, values, strict=True)
        ]

    def table(self, table: Table) -> None:
        pdf = self.pdf
        weights = [_PDF_WEIGHT[c.kind] for c in table.columns]
        widths = [pdf.epw * w / sum(weights) for w in weights]
        aligns = ["R" if c.kind in ("cents", "int") else "L" for c in table.columns]
        kinds = [c.kind for c in table.columns]
        self.header_cells = []
        if pdf.page_no() == 0:
            pdf.add_page()
        # Keep the table title with its header and a first row.
        if pdf.will_page_break(PDF_TITLE_H + PDF_HEADER_H + PDF_ROW_H):
            pdf.add_page()
        pdf.set_font(self.family, "B", 11)
        pdf.cell(0, PDF_TITLE_H, self.fit(self.text(table.title), pdf.epw), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(self.family, "B", 8)
        self.header_cells = [
            (w, a, self.fit(self.text(c.title), w)) for w, a, c in zip(widths, aligns, table.columns, strict=True)
        ]
        self._table_header()
        pdf.set_draw_color(120)
        count = 0
        for count, row in enumerate(table.rows, start=1):
            if count > MAX_PDF_ROWS:
                raise ReportTooLarge(f"table {table.title!r}: more than {MAX_PDF_ROWS} rows to print")
            if pdf.will_page_break(PDF_ROW_H):
                pdf.add_page()
                self._table_header()
            cells = self._cells(widths, aligns, kinds, _row(table.columns, row))
            self.row(cells, PDF_ROW_H, fill=244 if count % 2 == 0 else None)
        if count == 0:
            self.row([(pdf.epw, "L", self.text("(no rows)"))], PDF_ROW_H, fill=None)
        totals = _totals(table)
        if totals is not None:
            if pdf.will_page_break(PDF_ROW_H):
                pdf.add_page()
                self._table_header()
            pdf.set_font(self.family, "B", 8)
            self.row(self._cells(widths, aligns, *totals), PDF_ROW_H, fill=None, rule="T")
            pdf.set_font(self.family, "", 8)
        self.header_cells = []
        pdf.ln(PDF_GAP)

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def _pdf_cell(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "text":
        return str(value)[:MAX_CELL_TEXT]
    if kind == "cents":
        return format_eur(value)
    if kind == "int":
        return ("-" if value < 0 else "") + _thousands(abs(value))
    if kind == "date":
        return f"{value:%d-%m-%Y}"
    return f"{_local(value):%d-%m-%Y %H:%M}"


def to_pdf(tables: Sequence[Table], *, title: str, subtitle: str = "", generated_at: datetime) -> bytes:
    """A printable A4 report of the tables, one after another; see the module docstring."""
    if not tables:
        raise ValueError("a report needs at least one table")
    if len(tables) > MAX_TABLES:
        raise ReportTooLarge(f"{len(tables)} tables, at most {MAX_TABLES}")
    for t in tables:
        _check_table(t)
        if len(t.columns) > MAX_PDF_COLUMNS:
            raise ReportTooLarge(f"table {t.title!r}: {len(t.columns)} columns, at most {MAX_PDF_COLUMNS} print")
    landscape = max(len(t.columns) for t in tables) > PORTRAIT_MAX_COLUMNS
    doc = _Pdf(title=title, subtitle=subtitle, generated_at=generated_at, landscape=landscape)
    for t in tables:
        doc.table(t)
    return doc.output()
