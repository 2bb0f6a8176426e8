"""Many clients spending one voucher at once over real HTTP never overspend it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from settlement import db
from tests.api.conftest import World, assert_ledgers_balanced
from tests.api.test_vouchers_api import issue
from tests.conftest import LiveServer


async def test_100_concurrent_reservations_on_one_voucher(
    client: Any, world: World, live_server: LiveServer, db_dsn: str
) -> None:
    v = await issue(client, world, amount=35_000)
    amount = 1_000  # exactly 35 fit
    async with httpx.AsyncClient(
        base_url=live_server.url, timeout=60, limits=httpx.Limits(max_connections=100)
    ) as http:

        async def attempt(i: int) -> httpx.Response:
            return await http.post(
                "/v1/reservations",
                headers=world.h("bike_shop", key=f"c-{i}"),
                json={"voucher_code": v["code"], "amount": amount, "description": f"try {i}"},
            )

        responses = await asyncio.gather(*(attempt(i) for i in range(100)))
    codes = [r.status_code for r in responses]
    assert codes.count(201) == 35, codes
    assert all(r.json()["code"] == "voucher_balance_insufficient" for r in responses if r.status_code != 201)
    conn = await db.connect(db_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT sum(a.debits_pending) AS held, sum(a.credits_posted - a.debits_posted) AS b "
            "FROM voucher_shares s JOIN accounts a ON a.id = s.account_id "
            "WHERE s.voucher_id = $1",
            __import__("uuid").UUID(v["id"]),
        )
        assert row["held"] == 35_000 and row["b"] == 35_000
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM reservations WHERE voucher_id = $1", __import__("uuid").UUID(v["id"])
            )
            == 35
        )
    finally:
        await conn.close()
    await assert_ledgers_balanced(db_dsn)
