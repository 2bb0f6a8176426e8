"""Every error leaves as RFC 9457 problem+json; this is the one place that maps them."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from settlement.errors import SettlementError
from settlement.logs import get_logger

PROBLEM_JSON = "application/problem+json"
_AT_PATH = re.compile(r"at `\$\.([^`]+)`")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")
log = get_logger("settlement.http")


def _response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[dict[str, Any]]:
    return Response(
        content=body,
        status_code=int(body["status"]),
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_body(status: int, code: str, title: str, detail: str, instance: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://settlement.example/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
    }
    body.update(extra)
    return body


def _challenge(exc: SettlementError) -> dict[str, str] | None:
    """A 401 names the scheme to use (RFC 9110 15.5.2); a token that was sent but is not
    valid says so (RFC 6750 3.1)."""
    if exc.status != 401:
        return None
    error = ', error="invalid_token"' if exc.code == "token_invalid" else ""
    return {"WWW-Authenticate": f'Bearer realm="settlement"{error}'}


def handle_settlement_error(request: Request[Any, Any, Any], exc: SettlementError) -> Response[dict[str, Any]]:
    if exc.status >= 500:
        log.error("request_failed", code=exc.code, path=request.url.path)
    return _response(exc.problem(instance=request.url.path), headers=_challenge(exc))


def _field_errors(extra: Any) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict):
                field = item.get("key") or ""
                message = str(item.get("message", "invalid"))
                # msgspec says "... - at `$.amount`", "unknown field `bogus`" or "missing required
                # field `fund_id` - at `$.shares[0]`": name that field, by its path when nested
                # (litestar moves the path into the key, "data" being the body itself)
                at = _AT_PATH.search(message)
                base = at.group(1) if at else ("" if field == "data" else field)
                m = _MISSING_FIELD.search(message) or _UNKNOWN_FIELD.search(message)
                if m:
                    field = f"{base}.{m.group(1)}" if base else m.group(1)
                elif at:
                    field = base
                errors.append({"field": field, "message": message, "source": item.get("source", "body")})
    return errors


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    path = request.url.path
    if isinstance(exc, ValidationException):
        errors = _field_errors(exc.extra)
        detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors) or str(exc.detail)
        # a body that is not JSON at all is a 400; JSON of the wrong shape is a 422
        malformed = any("malformed" in e["message"].lower() or "json is" in e["message"].lower() for e in errors)
        if malformed or not errors:
            return _response(problem_body(400, "malformed_request", "Malformed request", detail, path, errors=errors))
        return _response(problem_body(422, "validation_failed", "Validation failed", detail, path, errors=errors))
    if isinstance(exc, NotFoundException):
        return _response(problem_body(404, "not_found", "Not found", "no such resource", path))
    if isinstance(exc, MethodNotAllowedException):
        return _response(
            problem_body(405, "method_not_allowed", "Method not allowed", str(exc.detail), path),
            headers=dict(exc.headers or {}),
        )
    status = exc.status_code
    if status == 400 and "malformed" in str(exc.detail).lower():
        return _response(problem_body(400, "malformed_request", "Malformed request", str(exc.detail), path))
    code = {401: "unauthorized", 403: "forbidden", 413: "payload_too_large", 429: "too_many_requests"}.get(
        status, "http_error"
    )
    return _response(
        problem_body(status, code, str(exc.detail), str(exc.detail), path), headers=dict(exc.headers or {})
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # The trace goes to the log, never to the client.
    from settlement.tx import connection_lost, database_too_busy, database_unavailable

    # outside a use case's transaction (the token lookup): the same 503s as inside one
    if connection_lost(exc):
        log.warning("database_connection_lost", path=request.url.path, error_type=type(exc).__name__)
        return handle_settlement_error(request, database_unavailable())
    if isinstance(exc, TimeoutError):
        log.warning("database_timeout", path=request.url.path)
        return handle_settlement_error(request, database_too_busy())
    log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return _response(
        problem_body(
            HTTP_500_INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
            "the server failed to handle this request; it has been logged",
            request.url.path,
        )
    )


def handle_unstorable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A value the database cannot hold or the calendar cannot reach.

    An id or amount beyond 64 bits (asyncpg refuses to encode it), a NUL
    character in text (PostgreSQL refuses it), any other SQL data exception,
    or a date past 9999-12-31 in date arithmetic. Every flow runs in one
    transaction, which has rolled back: nothing changed. Validating each field
    for these would repeat the same checks in every endpoint; they are the
    input's fault, so they are a 400 here rather than a 500.
    """
    log.warning("request_value_unstorable", path=request.url.path, error_type=type(exc).__name__)
    if isinstance(exc, asyncpg_base.DataError):
        detail = "a number in the request is out of range: ids and amounts are 64-bit integers"
    elif isinstance(exc, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError):
        detail = "text in the request holds a NUL or other character that cannot be stored"
    elif isinstance(exc, OverflowError):
        detail = "a date or number in the request is out of range"
    else:
        detail = "a value in the request cannot be stored (out of range or malformed)"
    return _response(
        problem_body(400, "value_out_of_range", "Value out of range", f"{detail}; nothing changed", request.url.path)
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    SettlementError: handle_settlement_error,
    asyncpg_base.DataError: handle_unstorable,
    asyncpg.DataError: handle_unstorable,
    OverflowError: handle_unstorable,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType"]
