"""Numbered SQL migrations in ops/migrations, applied in order.

Each file runs in its own transaction under an advisory lock, so two
processes migrating at once is safe: the second waits, then finds nothing to
do. Applied files are recorded with their sha256; a changed file is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import asyncpg
import msgspec

# An arbitrary constant shared by every process that migrates this schema.
MIGRATION_LOCK_KEY = 0x5E771E
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    pass


class Migration(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    name: str
    sha256: str
    sql: str


def discover(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"migrations directory not found: {directory}")
    found: list[Migration] = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        m = _NAME.match(path.name)
        if m is None:
            raise MigrationError(f"migration file name must look like 0001_name.sql: {path.name}")
        sql = path.read_text(encoding="utf-8")
        found.append(
            Migration(
                version=int(m.group(1)),
                name=path.name,
                sha256=hashlib.sha256(sql.encode()).hexdigest(),
                sql=sql,
            )
        )
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a number")
    return found


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def applied(conn: asyncpg.Connection) -> dict[int, tuple[str, str]]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, name, sha256 FROM schema_migrations")
    return {r["version"]: (r["name"], r["sha256"]) for r in rows}


def check_changed(found: list[Migration], done: dict[int, tuple[str, str]]) -> None:
    for m in found:
        if m.version in done and done[m.version][1] != m.sha256:
            raise MigrationError(
                f"migration {m.name} was changed after it was applied "
                f"(recorded sha256 {done[m.version][1][:12]}, file {m.sha256[:12]}); "
                "add a new migration instead"
            )


async def pending(conn: asyncpg.Connection, directory: Path) -> list[Migration]:
    found = discover(directory)
    done = await applied(conn)
    check_changed(found, done)
    return [m for m in found if m.version not in done]


async def migrate(
    conn: asyncpg.Connection,
    directory: Path,
    progress: Callable[[Migration], None] | None = None,
) -> list[Migration]:
    """Apply the pending migrations; return the ones applied (empty when current)."""
    found = discover(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_BOOKKEEPING)
        done = await applied(conn)
        check_changed(found, done)
        ran: list[Migration] = []
        for m in found:
            if m.version in done:
                continue
            if progress:
                progress(m)
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.sha256,
                )
            ran.append(m)
        return ran
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
