"""XML Auditfile Financieel 3.2 (XAF): the journal of one fiscal year for the accountant.

``build_xaf`` turns accounts, an opening balance and journals of balanced
transactions into XAF bytes and validates them against the XSD shipped in
``schemas/`` (a copy of the auditfiles.nl schema, namespace
``http://www.auditfiles.nl/XAF/3.2``).

Account ids
    XAF's ``accID`` is an ``IdentificationString35``: at most 35 characters.
    Our ledger codes (``fund:3``, ``bank:NL91ABNA0417164300``) are used
    verbatim when they are at most 35 characters of ``A-Z a-z 0-9 : . _ / -``.
    Any other code (longer, or with spaces, accents, ``~``, ...) becomes
    ``<cleaned head>~<16 base32 chars of sha256(code)>``, at most 35 long: the
    same code always gives the same id, on any machine and in any year, and
    ``~`` never occurs in a verbatim id, so a mapped id cannot collide with
    one. ``xaf_id`` is that function. Every ``accDesc`` ends with our code in
    square brackets, so the auditor reads the way back from any id. Journal
    ids, transaction numbers and source ids go through the same function;
    each line's ``docRef`` carries the full transaction number (or the
    line's own ``doc_ref``).

What the XSD does not check, we do
    The schema's key/keyref constraints (every ``trLine/accID`` and
    ``obLine/accID`` names a ledger account, every transaction's
    ``periodNumber`` names a period, ids unique) use XPath selectors without
    a namespace prefix, so they match nothing in a namespaced document and no
    validator enforces them. ``build_xaf`` checks them in Python, together
    with the money rules: every transaction balances (debit == credit), every
    amount is a positive int of cents, the opening balance balances.
    Transaction numbers are not checked for uniqueness (that would hold every
    number in memory); the ledger's entry sequence already guarantees it.

Streaming
    ``journals[i].transactions`` may be a generator of millions of
    transactions. They are written as they come into a spool (in memory up to
    ``SPOOL_MEMORY_BYTES``, on disk beyond), because the XSD puts the totals
    (``linesCount``, ``totalDebit``, ``totalCredit``) before the journals;
    then the envelope with the totals is written and the spool copied after
    it. Nothing reaches the output before every transaction has been checked,
    so a refused input never leaves half a file.

    The XML is written with a small string serialiser, not lxml's
    ``xmlfile``: measured on 50,000 transactions of three lines, lxml's
    incremental writer took 5.3 s, f-strings 0.3 s. It is safe because it
    writes no attributes and every text passes ``_text`` (NFC, characters XML
    1.0 forbids removed, whitespace collapsed, clipped to the schema length)
    and ``_esc`` (``& < >``); and the validation below re-parses every byte
    with lxml, so a serialiser bug would be an error, never a bad file.

Validation cost
    ``validate_xaf`` parses the file again with lxml against the compiled XSD
    (``iterparse`` with the schema, clearing each transaction after it is
    checked, so memory stays flat instead of the ~10x the file size a full
    tree costs: 83 MB peak RSS against 393 MB for a 28 MB file). It costs
    as much again as writing, or more: measured on 50,000 three-line
    transactions (28 MB), writing 1.4-1.6 s, validating 2.1-2.8 s; 200,000
    transactions (115 MB) 5.8 s and 10.2 s. ``validate=False`` skips it for
    a caller that validates later or benchmarks the writer.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from functools import cache
from itertools import islice
from pathlib import Path
from typing import IO, Any, Literal, cast

import msgspec
from lxml import etree

from ledger.money import MAX_AMOUNT, format_decimal

XAF_NAMESPACE = "http://www.auditfiles.nl/XAF/3.2"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "XmlAuditfileFinancieel3.2.xsd"

# Journal types the XSD enumerates (Journaltype). The common ones: B bank,
# C cash, M memorial, O opening balance, P purchases, S sales; G, T, Y, Z as
# the XAF 3.2 specification defines them.
JOURNAL_TYPES = frozenset({"B", "C", "G", "M", "O", "P", "S", "T", "Y", "Z"})
ACCOUNT_KINDS = frozenset({"B", "P"})  # balance sheet, profit and loss (the XSD also knows M)

# Schema lengths (maxLength facets of the XSD types named in the comments).
ID_MAX = 35  # IdentificationString35
DESC_MAX = 999  # String999; String9999 fields (no maxLength) are held to it too
FISCAL_YEAR_MAX = 9  # String9
SOFTWARE_DESC_MAX = 50  # String50
SOFTWARE_VERSION_MAX = 20  # String20
TAX_REG_IDENT_MAX = 30  # String30
PERIOD_DESC_MAX = 50  # String50
MAX_PERIODS = 999  # Nonnegativeinteger3

# Our limits: a named bound on everything, refused loudly when exceeded.
MAX_ACCOUNTS = 2_000_000  # a ledger account per voucher makes large charts
MAX_ACCOUNT_CODE = 200  # characters; longer is not a code of ours
MAX_LINES_PER_TRANSACTION = 10_000
MAX_LINES = 10_000_000  # per file (~1.8 GB of XML); linesCount allows 10 digits
MAX_JOURNALS = 1_000
# Totals are Amount2decimals: at most 20 digits, 2 of them after the point.
MAX_TOTAL_CENTS = 10**20 - 1
SPOOL_MEMORY_BYTES = 64 * 1024 * 1024  # journals beyond this spill to a temporary file
MAX_REPORTED_ERRORS = 20

_HASH_CHARS = 16  # 80 bits of sha256: collisions are checked, and never expected
_ID_SAFE = re.compile(r"[A-Za-z0-9:._/-]+")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9:._/-]")
# Characters XML 1.0 cannot carry at all (C0 controls but tab/LF/CR, lone
# surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SPACE = re.compile(r"\s+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY = re.compile(r"[A-Z]{2}")


class XafError(ValueError):
    """Input that cannot become a valid audit file.

    ``code`` names the broken rule (``transaction_unbalanced``,
    ``unknown_account``, ``schema_invalid``, ...); ``errors`` carries lxml's
    messages for ``schema_invalid``.
    """

    def __init__(self, code: str, detail: str, *, errors: Sequence[str] = ()) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.errors: tuple[str, ...] = tuple(errors)


class XafHeader(msgspec.Struct, frozen=True, kw_only=True):
    fiscal_year: str  # "2026"
    start_date: date
    end_date: date
    company_name: str
    company_ident: str  # KvK number or our organisation id, at most 35 characters
    tax_reg_country: str = "NL"
    currency: str = "EUR"
    date_created: date
    software_desc: str = "settlement"
    software_version: str
    # taxRegIdent is required by the XSD; a stichting without a VAT number
    # leaves it empty, which the schema allows.
    tax_reg_ident: str = ""


class XafAccount(msgspec.Struct, frozen=True, kw_only=True):
    code: str  # our ledger account code, e.g. "fund:3", "payable:17"
    name: str
    kind: Literal["B", "P"]  # balance sheet / profit and loss


class XafLine(msgspec.Struct, frozen=True, kw_only=True):
    nr: int
    account_code: str
    description: str
    amount_cents: int  # > 0
    side: Literal["D", "C"]
    effective_date: date
    doc_ref: str | None = None  # None: the transaction's number


class XafTransaction(msgspec.Struct, frozen=True, kw_only=True):
    nr: str  # our journal entry sequence or id
    description: str
    date: date
    period: int  # a period number, 1-12 with the default periods
    lines: tuple[XafLine, ...]
    source_id: str | None = None


class XafJournal(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    description: str
    kind: str  # a JOURNAL_TYPES code
    transactions: Iterable[XafTransaction]  # may be a generator; read once


class XafPeriod(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    description: str
    start_date: date
    end_date: date


class XafTotals(msgspec.Struct, frozen=True, kw_only=True):
    """What the ``transactions`` block says about the journals under it."""

    journals: int
    transactions: int
    lines: int
    debit_cents: int
    credit_cents: int


# --- identifiers and text -------------------------------------------------------------------


def xaf_id(value: str) -> str:
    """An ``IdentificationString35`` for ``value``: itself when short and plain, else a stable hash id."""
    if len(value) <= ID_MAX and _ID_SAFE.fullmatch(value):
        return value
    digest = base64.b32encode(hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()).decode("ascii")
    head = _ID_UNSAFE.sub("", value)[: ID_MAX - _HASH_CHARS - 1]
    return f"{head}~{digest[:_HASH_CHARS]}"


def _text(value: str, max_len: int = DESC_MAX) -> str:
    """Reduce free text to what the schema and XML can carry, on one line."""
    value = _NOT_XML.sub("", unicodedata.normalize("NFC", value))
    return _SPACE.sub(" ", value).strip()[:max_len].rstrip()


def _esc(text: str) -> str:
    # Element content only (we write no attributes), so quotes need nothing.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _el(tag: str, text: str) -> str:
    return f"<{tag}>{_esc(text)}</{tag}>"


def _amount(cents: int) -> str:
    return format_decimal(cents)


def _is_date(value: object) -> bool:
    # A datetime is a date too, but its isoformat() is not an xsd:date.
    return isinstance(value, date) and not isinstance(value, datetime)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def account_description(account: XafAccount) -> str:
    """``accDesc``: the name, then our code in brackets (never clipped away)."""
    suffix = f" [{_text(account.code)}]"
    name = _text(account.name, DESC_MAX - len(suffix))
    return f"{name}{suffix}".strip()


# --- checks before writing ------------------------------------------------------------------


def monthly_periods(start: date, end: date) -> tuple[XafPeriod, ...]:
    """One period per calendar month from ``start`` to ``end``, clipped to them, numbered from 1.

    A calendar fiscal year gives the twelve months; a short first year gives
    fewer, the first starting on ``start``.
    """
    if end < start:
        raise XafError("period_dates_reversed", f"end {end} is before start {start}")
    periods: list[XafPeriod] = []
    current = start
    while current <= end:
        if len(periods) == MAX_PERIODS:
            raise XafError("too_many_periods", f"more than {MAX_PERIODS} months from {start} to {end}")
        next_month = (current.replace(day=1) + timedelta(days=32)).replace(day=1)
        stop = min(next_month - timedelta(days=1), end)
        periods.append(
            XafPeriod(number=len(periods) + 1, description=f"{current:%Y-%m}", start_date=current, end_date=stop)
        )
        current = stop + timedelta(days=1)
    return tuple(periods)


def _check_header(h: XafHeader) -> None:
    if not (_is_date(h.start_date) and _is_date(h.end_date) and _is_date(h.date_created)):
        raise XafError("not_a_date", "header start_date, end_date and date_created must be dates")
    if h.end_date < h.start_date:
        raise XafError("fiscal_year_dates_reversed", f"end_date {h.end_date} is before start_date {h.start_date}")
    if not h.fiscal_year or len(h.fiscal_year) > FISCAL_YEAR_MAX or _text(h.fiscal_year) != h.fiscal_year:
        raise XafError("fiscal_year_invalid", f"fiscal_year {h.fiscal_year!r}: 1-{FISCAL_YEAR_MAX} plain characters")
    # Identities are never clipped: a shortened KvK number is a different company.
    if len(h.company_ident) > ID_MAX or _text(h.company_ident) != h.company_ident:
        raise XafError("company_ident_invalid", f"company_ident {h.company_ident!r}: at most {ID_MAX} characters")
    if len(h.tax_reg_ident) > TAX_REG_IDENT_MAX or _text(h.tax_reg_ident) != h.tax_reg_ident:
        raise XafError("tax_reg_ident_invalid", f"tax_reg_ident: at most {TAX_REG_IDENT_MAX} characters")
    if not _text(h.company_name):
        raise XafError("company_name_missing", "company_name is empty")
    if not _CURRENCY.fullmatch(h.currency):
        raise XafError("currency_invalid", f"currency {h.currency!r} is not an ISO 4217 code")
    if not _COUNTRY.fullmatch(h.tax_reg_country):
        raise XafError("country_invalid", f"tax_reg_country {h.tax_reg_country!r} is not an ISO 3166 code")


def _check_periods(periods: Sequence[XafPeriod]) -> frozenset[int]:
    if len(periods) > MAX_PERIODS:
        raise XafError("too_many_periods", f"{len(periods)} periods, at most {MAX_PERIODS}")
    numbers: set[int] = set()
    for p in periods:
        if not _is_int(p.number) or not 0 <= p.number <= MAX_PERIODS:
            raise XafError("period_number_invalid", f"period number {p.number!r}: 0-{MAX_PERIODS}")
        if p.number in numbers:
            raise XafError("duplicate_period", f"period {p.number} is defined twice")
        if not (_is_date(p.start_date) and _is_date(p.end_date)) or p.end_date < p.start_date:
            raise XafError("period_dates_invalid", f"period {p.number}: {p.start_date}..{p.end_date}")
        numbers.add(p.number)
    return frozenset(numbers)


def _account_ids(accounts: Sequence[XafAccount]) -> dict[str, str]:
    """Our code -> accID, refusing duplicates and (never expected) hash collisions."""
    if len(accounts) > MAX_ACCOUNTS:
        raise XafError("too_many_accounts", f"{len(accounts)} accounts, at most {MAX_ACCOUNTS}")
    ids: dict[str, str] = {}
    owner: dict[str, str] = {}
    for a in accounts:
        if not a.code or len(a.code) > MAX_ACCOUNT_CODE:
            raise XafError("account_code_invalid", f"account code {a.code!r}: 1-{MAX_ACCOUNT_CODE} characters")
        if a.kind not in ACCOUNT_KINDS:
            raise XafError("account_kind_invalid", f"account {a.code!r}: kind {a.kind!r} is not B or P")
        if a.code in ids:
            raise XafError("duplicate_account", f"account {a.code!r} is listed twice")
        acc_id = xaf_id(a.code)
        if acc_id in owner:
            raise XafError("account_id_collision", f"{a.code!r} and {owner[acc_id]!r} both map to {acc_id!r}")
        ids[a.code] = acc_id
        owner[acc_id] = a.code
    return ids


class _Opening(msgspec.Struct, frozen=True, kw_only=True):
    lines: tuple[tuple[str, int], ...]  # (accID, signed cents), zero balances left out
    debit_cents: int
    credit_cents: int


def _check_opening(opening: Sequence[tuple[str, int]], ids: dict[str, str]) -> _Opening:
    seen: set[str] = set()
    lines: list[tuple[str, int]] = []
    debit = credit = 0
    for code, cents in opening:
        if code not in ids:
            raise XafError("unknown_account", f"opening balance names account {code!r}, which is not in accounts")
        if code in seen:
            raise XafError("duplicate_opening_balance", f"opening balance lists account {code!r} twice")
        if not _is_int(cents) or abs(cents) > MAX_AMOUNT:
            raise XafError("amount_invalid", f"opening balance of {code!r}: {cents!r} is not int cents within limits")
        seen.add(code)
        if cents == 0:
            continue
        lines.append((ids[code], cents))
        if cents > 0:
            debit += cents
        else:
            credit -= cents
    if debit != credit:
        raise XafError(
            "opening_unbalanced",
            f"opening balance debit {format_decimal(debit)} != credit {format_decimal(credit)}",
        )
    return _Opening(lines=tuple(lines), debit_cents=debit, credit_cents=credit)


def _transaction_xml(
    tx: XafTransaction, journal_id: str, ids: dict[str, str], periods: frozenset[int]
) -> tuple[str, int, int]:
    """The ``<transaction>`` element, its debit total and its line count; raises on any broken rule."""
    name = f"journal {journal_id!r} transaction {tx.nr!r}"
    if not isinstance(tx.nr, str) or not tx.nr:
        raise XafError("transaction_nr_missing", f"journal {journal_id!r}: a transaction has no nr")
    if tx.period not in periods:
        raise XafError("unknown_period", f"{name}: period {tx.period!r} is not a defined period")
    if not _is_date(tx.date):
        raise XafError("not_a_date", f"{name}: date {tx.date!r} is not a date")
    n = len(tx.lines)
    if n == 0:
        raise XafError("transaction_empty", f"{name} has no lines")
    if n > MAX_LINES_PER_TRANSACTION:
        raise XafError("too_many_lines", f"{name} has {n} lines, at most {MAX_LINES_PER_TRANSACTION}")
    doc_ref_default = _esc(_text(tx.nr))
    parts = [
        "<transaction>",
        _el("nr", xaf_id(tx.nr)),
        _el("desc", _text(tx.description)),
        f"<periodNumber>{tx.period}</periodNumber><trDt>{tx.date.isoformat()}</trDt>",
    ]
    if tx.source_id:
        parts.append(_el("sourceID", xaf_id(tx.source_id)))
    debit = credit = 0
    line_nrs: set[int] = set()
    for line in tx.lines:
        cents = line.amount_cents
        if not _is_int(cents) or not 0 < cents <= MAX_AMOUNT:
            raise XafError(
                "amount_must_be_positive", f"{name} line {line.nr!r}: amount {cents!r} is not positive int cents"
            )
        if line.side == "D":
            debit += cents
        elif line.side == "C":
            credit += cents
        else:
            raise XafError("side_invalid", f"{name} line {line.nr!r}: side {line.side!r} is not D or C")
        acc_id = ids.get(line.account_code)
        if acc_id is None:
            raise XafError(
                "unknown_account", f"{name} line {line.nr!r}: account {line.account_code!r} is not in accounts"
            )
        if not _is_int(line.nr) or line.nr < 0 or line.nr in line_nrs:
            raise XafError("line_nr_invalid", f"{name}: line nr {line.nr!r} is not a new non-negative int")
        line_nrs.add(line.nr)
        if not _is_date(line.effective_date):
            raise XafError("not_a_date", f"{name} line {line.nr}: effective_date is not a date")
        doc_ref = doc_ref_default if line.doc_ref is None else _esc(_text(line.doc_ref))
        parts.append(
            f"<trLine><nr>{line.nr}</nr><accID>{_esc(acc_id)}</accID><docRef>{doc_ref}</docRef>"
            f"<effDate>{line.effective_date.isoformat()}</effDate><desc>{_esc(_text(line.description))}</desc>"
            f"<amnt>{_amount(cents)}</amnt><amntTp>{line.side}</amntTp></trLine>"
        )
    if debit != credit:
        raise XafError(
            "transaction_unbalanced",
            f"{name}: debit {format_decimal(debit)} != credit {format_decimal(credit)}",
        )
    parts.append("</transaction>\n")
    return "".join(parts), debit, n


def _write_journals(
    sink: IO[bytes], journals: Sequence[XafJournal], ids: dict[str, str], periods: frozenset[int]
) -> XafTotals:
    if len(journals) > MAX_JOURNALS:
        raise XafError("too_many_journals", f"{len(journals)} journals, at most {MAX_JOURNALS}")
    journal_ids: set[str] = set()
    transactions = lines = debit = 0
    for journal in journals:
        jrn_id = xaf_id(journal.id)
        if not journal.id or jrn_id in journal_ids:
            raise XafError("journal_id_invalid", f"journal id {journal.id!r} is empty or used twice")
        if journal.kind not in JOURNAL_TYPES:
            raise XafError(
                "journal_type_invalid", f"journal {journal.id!r}: kind {journal.kind!r} not in {sorted(JOURNAL_TYPES)}"
            )
        journal_ids.add(jrn_id)
        sink.write(
            (
                f"<journal>{_el('jrnID', jrn_id)}{_el('desc', _text(journal.description))}"
                f"<jrnTp>{journal.kind}</jrnTp>\n"
            ).encode()
        )
        for tx in journal.transactions:
            xml, tx_debit, n = _transaction_xml(tx, journal.id, ids, periods)
            lines += n
            if lines > MAX_LINES:
                raise XafError("too_many_lines", f"more than {MAX_LINES} transaction lines in one file")
            debit += tx_debit
            transactions += 1
            sink.write(xml.encode())
        sink.write(b"</journal>\n")
    if debit > MAX_TOTAL_CENTS:
        raise XafError("total_too_large", "the debit total does not fit Amount2decimals (20 digits)")
    # Every transaction balanced, so the credit total is the debit total.
    return XafTotals(
        journals=len(journals), transactions=transactions, lines=lines, debit_cents=debit, credit_cents=debit
    )


# --- the envelope ---------------------------------------------------------------------------


def _head(
    header: XafHeader,
    accounts: Sequence[XafAccount],
    ids: dict[str, str],
    periods: Sequence[XafPeriod],
    opening: _Opening | None,
    totals: XafTotals,
) -> Iterable[str]:
    """Everything before the first ``<journal>``, in the XSD's element order."""
    yield f'<?xml version="1.0" encoding="UTF-8"?>\n<auditfile xmlns="{XAF_NAMESPACE}">\n'
    yield (
        "<header>"
        f"{_el('fiscalYear', header.fiscal_year)}"
        f"<startDate>{header.start_date.isoformat()}</startDate><endDate>{header.end_date.isoformat()}</endDate>"
        f"{_el('curCode', header.currency)}<dateCreated>{header.date_created.isoformat()}</dateCreated>"
        f"{_el('softwareDesc', _text(header.software_desc, SOFTWARE_DESC_MAX))}"
        f"{_el('softwareVersion', _text(header.software_version, SOFTWARE_VERSION_MAX))}"
        "</header>\n"
    )
    yield (
        "<company>"
        + (_el("companyIdent", header.company_ident) if header.company_ident else "")
        + _el("companyName", _text(header.company_name))
        + _el("taxRegistrationCountry", header.tax_reg_country)
        + _el("taxRegIdent", header.tax_reg_ident)
        + "\n"
    )
    if accounts:
        yield "<generalLedger>\n"
        for a in accounts:
            yield (
                f"<ledgerAccount>{_el('accID', ids[a.code])}{_el('accDesc', account_description(a))}"
                f"<accTp>{a.kind}</accTp></ledgerAccount>\n"
            )
        yield "</generalLedger>\n"
    yield "<periods>\n"
    for p in periods:
        yield (
            f"<period><periodNumber>{p.number}</periodNumber>{_el('periodDesc', _text(p.description, PERIOD_DESC_MAX))}"
            f"<startDatePeriod>{p.start_date.isoformat()}</startDatePeriod>"
            f"<endDatePeriod>{p.end_date.isoformat()}</endDatePeriod></period>\n"
        )
    yield "</periods>\n"
    if opening is not None:
        yield (
            f"<openingBalance><opBalDate>{header.start_date.isoformat()}</opBalDate>"
            f"{_el('opBalDesc', _text(f'Opening balance {header.fiscal_year}'))}"
            f"<linesCount>{len(opening.lines)}</linesCount>"
            f"<totalDebit>{_amount(opening.debit_cents)}</totalDebit>"
            f"<totalCredit>{_amount(opening.credit_cents)}</totalCredit>\n"
        )
        for nr, (acc_id, cents) in enumerate(opening.lines, start=1):
            side = "D" if cents > 0 else "C"
            yield (
                f"<obLine><nr>{nr}</nr>{_el('accID', acc_id)}<amnt>{_amount(abs(cents))}</amnt>"
                f"<amntTp>{side}</amntTp></obLine>\n"
            )
        yield "</openingBalance>\n"
    yield (
        f"<transactions><linesCount>{totals.lines}</linesCount>"
        f"<totalDebit>{_amount(totals.debit_cents)}</totalDebit>"
        f"<totalCredit>{_amount(totals.credit_cents)}</totalCredit>\n"
    )


_TAIL = b"</transactions>\n</company>\n</auditfile>\n"


def _write_text(out: IO[bytes], chunks: Iterable[str], batch: int = 1_000) -> None:
    it = iter(chunks)
    while block := "".join(islice(it, batch)):
        out.write(block.encode())


def write_xaf(
    out: IO[bytes],
    header: XafHeader,
    accounts: Sequence[XafAccount],
    opening: Sequence[tuple[str, int]],
    journals: Sequence[XafJournal],
    periods: Sequence[XafPeriod] | None = None,
) -> XafTotals:
    """Write an (unvalidated) audit file to ``out``; see ``build_xaf``.

    Every check runs before the first byte reaches ``out``: on ``XafError``
    nothing has been written.
    """
    _check_header(header)
    periods = tuple(periods) if periods is not None else monthly_periods(header.start_date, header.end_date)
    period_numbers = _check_periods(periods)
    ids = _account_ids(accounts)
    checked_opening = _check_opening(opening, ids) if opening else None
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        totals = _write_journals(cast("IO[bytes]", spool), journals, ids, period_numbers)
        spool.seek(0)
        _write_text(out, _head(header, accounts, ids, periods, checked_opening, totals))
        shutil.copyfileobj(spool, out, 1024 * 1024)
        out.write(_TAIL)
    return totals


def build_xaf(
    header: XafHeader,
    accounts: Sequence[XafAccount],
    opening: Sequence[tuple[str, int]],
    journals: Sequence[XafJournal],
    periods: Sequence[XafPeriod] | None = None,
    *,
    validate: bool = True,
) -> bytes:
    """The XAF 3.2 bytes (UTF-8) for one fiscal year.

    ``opening``: (account code, signed cents: debit positive, credit
    negative); empty leaves the openingBalance block out, zero balances are
    left out of it. ``periods``: default ``monthly_periods`` of the fiscal
    year. Raises ``XafError`` (a ``ValueError``) naming the broken rule and
    the transaction, e.g. ``transaction_unbalanced``.
    """
    buf = io.BytesIO()
    write_xaf(buf, header, accounts, opening, journals, periods)
    data = buf.getvalue()
    if validate:
        validate_xaf(data)
    return data


# --- validation -----------------------------------------------------------------------------

_schema_lock = threading.Lock()


def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), parser=_hardened_parser()))


_CLEARED = tuple(f"{{{XAF_NAMESPACE}}}{tag}" for tag in ("transaction", "ledgerAccount", "obLine"))


def validate_xaf(data: bytes | IO[bytes]) -> None:
    """Raise ``XafError("schema_invalid")`` unless ``data`` is valid against the shipped XSD.

    Streams: elements that repeat by the million are dropped once validated,
    so memory stays flat. Entities are not expanded and nothing is fetched.
    Serialised by a lock: lxml's schema objects are not documented as safe to
    share between threads, and concurrent exports are rare.
    """
    source: IO[bytes] = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with _schema_lock:
        schema = _schema()
        # The exception's error log is lxml's thread-global one: drop what
        # earlier, unrelated parses (bank files, pain.001) left in it.
        etree.clear_error_log()
        try:
            events = etree.iterparse(
                source,
                events=("end",),
                tag=_CLEARED,
                schema=schema,
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
            )
            for _, element in events:
                element.clear(keep_tail=True)
                while element.getprevious() is not None:
                    parent = element.getparent()
                    assert parent is not None
                    del parent[0]
        except etree.XMLSyntaxError as e:
            # lxml-stubs declare the error log opaque; at runtime it iterates _LogEntry.
            entries = cast("Iterable[Any]", e.error_log)
            found = (f"line {x.line}: {x.message}" if x.line > 0 else str(x.message) for x in entries)
            errors = list(islice(dict.fromkeys(found), MAX_REPORTED_ERRORS)) or [str(e)]
            raise XafError("schema_invalid", errors[0], errors=errors) from None
