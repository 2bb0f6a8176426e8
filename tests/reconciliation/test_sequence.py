"""Statement numbers: which are counters, when a skipped one is a gap."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from reconciliation.parse import parse_statement
from reconciliation.sequence import Numbering, counter, gap, is_date_like, numbering, same_number, starts_a_year
from tests.conftest import bank_file


def n(
    day: date,
    *,
    legal: int | None = None,
    electronic: int | None = None,
    kind: str = "camt.053",
    page: int | None = None,
    created: date | None = None,
) -> Numbering:
    return Numbering(
        kind=kind,  # type: ignore[arg-type]
        statement_date=day,
        created_on=created,
        legal=legal,
        electronic=electronic,
        page=page,
    )


D = date(2026, 11, 23)


def series(*numbers: int, start: date = D, **kw: object) -> list[Numbering]:
    """Day statements numbered ``numbers`` on consecutive days, newest first (as the importer reads them)."""
    return [n(start + timedelta(days=i), electronic=x, **kw) for i, x in enumerate(numbers)][::-1]  # type: ignore[arg-type]


def test_the_real_files_numbers_are_no_counters_where_they_are_dates_or_zero() -> None:
    by_file = {}
    for name in ("test-ing.940", "test-rabo.swi", "abnamro_structured.txt", "example-camt053-a.xml", "test-camt053"):
        by_file[name] = [numbering(s) for s in parse_statement(bank_file(name).read_bytes())]
    # ING :28C:00000 and Rabobank :28C:0: not numbered
    assert {x.legal for name in ("test-ing.940", "test-rabo.swi") for x in by_file[name]} == {0}
    assert all(counter(x, ":28C:") is None for name in ("test-ing.940", "test-rabo.swi") for x in by_file[name])
    # ABN AMRO :28:1301/1 and 2701/1 on the 13th and 27th of January: day and month
    abn = by_file["abnamro_structured.txt"]
    assert [(x.legal, x.page) for x in abn] == [(1301, 1), (2701, 1)]
    assert [counter(x, ":28C:") for x in abn] == [None, None]
    # de Volksbank: ElctrncSeqNb 26098 on two accounts, made on 8 April 2026 (day 98)
    assert [(x.electronic, counter(x, "ElctrncSeqNb")) for x in by_file["example-camt053-a.xml"]] == [
        (26098, None),
        (26098, None),
    ]
    # ABN AMRO camt.053: LglSeqNb 2 is a counter
    (abn_camt,) = by_file["test-camt053"]
    assert (abn_camt.legal, counter(abn_camt, "LglSeqNb")) == (2, 2)


@pytest.mark.parametrize(
    ("number", "day", "expected"),
    [
        (26098, date(2026, 4, 8), True),  # YYDDD
        (2026098, date(2026, 4, 8), True),  # YYYYDDD
        (1301, date(2014, 1, 13), True),  # DDMM
        (113, date(2014, 1, 13), True),  # MMDD
        (20260408, date(2026, 4, 8), True),
        (80426, date(2026, 4, 8), True),  # DDMMYY
        (26099, date(2026, 4, 8), False),
        (327, date(2026, 11, 23), False),
    ],
)
def test_date_like_numbers(number: int, day: date, expected: bool) -> None:
    assert is_date_like(number, n(day)) is expected


def test_a_number_is_date_like_for_the_day_the_file_was_made_too() -> None:
    assert is_date_like(26099, n(date(2026, 4, 8), created=date(2026, 4, 9)))


def test_first_of_the_year() -> None:
    assert all(starts_a_year(x, 2027) for x in (1, 27001, 2027001, 270001, 20270001))
    assert not any(starts_a_year(x, 2027) for x in (2, 27002, 26001, 2702, 10))


def test_a_skip_after_counted_steps_is_a_gap() -> None:
    history = series(101, 102, 103)
    new = n(D + timedelta(days=4), electronic=105)
    found = gap(history, new)
    assert found is not None and (found.field, found.last, found.new, found.expected) == (
        "ElctrncSeqNb",
        103,
        105,
        "104",
    )
    assert gap(history, n(D + timedelta(days=4), electronic=104)) is None


def test_a_counter_is_trusted_only_once_it_has_counted() -> None:
    # one statement before: its number says nothing about the bank's steps yet
    assert gap(series(101), n(D + timedelta(days=2), electronic=105)) is None
    # steps of 100 (a number that counts something else): never a gap
    assert gap(series(1000, 1100, 1200), n(D + timedelta(days=4), electronic=1400)) is None
    # a statement without a number, or in another format, in between: not trusted
    for between in (n(D + timedelta(days=1)), n(D + timedelta(days=1), legal=102, kind="mt940")):
        history = [n(D + timedelta(days=2), electronic=103), between, n(D, electronic=101)]
        assert gap(history, n(D + timedelta(days=4), electronic=105)) is None


def test_a_legal_number_that_stays_on_empty_days_is_no_gap_and_still_trusted() -> None:
    history = [n(D + timedelta(days=i), legal=x) for i, x in enumerate((7, 8, 8, 8))][::-1]
    assert gap(history, n(D + timedelta(days=4), legal=9)) is None
    assert gap(history, n(D + timedelta(days=4), legal=8)) is None
    found = gap(history, n(D + timedelta(days=4), legal=10))
    assert found is not None and found.field == "LglSeqNb"


def test_a_new_year_may_restart_but_not_skip_its_first() -> None:
    history = series(26249, 26250, start=date(2026, 12, 30))
    jan = date(2027, 1, 4)
    assert gap(history, n(jan, electronic=27001)) is None
    assert gap(history, n(jan, electronic=26251)) is None  # a bank that counts on
    found = gap(history, n(jan, electronic=27002))
    assert found is not None and found.expected == "26251 or the first of 2027"
    history = series(249, 250, start=date(2026, 12, 30))
    assert gap(history, n(jan, electronic=1)) is None
    assert gap(history, n(jan, electronic=2)) is not None
    # within a year a lower number is a renumbering nobody can name a gap for
    assert gap(series(101, 102), n(D + timedelta(days=3), electronic=7)) is None


def test_mt940_pages() -> None:
    def mt(day: int, number: int, page: int | None) -> Numbering:
        return n(D + timedelta(days=day), legal=number, page=page, kind="mt940")

    history = [mt(1, 12, 2), mt(1, 12, 1), mt(0, 11, 1)]
    assert gap(history, mt(1, 12, 3)) is None  # the next page
    assert gap(history, mt(2, 13, 1)) is None  # the next statement
    found = gap(history, mt(2, 12, 4))
    assert found is not None and found.expected == "12/3"
    found = gap(history, mt(2, 13, 2))
    assert found is not None and found.expected == "13/1"


def test_camt_and_mt940_series_are_apart() -> None:
    history = series(101, 102, 103)
    assert gap(history, n(D + timedelta(days=4), legal=200, kind="mt940")) is None


def test_same_number() -> None:
    a = n(D, electronic=102)
    assert same_number(a, n(D, electronic=102, legal=5))
    assert not same_number(a, n(D, electronic=103))
    assert not same_number(n(D, legal=0), n(D, legal=0))  # 0: not numbered
    assert not same_number(a, n(D, legal=102, kind="mt940"))
    assert not same_number(n(D, legal=12, page=1, kind="mt940"), n(D, legal=12, page=2, kind="mt940"))
