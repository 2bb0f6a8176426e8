"""Running a use case: one transaction, idempotency, bounded retries.

The caller (a controller) owns nothing but the request; ``write`` opens the
transaction, claims the Idempotency-Key inside it, runs the flow, stores the
answer, commits. A concurrent request with the same key waits on the key's
row and then replays the stored answer. A rule failure (4xx) is stored too, so
a replay answers the same; a crash stores nothing and the retry runs afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import msgspec
from litestar import Request, Response

from settlement import gate
from settlement.auth import Actor
from settlement.errors import BadRequest, IdempotencyConflict, SettlementError, Unavailable
from settlement.logs import get_logger
from settlement.problems import PROBLEM_JSON

T = TypeVar("T")
MAX_TX_RETRIES = 3
MAX_KEY_LENGTH = 200
_encoder = msgspec.json.Encoder(order="sorted")
log = get_logger("settlement.tx")

Flow = Callable[[Any], Awaitable[Any]]


def _request_hash(method: str, path: str, body: Any, role: str) -> bytes:
    """What makes two requests the same: method, path, body, and the caller's role. Keys are
    per organisation; with the role in it, another role's token of the organisation cannot
    be answered a request it may not make (an approver's approval replayed to finance)."""
    return hashlib.sha256(_encoder.encode([method, path, msgspec.to_builtins(body), role])).digest()


async def in_transaction(pool: Any, flow: Flow) -> Any:
    """Run ``flow(conn)`` in one transaction, retrying deadlocks and serialization failures.

    A connection lost on the way (the server restarted, the backend was terminated, a
    failover) is a 503 ``database_unavailable``: the transaction rolled back, or, if the
    connection went during the commit, committed with its Idempotency-Key, so the client's
    retry with the same key does the work once either way. The pool drops the dead
    connection and opens a new one for the next request.
    """
    for attempt in range(MAX_TX_RETRIES):
        try:
            async with pool.acquire() as conn, gate.transaction_gates(), conn.transaction():
                return await flow(conn)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            log.warning("transaction_retry", attempt=attempt + 1)
        except TimeoutError:
            # no connection free within SETTLEMENT_POOL_ACQUIRE_TIMEOUT_S, or a statement past
            # SETTLEMENT_COMMAND_TIMEOUT_S (cancelled, rolled back): the database is far behind
            log.warning("database_timeout")
            raise database_too_busy() from None
        except Exception as exc:
            if not connection_lost(exc):
                raise
            log.warning("database_connection_lost", error_type=type(exc).__name__)
            raise database_unavailable() from None
    raise database_too_busy()


def database_too_busy() -> Unavailable:
    return Unavailable("the database was too busy; retry", code="too_busy")


def connection_lost(exc: BaseException) -> bool:
    """The connection to the database went away under ``exc`` (not a rule or a bug).

    asyncpg raises the loss itself (``ConnectionDoesNotExistError``, ``AdminShutdownError``)
    and, leaving the transaction's block, an ``InterfaceError`` about the closed connection
    with the loss as its context: the chain is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError | ConnectionError
        ):
            return True  # 08xxx; 57P01-03: terminated by an administrator, shut down, restarting
        current = current.__cause__ or current.__context__
    return False


def database_unavailable() -> Unavailable:
    return Unavailable(
        "the connection to the database was lost; retry (with the same Idempotency-Key for a POST)",
        code="database_unavailable",
    )


async def write(
    request: Request[Any, Any, Any],
    pool: Any,
    actor: Actor,
    body: Any,
    flow: Flow,
    *,
    status: int = 201,
    stored: Callable[[Any], Any] | None = None,
) -> Response[Any]:
    """Run a POST's flow once per Idempotency-Key and store its answer for replays.

    ``stored`` maps the answer to what is kept for a replay, for answers that
    must not be kept whole (a new API token's secret is shown once).
    """
    key = request.headers.get("idempotency-key")
    if not key:
        raise BadRequest(
            "send an Idempotency-Key header (any unique string up to 200 characters) with every POST",
            code="idempotency_key_required",
        )
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest("Idempotency-Key must be printable and at most 200 characters", code="idempotency_key_invalid")
    method, path = request.method, request.url.path
    digest = _request_hash(method, path, body, actor.role)

    async def run(conn: Any) -> tuple[int, Any, bool]:
        claimed = await conn.fetchval(
            "INSERT INTO idempotency_keys (organisation_id, key, method, path, request_hash, status, response) "
            "VALUES ($1, $2, $3, $4, $5, 0, 'null') ON CONFLICT DO NOTHING RETURNING true",
            actor.organisation_id,
            key,
            method,
            path,
            digest,
        )
        if not claimed:
            return await _replay(conn, actor, key, digest)
        result = await flow(conn)
        payload = msgspec.to_builtins(result)
        await conn.execute(
            "UPDATE idempotency_keys SET status = $3, response = $4 WHERE organisation_id = $1 AND key = $2",
            actor.organisation_id,
            key,
            status,
            stored(payload) if stored is not None else payload,
        )
        return status, payload, False

    try:
        code, payload, replayed = await in_transaction(pool, run)
    except SettlementError as exc:
        # A rule failure is the answer to this request: a replay gets it again.
        if 400 <= exc.status < 500 and not isinstance(exc, IdempotencyConflict) and exc.code not in _TRANSIENT:
            await _store_failure(pool, actor, key, method, path, digest, exc, path)
        raise
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    media = PROBLEM_JSON if code >= 400 else "application/json"
    return Response(content=payload, status_code=code, headers=headers, media_type=media)


# 409s that depend on timing rather than on the request: not stored.
_TRANSIENT = {"too_busy"}


async def _replay(conn: Any, actor: Actor, key: str, digest: bytes) -> tuple[int, Any, bool]:
    row = await conn.fetchrow(
        "SELECT request_hash, status, response FROM idempotency_keys WHERE organisation_id = $1 AND key = $2",
        actor.organisation_id,
        key,
    )
    if bytes(row["request_hash"]) != digest:
        raise IdempotencyConflict(
            "this Idempotency-Key was used with a different request; use a new key for a new request"
        )
    return row["status"], row["response"], True


async def _store_failure(
    pool: Any,
    actor: Actor,
    key: str,
    method: str,
    path: str,
    digest: bytes,
    exc: SettlementError,
    instance: str,
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO idempotency_keys (organisation_id, key, method, path, request_hash, status, response) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            actor.organisation_id,
            key,
            method,
            path,
            digest,
            exc.status,
            exc.problem(instance=instance),
        )


async def write_upload(
    request: Request[Any, Any, Any],
    pool: Any,
    actor: Actor,
    what: str,
    flow: Callable[[Any, bytes], Awaitable[Any]],
) -> Response[Any]:
    """A write whose body is a file (a bank's XML or MT940): raw bytes, never decoded as JSON."""
    data = await request.body()
    if not data:
        raise BadRequest(f"send the {what} as the request body", code="empty_body")
    return await write(request, pool, actor, data, lambda conn: flow(conn, data), status=200)
