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
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if isinstance(actor, Actor):
        org, token, label = actor.organisation_id, actor.token_id, actor.label
    else:
        org, token, label = None, None, actor
    await conn.execute(
        "INSERT INTO audit_log (organisation_id, sponsor_id, token_id, actor, request_id, action, subject_type, "
        "subject_id, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
    """One line per sponsor whose books the action touched (a co-funded voucher's
    has several): each sponsor reads only its own trail, and must find it there."""
    for sponsor_id in sorted(set(sponsor_ids)):
        await record(conn, actor, action, subject_type, subject_id, sponsor_id=sponsor_id, before=before, after=after)
