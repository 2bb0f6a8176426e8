"""Day totals per account, and the trial balance as of a date read from them.

``roll_up`` adds, for every finished local day since the last roll-up, one row
per account that moved: that day's posted debits and credits and the running
totals through it. Accounts whose code starts with one of ``groups`` (a
sub-ledger, e.g. ``voucher:`` with one account per voucher) are rolled up as
one line, ``<prefix>*``: a trial balance of half a million voucher accounts
is read as one control line, and their detail stays in the accounts
themselves. A day counts as finished ``SETTLE_MARGIN`` after midnight
(Europe/Amsterdam), once no transaction that started on it can still commit,
so a rolled-up day never changes. Safe to run from several processes (an
advisory lock per ledger).

``balances_on`` answers "balances at the end of day D": for each line the
running totals of its last rolled-up day on or before D, plus the transfers
after the roll-up up to the end of D (only the days not yet rolled up, found
through a BRIN index on ``created_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

LOCAL = ZoneInfo("Europe/Amsterdam")
SETTLE_MARGIN = timedelta(minutes=10)
EPOCH = date(2000, 1, 1)


def start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=LOCAL)


def local_day(at: datetime) -> date:
    """The local day an instant was recorded on: ``start_of(local_day(t)) <= t < start_of(local_day(t) + 1 day)``."""
    return at.astimezone(LOCAL).date()


def last_finished_day(now: datetime | None = None) -> date:
    now = (now or datetime.now(UTC)).astimezone(LOCAL)
    return (now - SETTLE_MARGIN).date() - timedelta(days=1)


# The line an account is reported on: its code, or its group's prefix + '*'.
_KEY = "CASE WHEN a.code LIKE ANY($4::text[]) THEN split_part(a.code, ':', 1) || ':*' ELSE a.code END"

_MOVES = f"""
    SELECT {_KEY} AS key, (t.created_at AT TIME ZONE 'Europe/Amsterdam')::date AS day, t.amount AS d, 0::bigint AS c
    FROM transfers t JOIN accounts a ON a.id = t.debit_account_id
    WHERE t.ledger_id = $1 AND t.created_at >= $2 AND t.created_at < $3 AND t.kind IN ('posted', 'post_pending')
    UNION ALL
    SELECT {_KEY}, (t.created_at AT TIME ZONE 'Europe/Amsterdam')::date, 0, t.amount
    FROM transfers t JOIN accounts a ON a.id = t.credit_account_id
    WHERE t.ledger_id = $1 AND t.created_at >= $2 AND t.created_at < $3 AND t.kind IN ('posted', 'post_pending')
"""

_ROLL = f"""
WITH moves AS ({_MOVES}),
per_day AS (SELECT key, day, sum(d)::bigint AS d, sum(c)::bigint AS c FROM moves GROUP BY key, day),
prev AS (
    SELECT DISTINCT ON (t.key) t.key, t.debits_cum, t.credits_cum
    FROM account_day_totals t WHERE t.ledger_id = $1 AND t.key IN (SELECT key FROM per_day)
    ORDER BY t.key, t.day DESC
)
INSERT INTO account_day_totals (ledger_id, key, day, debits, credits, debits_cum, credits_cum)
SELECT $1, p.key, p.day, p.d, p.c,
       coalesce(prev.debits_cum, 0) + sum(p.d) OVER w, coalesce(prev.credits_cum, 0) + sum(p.c) OVER w
FROM per_day p LEFT JOIN prev ON prev.key = p.key
WINDOW w AS (PARTITION BY p.key ORDER BY p.day ROWS UNBOUNDED PRECEDING)
"""


def _patterns(groups: Sequence[str]) -> list[str]:
    """LIKE patterns for the group prefixes (LIKE's wildcards in a prefix are escaped)."""
    for g in groups:
        if not g.endswith(":") or g.count(":") != 1:
            raise ValueError(f"a group is a code prefix ending in its only ':', got {g!r}")
    return [g.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for g in sorted(groups)]


async def roll_up(
    conn: Any,
    ledger_id: int,
    *,
    groups: Sequence[str] = (),
    through: date | None = None,
    now: datetime | None = None,
) -> int:
    """Roll the ledger's finished days up to ``through`` (default: the last finished day); rows added.

    Rolling up with other ``groups`` than before starts the ledger's day totals afresh.
    """
    target = min(through or last_finished_day(now), last_finished_day(now))
    patterns = _patterns(groups)
    # A batch stamps its transfers once it holds the ledger's lock, and holds it
    # until it commits, however long after the margin that is: wait for the
    # batches holding it now, so that every transfer stamped before this point
    # is committed when the day is read (later ones are stamped later).
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM ledgers WHERE id = $1 FOR SHARE", ledger_id)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('ledger_rollup'), $1::int)", ledger_id)
        row = await conn.fetchrow("SELECT through_day, groups FROM ledger_rollups WHERE ledger_id = $1", ledger_id)
        done = row["through_day"] if row is not None else None
        if row is not None and list(row["groups"]) != sorted(groups):
            await conn.execute("DELETE FROM account_day_totals WHERE ledger_id = $1", ledger_id)
            done = None
        if done is not None and done >= target:
            return 0
        first = (done + timedelta(days=1)) if done is not None else EPOCH
        status = await conn.execute(_ROLL, ledger_id, start_of(first), start_of(target + timedelta(days=1)), patterns)
        await conn.execute(
            "INSERT INTO ledger_rollups (ledger_id, through_day, groups) VALUES ($1, $2, $3) ON CONFLICT (ledger_id) "
            "DO UPDATE SET through_day = EXCLUDED.through_day, groups = EXCLUDED.groups, updated_at = now()",
            ledger_id,
            target,
            sorted(groups),
        )
        return int(status.split()[-1])


class DayBalance(msgspec.Struct, frozen=True, kw_only=True):
    code: str  # the account's code, or '<prefix>*' for a group
    name: str
    debits: int  # posted debits through the day
    credits: int


_ON = f"""
WITH keys AS (
    SELECT {_KEY} AS key, min(a.name) AS name, count(*) AS n FROM accounts a WHERE a.ledger_id = $1 GROUP BY 1
), rolled AS (
    SELECT k.key, k.name, k.n, coalesce(t.debits_cum, 0) AS d, coalesce(t.credits_cum, 0) AS c
    FROM keys k LEFT JOIN LATERAL (
        SELECT debits_cum, credits_cum FROM account_day_totals x
        WHERE x.ledger_id = $1 AND x.key = k.key AND x.day <= $5 ORDER BY x.day DESC LIMIT 1
    ) t ON true
), tail AS ({_MOVES}),
tail_sum AS (SELECT key, sum(d)::bigint AS d, sum(c)::bigint AS c FROM tail GROUP BY key)
SELECT r.key, r.name, r.n, (r.d + coalesce(ts.d, 0))::bigint AS d, (r.c + coalesce(ts.c, 0))::bigint AS c
FROM rolled r LEFT JOIN tail_sum ts ON ts.key = r.key ORDER BY r.key
"""


async def balances_on(conn: Any, ledger_id: int, day: date, *, groups: Sequence[str] = ()) -> list[DayBalance]:
    """Posted debits and credits through the end of ``day`` (local), per account or group."""
    row = await conn.fetchrow("SELECT through_day, groups FROM ledger_rollups WHERE ledger_id = $1", ledger_id)
    usable = row is not None and list(row["groups"]) == sorted(groups)
    rolled_to = min(row["through_day"], day) if usable else EPOCH - timedelta(days=1)
    tail_from, tail_to = start_of(rolled_to + timedelta(days=1)), start_of(day + timedelta(days=1))
    tail_from = min(tail_from, tail_to)
    rows = await conn.fetch(_ON, ledger_id, tail_from, tail_to, _patterns(groups), rolled_to)
    return [
        DayBalance(
            code=r["key"],
            name=r["name"] if r["n"] == 1 else f"{r['n']} accounts {r['key']}",
            debits=r["d"],
            credits=r["c"],
        )
        for r in rows
    ]
