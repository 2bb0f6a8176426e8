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


async def test_many_desks_issuing_at_once_never_overspend_and_are_not_turned_away(
    client: Any, world: World, live_server: LiveServer, db_dsn: str
) -> None:
    """30 vouchers issued at once against a fund with budget for 20: 20 are issued, 10 are
    refused for the budget, none answers 503. Each issue creates its voucher's account (which
    takes a key-share lock on the sponsor's ledger row) before booking (which locked that row
    FOR UPDATE): two issues at once deadlocked, and after three retries desks got too_busy."""
    r = await client.post(
        "/v1/funds",
        headers=world.h("gemeente_finance"),
        json={
            "code": "RUSH",
            "name": "Rush",
            "period_start": "2020-01-01",
            "period_end": "2099-12-31",
            "cap_per_voucher": 10_000,
            "validators": [world.ids["gemeente"], world.ids["leergeld"]],
        },
    )
    assert r.status_code == 201, r.text
    fund = r.json()["id"]
    r = await client.post(
        f"/v1/funds/{fund}/grants",
        headers=world.h("gemeente_finance"),
        json={"source": "eigen-middelen", "amount": 200_000},
    )
    assert r.status_code == 201, r.text
    desks = ["gemeente_validator", "leergeld_validator", "gemeente_finance"]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60, limits=httpx.Limits(max_connections=30)) as http:

        async def attempt(i: int) -> httpx.Response:
            return await http.post(
                "/v1/vouchers",
                headers=world.h(desks[i % 3], key=f"rush-{i}"),
                json={"fund_id": fund, "amount": 10_000, "beneficiary_ref": f"RUSH-{i}"},
            )

        responses = await asyncio.gather(*(attempt(i) for i in range(30)))
    codes = sorted((r.status_code, r.json().get("code")) for r in responses)
    assert [c for c, _ in codes].count(201) == 20, codes
    assert all(c == (409, "fund_budget_insufficient") for c in codes if c[0] != 201), codes
    r = await client.get(f"/v1/funds/{fund}/overview", headers=world.h("gemeente_finance"))
    assert r.json()["available"] == 0 and r.json()["issued"] == 200_000
    await assert_ledgers_balanced(db_dsn)
