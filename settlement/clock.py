"""The business day: an Amsterdam date, whatever time zone the server runs in.

Voucher validity (``valid_until`` is the last valid day), fund periods, the
year-end sweep, value dates and payout run codes all count Europe/Amsterdam
days, the same basis as the journal and the day totals (``ledger.rollup``).
``date.today()`` would count the server's days: on a UTC server a voucher
would spend for an hour or two into the next Amsterdam day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def local_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(AMSTERDAM).date()


def end_of_day(day: date) -> datetime:
    """The first instant after the Amsterdam ``day`` (its midnight, whatever DST does that night)."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=AMSTERDAM)
