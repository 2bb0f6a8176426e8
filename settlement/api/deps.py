"""Dependencies shared by controllers: the caller, the pool, paging."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request
from litestar.di import Provide

from settlement.auth import Actor, TokenCache, authenticate
from settlement.errors import BadRequest, Forbidden
from settlement.state import AppState


async def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    state: AppState = request.app.state.app_state
    cache = state.extras.setdefault("token_cache", TokenCache())
    return await authenticate(state.pool, cache, request.headers.get("authorization"))


ACTOR = {"actor": Provide(provide_actor)}


class Api(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies: unknown fields are refused, not ignored."""


def encode_cursor(at: datetime, ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ident}".encode()).decode()


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        at, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not one this API gave out", code="cursor_invalid") from None


async def auditors_read_only(connection: Any, _handler: Any) -> None:
    """An auditor reads everything of its sponsor and writes nothing: every write
    answers 403 before its body is even read."""
    if connection.scope.get("method") in ("GET", "HEAD", "OPTIONS"):
        return
    header = connection.headers.get("authorization")
    if not header:
        return  # the handler's dependency answers 401
    state: AppState = connection.app.state.app_state
    cache = state.extras.setdefault("token_cache", TokenCache())
    actor = await authenticate(state.pool, cache, header)
    if actor.role == "auditor":
        raise Forbidden("an auditor token reads; it never writes", code="role_not_allowed")
