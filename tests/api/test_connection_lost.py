"""A database connection lost in the middle of a request (pg_terminate_backend, a
restart, a failover): the request answers 503 as problem+json, nothing of it is kept,
the pool hands out working connections again, and the client's retry with the same
Idempotency-Key does the work once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from settlement import db
from tests.api.conftest import World, assert_ledgers_balanced, ledger_state
from tests.api.test_races import _waiting, ledger_locked, wait_for_lock_waiters
from tests.conftest import LiveServer


async def _terminate_lock_waiters(dsn: str) -> int:
    conn = await db.connect(dsn)
    try:
        n: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return n
    finally:
        await conn.close()


async def test_connection_killed_mid_request_answers_503_and_the_retry_does_it_once(
    client: Any, world: World, live_server: LiveServer, db_dsn: str
) -> None:
    before = await ledger_state(db_dsn)
    headers = world.h("gemeente_validator", key="lost-connection-1")
    body = {"amount": 12_345, "beneficiary_ref": "WK-LOST-1", "fund_id": world.ids["kindpakket"]}
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        async with ledger_locked(db_dsn, world.ids["gemeente"]):
            base = await _waiting(db_dsn)
            call = asyncio.ensure_future(http.post("/v1/vouchers", json=body, headers=headers))
            await wait_for_lock_waiters(db_dsn, base + 1)  # inside its transaction, waiting to book
            assert await _terminate_lock_waiters(db_dsn) == 1
            lost = await call
        assert lost.status_code == 503, lost.text
        assert lost.headers["content-type"].startswith("application/problem+json")
        assert lost.json()["code"] == "database_unavailable"
        assert "Traceback" not in lost.text
        assert await ledger_state(db_dsn) == before
        conn = await db.connect(db_dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'lost-connection-1'") == 0
        finally:
            await conn.close()

        # the pool recovers and the retry with the same key issues the voucher once
        retry = await http.post("/v1/vouchers", json=body, headers=headers)
        assert retry.status_code == 201, retry.text
        again = await http.post("/v1/vouchers", json=body, headers=headers)
        assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
        assert again.json() == retry.json()
    conn = await db.connect(db_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM vouchers WHERE beneficiary_ref = 'WK-LOST-1'") == 1
    finally:
        await conn.close()
    await assert_ledgers_balanced(db_dsn)


def test_a_connection_lost_outside_a_transaction_is_a_503_too() -> None:
    """The token lookup runs outside ``in_transaction``: the problem handler maps the loss."""
    from types import SimpleNamespace

    import asyncpg

    from settlement.problems import handle_unexpected

    request: Any = SimpleNamespace(url=SimpleNamespace(path="/v1/vouchers"))
    r = handle_unexpected(request, asyncpg.ConnectionDoesNotExistError("connection was closed"))
    assert r.status_code == 503 and r.content["code"] == "database_unavailable"
    assert handle_unexpected(request, RuntimeError("a bug")).status_code == 500


async def test_no_connection_free_in_time_answers_503_too_busy(world: World, db_dsn: str, test_settings: Any) -> None:
    """Every pooled connection busy for longer than SETTLEMENT_POOL_ACQUIRE_TIMEOUT_S: the
    request waiting for one answers 503 `too_busy` (nothing was done), not a 500."""
    import msgspec

    settings = msgspec.structs.replace(test_settings, pool_min_size=1, pool_max_size=1, pool_acquire_timeout_s=0.2)
    server = LiveServer(settings, db_dsn)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            # the token lookups go first, while the one connection is free (they are cached)
            for who in ("gemeente_validator", "gemeente_finance"):
                r = await http.get(f"/v1/funds/{world.ids['kindpakket']}/overview", headers=world.h(who))
                assert r.status_code in (200, 403), r.text
            body = {"amount": 1_000, "beneficiary_ref": "WK-BUSY-1", "fund_id": world.ids["kindpakket"]}
            async with ledger_locked(db_dsn, world.ids["gemeente"]):
                base = await _waiting(db_dsn)
                holding = asyncio.ensure_future(
                    http.post("/v1/vouchers", json=body, headers=world.h("gemeente_validator"))
                )
                await wait_for_lock_waiters(db_dsn, base + 1)  # holds the pool's only connection
                busy = await http.get(
                    f"/v1/funds/{world.ids['kindpakket']}/overview", headers=world.h("gemeente_finance")
                )
            assert (await holding).status_code == 201
        assert busy.status_code == 503, busy.text
        assert busy.headers["content-type"].startswith("application/problem+json")
        assert busy.json()["code"] == "too_busy"
    finally:
        server.stop()
