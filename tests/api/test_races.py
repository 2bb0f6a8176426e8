"""Races over real HTTP: two requests on the same thing at once, forced into the
bad order by holding the sponsor's ledger row lock from a third connection
until both are queued on it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from settlement import db
from tests.api.conftest import World, assert_ledgers_balanced
from tests.api.test_vouchers_api import assert_adds_up, issue, overview
from tests.conftest import LiveServer


async def _waiting(dsn: str) -> int:
    conn = await db.connect(dsn)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return n
    finally:
        await conn.close()


async def wait_for_lock_waiters(dsn: str, n: int) -> None:
    for _ in range(500):
        if await _waiting(dsn) >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{n} requests never queued on the lock")


@asynccontextmanager
async def ledger_locked(dsn: str, sponsor_id: int) -> AsyncIterator[asyncpg.Connection]:
    """Hold the sponsor ledger's row lock (as a booking would) until the block ends."""
    conn = await db.connect(dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(
            "SELECT 1 FROM ledgers WHERE id = (SELECT ledger_id FROM sponsors WHERE organisation_id = $1) FOR UPDATE",
            sponsor_id,
        )
        try:
            yield conn
        finally:
            await tx.rollback()
    finally:
        await conn.close()


async def in_order(dsn: str, sponsor_id: int, *calls: Awaitable[httpx.Response]) -> list[httpx.Response]:
    """Start ``calls`` one after the other, each queued on the ledger lock before the next starts."""
    tasks = []
    async with ledger_locked(dsn, sponsor_id):
        base = await _waiting(dsn)
        for i, call in enumerate(calls, start=1):
            tasks.append(asyncio.ensure_future(call))
            await wait_for_lock_waiters(dsn, base + i)
    return list(await asyncio.gather(*tasks))


async def voucher_balance(dsn: str, voucher_id: str) -> int:
    conn = await db.connect(dsn)
    try:
        n: int = await conn.fetchval(
            "SELECT sum(a.credits_posted - a.debits_posted - a.debits_pending) FROM voucher_shares s "
            "JOIN accounts a ON a.id = s.account_id WHERE s.voucher_id = $1",
            uuid.UUID(voucher_id),
        )
        return n
    finally:
        await conn.close()


@pytest.mark.parametrize("refund_first", [True, False])
async def test_refund_racing_a_withdrawal_leaves_no_money_on_the_closed_voucher(
    client: Any, world: World, live_server: LiveServer, db_dsn: str, refund_first: bool
) -> None:
    v = await issue(client, world, amount=35_000)
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 10_000, "reference": "BON-R", "description": "fiets"},
    )
    assert r.status_code == 201, r.text
    red = r.json()
    before = await overview(client, world)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        refund_call = http.post(
            f"/v1/redemptions/{red['id']}/refunds",
            headers=world.h("bike_shop"),
            json={"amount": 4_000, "reason": "retour"},
        )
        withdraw_call = http.post(f"/v1/vouchers/{v['id']}/withdraw", headers=world.h("gemeente_finance"))
        if refund_first:
            refund, withdraw = await in_order(db_dsn, world.ids["gemeente"], refund_call, withdraw_call)
        else:
            withdraw, refund = await in_order(db_dsn, world.ids["gemeente"], withdraw_call, refund_call)
    assert refund.status_code == 201, refund.text
    assert withdraw.status_code == 200, withdraw.text
    assert withdraw.json()["state"] == "withdrawn"
    # everything the voucher could still spend, the refund included, is back in the fund
    assert await voucher_balance(db_dsn, v["id"]) == 0
    after = await overview(client, world)
    assert after["returned_to_fund"] - before["returned_to_fund"] == 35_000 - 10_000 + 4_000
    assert_adds_up(after)
    await assert_ledgers_balanced(db_dsn)


@pytest.mark.parametrize("spend_first", [True, False])
@pytest.mark.parametrize("how", ["reserve", "redeem"])
async def test_spending_racing_a_withdrawal_answers_voucher_withdrawn(
    client: Any, world: World, live_server: LiveServer, db_dsn: str, spend_first: bool, how: str
) -> None:
    """Spent first: the withdrawal cancels the reservation and returns the rest. Withdrawn
    first: the spend is refused as `voucher_withdrawn`, not as a short balance."""
    v = await issue(client, world, amount=35_000)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        if how == "reserve":
            spend_call = http.post(
                "/v1/reservations",
                headers=world.h("bike_shop"),
                json={"voucher_code": v["code"], "amount": 20_000, "description": "fiets"},
            )
        else:
            spend_call = http.post(
                "/v1/redemptions",
                headers=world.h("bike_shop"),
                json={"voucher_code": v["code"], "amount": 20_000, "reference": "BON-W", "description": "fiets"},
            )
        withdraw_call = http.post(f"/v1/vouchers/{v['id']}/withdraw", headers=world.h("gemeente_finance"))
        if spend_first:
            spend, withdraw = await in_order(db_dsn, world.ids["gemeente"], spend_call, withdraw_call)
        else:
            withdraw, spend = await in_order(db_dsn, world.ids["gemeente"], withdraw_call, spend_call)
    assert withdraw.status_code == 200, withdraw.text
    if spend_first:
        assert spend.status_code == 201, spend.text
    else:
        assert spend.status_code == 409 and spend.json()["code"] == "voucher_withdrawn", spend.text
    assert await voucher_balance(db_dsn, v["id"]) == 0
    assert_adds_up(await overview(client, world))
    await assert_ledgers_balanced(db_dsn)


async def test_bank_details_change_waits_for_the_export_paying_the_old_ones(
    client: Any, world: World, live_server: LiveServer, db_dsn: str
) -> None:
    """An export checks that each payment's bank details are still the active ones; a change
    approved while the export is being written must not slip in between that check and its
    commit (the file would pay details that were already replaced)."""
    from tests.api.test_payouts_api import approve, new_run

    run = await new_run(client, world)
    await approve(client, world, run["id"])
    r = await client.post(
        f"/v1/suppliers/{world.ids['bike_shop']}/bank-details",
        json={"iban": "NL91ABNA0417164300", "holder_name": "De Vries Fietsen BV"},
        headers=world.h("bike_shop"),
    )
    assert r.status_code == 201, r.text
    change = r.json()["id"]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        async with ledger_locked(db_dsn, world.ids["gemeente"]):
            base = await _waiting(db_dsn)
            exporting = asyncio.ensure_future(
                http.post(f"/v1/payout-runs/{run['id']}/export", headers=world.h("gemeente_finance"))
            )
            await wait_for_lock_waiters(db_dsn, base + 1)  # checked the details, now waits to book
            approving = asyncio.ensure_future(
                http.post(f"/v1/bank-detail-requests/{change}/approve", headers=world.h("gemeente_approver"))
            )
            for _ in range(250):
                if approving.done() or await _waiting(db_dsn) >= base + 2:
                    break
                await asyncio.sleep(0.02)
            approved_meanwhile = approving.done()
        exported, approved = await asyncio.gather(exporting, approving)
    assert exported.status_code == 200, exported.text
    assert approved.status_code == 200, approved.text
    assert not approved_meanwhile, "new bank details were approved while a file paying the old ones was exported"
