"""Statement numbers: when a skipped number means a missing day statement.

A bank numbers its day statements per account: camt.053 ``LglSeqNb`` (the
legal, paper statement number) and ``ElctrncSeqNb`` (the electronic one),
MT940 ``:28C:`` (statement number, optionally ``/page`` when one statement
takes several messages). Where those are counters, a skipped number is a
missing statement even when the balances happen to meet (a day whose lines
offset each other exactly), and the same number again on the same day with
other content is a corrected statement.

Not every number is a counter, and the real files show it:

- 0 means "not numbered": ING sends ``:28C:00000``, Rabobank ``:28C:0``.
- Some numbers are dates: ABN AMRO's MT940 ``:28:1301/1`` is the 13th of
  January (DDMM), de Volksbank's ``ElctrncSeqNb`` 26098 is 2026, day 98, of
  the day the file was made (two accounts share it). A number that reads as a
  date of its statement (its day or its creation day: YYDDD, YYYYDDD, DDMM,
  MMDD, YYMMDD, YYYYMMDD, DDMMYY, DDMMYYYY) is not taken as a counter.
- Numbers restart each year at many banks, often as YYNNN (26001 is the first
  of 2026): across a new year, 1 or the year followed by ...01 continues the
  series as well as the next number does.

And a counter is only trusted once the account's statements have shown it:
a skipped number is a gap only when the last change of that number in the
account's series (same format, no statement without it in between) was a
step of one (or a new year's restart). So an unknown numbering scheme never
refuses a statement on its first steps, and the balance check (opening =
last closing) still guards every file, numbered or not.

camt.054 (notifications) and camt.052 (intraday reports) are no day
statements: they carry their own numbers and no balances, and are never part
of a series (the caller passes only statements with an opening balance).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date
from itertools import pairwise
from typing import Literal

import msgspec

from reconciliation.model import Statement, StatementKind

SequenceField = Literal["LglSeqNb", "ElctrncSeqNb", ":28C:"]
_MT940_NUMBER = re.compile(r"([0-9]{1,5})(?:/([0-9]{1,5}))?")


class Numbering(msgspec.Struct, frozen=True, kw_only=True):
    """What a day statement says about its place in the bank's series."""

    kind: StatementKind
    statement_date: date
    created_on: date | None = None
    legal: int | None = None  # LglSeqNb; MT940: the :28C: statement number
    electronic: int | None = None  # ElctrncSeqNb
    page: int | None = None  # MT940: the :28C: sequence (page) number


def numbering(st: Statement) -> Numbering:
    legal = st.legal_sequence
    page = None
    if st.kind == "mt940":
        m = _MT940_NUMBER.fullmatch(st.statement_id)
        if m is not None:
            legal = int(m.group(1))
            page = None if m.group(2) is None else int(m.group(2))
    return Numbering(
        kind=st.kind,
        statement_date=st.statement_date,
        created_on=None if st.created_at is None else st.created_at.date(),
        legal=legal,
        electronic=st.electronic_sequence,
        page=page,
    )


def _date_forms(d: date) -> Iterator[int]:
    doy = d.timetuple().tm_yday
    for fmt in ("%d%m", "%m%d", "%y%m%d", "%Y%m%d", "%d%m%y", "%d%m%Y"):
        yield int(d.strftime(fmt))
    yield int(f"{d:%y}{doy:03d}")
    yield int(f"{d:%Y}{doy:03d}")


def is_date_like(number: int, n: Numbering) -> bool:
    """True when ``number`` reads as the statement's day or creation day (a date, not a counter)."""
    days = {n.statement_date} | ({n.created_on} if n.created_on else set())
    return any(number == form for d in days for form in _date_forms(d))


def _fields(n: Numbering) -> Iterator[tuple[SequenceField, int | None]]:
    if n.kind == "mt940":
        yield ":28C:", n.legal
    else:
        yield "LglSeqNb", n.legal
        yield "ElctrncSeqNb", n.electronic


def counter(n: Numbering, field: SequenceField) -> int | None:
    """The number in ``field`` when it can be a counter: given, not 0, not a date."""
    value = dict(_fields(n)).get(field)
    if value is None or value <= 0 or is_date_like(value, n):
        return None
    return value


def starts_a_year(number: int, year: int) -> bool:
    """1, or the year (YY or YYYY) followed by a zero-padded 1: 26001, 2026001, 20260001."""
    if number == 1:
        return True
    text = str(number)
    for prefix in (f"{year % 100:02d}", str(year)):
        rest = text.removeprefix(prefix)
        if rest != text and len(rest) >= 2 and int(rest) == 1:
            return True
    return False


def _follows(before: Numbering, after: Numbering, field: SequenceField) -> bool | None:
    """Whether ``after``'s number is the next after ``before``'s (None: not comparable)."""
    a, b = counter(before, field), counter(after, field)
    if a is None or b is None:
        return None
    return b == a + 1 or (
        after.statement_date.year > before.statement_date.year and starts_a_year(b, after.statement_date.year)
    )


def _trusted(history: Sequence[Numbering], field: SequenceField) -> bool:
    """The series' last change of number (newest first in ``history``) was one step."""
    for newer, older in pairwise(history):
        if newer.kind != older.kind or counter(newer, field) is None or counter(older, field) is None:
            return False
        if counter(newer, field) == counter(older, field):
            continue  # another page of the statement, or an empty day the legal number does not count
        return bool(_follows(older, newer, field))
    return False


def same_number(a: Numbering, b: Numbering) -> bool:
    """Two statements of one format that carry the same number (and page) in some field."""
    if a.kind != b.kind:
        return False
    for field, value in _fields(a):
        other = dict(_fields(b)).get(field)
        if value is not None and value > 0 and value == other and (a.page or 1) == (b.page or 1):
            return True
    return False


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    field: SequenceField
    last: int
    new: int
    expected: str  # what would have followed, for the message


def gap(history: Sequence[Numbering], new: Numbering) -> Gap | None:
    """A skipped number between the account's last day statement (``history[0]``,
    newest first) and ``new``; None when the numbers cannot tell or show none.

    ``history`` holds the account's latest day statements, newest first, as
    many as the caller keeps (a bounded window: a series whose last step lies
    beyond it is not trusted).
    """
    if not history or history[0].kind != new.kind:
        return None  # the first statement, or the account changed format: no series to continue
    last = history[0]
    last_page, page = last.page or 1, new.page or 1
    new_year = new.statement_date.year > last.statement_date.year
    for field, _ in _fields(new):
        a, b = counter(last, field), counter(new, field)
        if a is None or b is None:
            continue
        if b == a:
            # another page of the same statement (or an empty day the legal number does not count)
            if page > last_page + 1:
                return Gap(field=field, last=a, new=b, expected=f"{a}/{last_page + 1}")
            continue
        if page == 1 and (b == a + 1 or (new_year and starts_a_year(b, new.statement_date.year))):
            continue
        if b < a and not new_year:
            continue  # the series went back: a renumbering, not a skip anyone can name
        if not _trusted(history, field):
            continue
        if b == a + 1:
            expected = f"{b}/1"  # the next statement, but not its first page
        else:
            expected = f"{a + 1}" + (f" or the first of {new.statement_date.year}" if new_year else "")
        return Gap(field=field, last=a, new=b, expected=expected)
    return None
