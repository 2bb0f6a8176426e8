"""The audit trail: who, when, what, from which token, before and after.

Append-only in the database. Written in the same transaction as the action,
so an action without its audit line cannot exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import structlog

from settlement.auth import Actor


def _plain(value: Any) -> Any:
    if value is None:
        return None
    return msgspec.to_builtins(value)


_INSERT = (
    "INSERT INTO audit_log (organisation_id, sponsor_id, token_id, actor, request_id, action, subject_type, "
    "subject_id, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)


def _line(
    actor: Actor | str,
    action: str,
    subject_type: str,
    subject_id: object,
    sponsor_id: int | None,
    before: Any,
    after: Any,
) -> tuple[Any, ...]:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if isinstance(actor, Actor):
        org, token, label = actor.organisation_id, actor.token_id, actor.label
    else:
        org, token, label = None, None, actor
    return (
        org,
        sponsor_id,
        token,
        label,
        request_id,
        action,
        subject_type,
        str(subject_id),
        _plain(before),
        _plain(after),
    )


async def record(
    conn: Any,
    actor: Actor | str,
    action: str,
    subject_type: str,
    subject_id: object,
    *,
    sponsor_id: int | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    await conn.execute(_INSERT, *_line(actor, action, subject_type, subject_id, sponsor_id, before, after))


def lines_each(
    actor: Actor | str,
    action: str,
    subject_type: str,
    subject_id: object,
    *,
    sponsor_ids: Iterable[int],
    before: Any = None,
    after: Any = None,
) -> list[tuple[Any, ...]]:
    """One line per sponsor whose books the action touched (a co-funded voucher's
    has several): each sponsor reads only its own trail, and must find it there."""
    return [
        _line(actor, action, subject_type, subject_id, sponsor_id, before, after)
        for sponsor_id in sorted(set(sponsor_ids))
    ]


async def record_lines(conn: Any, lines: list[tuple[Any, ...]]) -> None:
    """Write lines made by ``lines_each``, in one round trip."""
    if len(lines) == 1:
        await conn.execute(_INSERT, *lines[0])
    elif lines:
        await conn.executemany(_INSERT, lines)


async def record_each(
    conn: Any,
    actor: Actor | str,
    action: str,
    subject_type: str,
    subject_id: object,
    *,
    sponsor_ids: Iterable[int],
    before: Any = None,
    after: Any = None,
) -> None:
    """``lines_each``, written."""
    await record_lines(
        conn, lines_each(actor, action, subject_type, subject_id, sponsor_ids=sponsor_ids, before=before, after=after)
    )
