"""A throw-away, migrated database on the same server, for benchmarks that must
not mix with (or be disturbed by) the data already there."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from settlement import migrate


def with_database(dsn: str, name: str) -> str:
    head, sep, query = dsn.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}{sep}{query}"


@asynccontextmanager
async def scratch_database(
    dsn: str, migrations: Path, *, prefix: str = "bench", keep: bool = False
) -> AsyncIterator[str]:
    """CREATE DATABASE, migrate, yield its DSN, DROP it (unless ``keep``). Needs CREATEDB."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        target = with_database(dsn, name)
        conn = await asyncpg.connect(target)
        try:
            await migrate.migrate(conn, migrations)
        finally:
            await conn.close()
        yield target
    finally:
        if not keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
