from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from settlement import migrate
from settlement.config import Settings


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_empty_database_to_latest_then_nothing(empty_dsn: str, test_settings: Settings) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        found = migrate.discover(test_settings.migrations_dir)
        ran = await migrate.migrate(conn, test_settings.migrations_dir)
        assert [m.version for m in ran] == [m.version for m in found]
        assert {"schema_migrations", "accounts", "transfers", "journal_entries"} <= await _tables(conn)
        assert await migrate.migrate(conn, test_settings.migrations_dir) == []
        assert await migrate.pending(conn, test_settings.migrations_dir) == []
    finally:
        await conn.close()


async def test_changed_applied_file_is_refused(empty_dsn: str, test_settings: Settings, tmp_path: Path) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(test_settings.migrations_dir, copy)
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate.migrate(conn, copy)
        first = sorted(copy.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited after the fact\n")
        with pytest.raises(migrate.MigrationError, match=r"was changed after it was applied"):
            await migrate.migrate(conn, copy)
        with pytest.raises(migrate.MigrationError):
            await migrate.pending(conn, copy)
    finally:
        await conn.close()


async def test_two_processes_migrating_at_once(empty_dsn: str, test_settings: Settings) -> None:
    a = await asyncpg.connect(empty_dsn)
    b = await asyncpg.connect(empty_dsn)
    try:
        ran_a, ran_b = await asyncio.gather(
            migrate.migrate(a, test_settings.migrations_dir), migrate.migrate(b, test_settings.migrations_dir)
        )
        # exactly one of them did the work; the other waited and found nothing to do
        total = len(migrate.discover(test_settings.migrations_dir))
        assert sorted([len(ran_a), len(ran_b)]) == [0, total]
        assert await a.fetchval("SELECT count(*) FROM schema_migrations") == total
    finally:
        await a.close()
        await b.close()


async def test_failing_migration_leaves_nothing(empty_dsn: str, test_settings: Settings, tmp_path: Path) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(test_settings.migrations_dir, copy)
    (copy / "9999_broken.sql").write_text("CREATE TABLE half_done (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(empty_dsn)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await migrate.migrate(conn, copy)
        assert "half_done" not in await _tables(conn)
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") < 9999
    finally:
        await conn.close()


def test_badly_named_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "first.sql").write_text("SELECT 1")
    with pytest.raises(migrate.MigrationError, match=r"0001_name\.sql"):
        migrate.discover(tmp_path)


async def test_0009_scrubs_token_secrets_from_the_idempotency_store(
    empty_dsn: str, test_settings: Settings, tmp_path: Path
) -> None:
    before = tmp_path / "migrations"
    before.mkdir()
    for f in sorted(test_settings.migrations_dir.glob("*.sql")):
        if int(f.name[:4]) < 9:
            shutil.copy(f, before / f.name)
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate.migrate(conn, before)
        insert = (
            "INSERT INTO idempotency_keys (organisation_id, key, method, path, request_hash, status, response) "
            "VALUES (1, $1, 'POST', $2, '\\x00', $3, $4::jsonb)"
        )
        await conn.execute(insert, "k1", "/v1/organisations/7/tokens", 201, '{"id": 3, "token": "stl_secret"}')
        await conn.execute(insert, "k2", "/v1/organisations/7/tokens", 422, '{"code": "role_not_allowed"}')
        await conn.execute(insert, "k3", "/v1/vouchers", 201, '{"token": "not a secret"}')
        await migrate.migrate(conn, test_settings.migrations_dir)
        rows = await conn.fetch("SELECT key, response::text AS r FROM idempotency_keys ORDER BY key")
        assert [(r["key"], r["r"]) for r in rows] == [
            ("k1", '{"id": 3, "token": null}'),
            ("k2", '{"code": "role_not_allowed"}'),
            ("k3", '{"token": "not a secret"}'),
        ]
    finally:
        await conn.close()
