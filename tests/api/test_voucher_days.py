"""A voucher's days are Amsterdam days, whatever the server's time zone.

``valid_until`` is the last valid day in Europe/Amsterdam (README: "Dates are
local (Europe/Amsterdam) days"); a server running in UTC, as servers do, must
not let a voucher spend for an hour or two into the next Amsterdam day, nor
have the year-end sweep just after midnight find nothing to close.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from settlement import db
from settlement.auth import load_actor
from settlement.vouchers import flows as vouchers
from settlement.vouchers.flows import expire_vouchers
from tests.api.conftest import World, assert_ledgers_balanced
from tests.api.test_vouchers_api import issue

AHEAD, BEHIND = "Etc/GMT-14", "Etc/GMT+12"  # UTC+14 and UTC-12: one of them is on another day than Amsterdam


@pytest.fixture
def process_tz() -> Iterator[Callable[[str], None]]:
    before = os.environ.get("TZ")

    def set_tz(tz: str) -> None:
        os.environ["TZ"] = tz
        time.tzset()

    yield set_tz
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def amsterdam_today() -> Any:
    return datetime.now(ZoneInfo("Europe/Amsterdam")).date()


async def _reserve(client: Any, world: World, code: str) -> Any:
    return await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": code, "amount": 1_000, "description": "x"},
    )


async def test_valid_until_is_an_amsterdam_day(
    client: Any, world: World, db_dsn: str, process_tz: Callable[[str], None]
) -> None:
    tested = 0
    today = amsterdam_today()
    if datetime.now(ZoneInfo(AHEAD)).date() != today:
        # The server's clock says tomorrow already; in Amsterdam it is still the last valid day.
        process_tz(AHEAD)
        v = await issue(client, world, amount=10_000, valid_until=today.isoformat())
        assert v["valid_from"] == v["valid_until"] == today.isoformat()
        conn = await db.connect(db_dsn)
        try:
            async with conn.transaction():
                await expire_vouchers(conn)
            assert await conn.fetchval("SELECT state FROM vouchers WHERE id = $1", uuid.UUID(v["id"])) == "active"
        finally:
            await conn.close()
        r = await _reserve(client, world, v["code"])
        assert r.status_code == 201, r.text
        tested += 1
    if datetime.now(ZoneInfo(BEHIND)).date() != today:
        # The server's clock says yesterday still; in Amsterdam yesterday was the last valid day.
        process_tz(BEHIND)
        v = await issue(client, world, amount=10_000)
        conn = await db.connect(db_dsn)
        try:
            await conn.execute(
                "UPDATE vouchers SET valid_from = $2, valid_until = $3 WHERE id = $1",
                uuid.UUID(v["id"]),
                today - timedelta(days=30),
                today - timedelta(days=1),
            )
            r = await _reserve(client, world, v["code"])
            assert r.status_code == 409 and r.json()["code"] == "voucher_expired", r.text
            async with conn.transaction():
                assert await expire_vouchers(conn) >= 1
            assert await conn.fetchval("SELECT state FROM vouchers WHERE id = $1", uuid.UUID(v["id"])) == "expired"
        finally:
            await conn.close()
        tested += 1
    assert tested >= 1
    await assert_ledgers_balanced(db_dsn)


async def test_a_refund_racing_the_expiry_sweep_returns_the_money_to_the_fund(
    client: Any, world: World, db_dsn: str
) -> None:
    """The sweep has closed the voucher but not committed when the supplier refunds: the
    refund must see the voucher closed and send the money on to the fund, not leave it
    on an expired voucher that nothing will ever sweep again."""
    from tests.api.test_vouchers_api import assert_adds_up, overview

    v = await issue(client, world, amount=10_000)
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("sports_club"),
        json={"voucher_code": v["code"], "amount": 6_000, "reference": "L-9", "description": "lid"},
    )
    assert r.status_code == 201, r.text
    red = r.json()
    sweep, other = await db.connect(db_dsn), await db.connect(db_dsn)
    try:
        club = await load_actor(
            other,
            await other.fetchval(
                "SELECT id FROM api_tokens WHERE organisation_id = $1 AND role = 'supplier'", world.ids["sports_club"]
            ),
        )

        async def refund() -> None:
            async with other.transaction():
                await vouchers.refund(other, club, uuid.UUID(red["id"]), 1_000, "te veel")

        tx = sweep.transaction()
        await tx.start()
        assert await expire_vouchers(sweep, today=date.fromisoformat(v["valid_until"]) + timedelta(days=1))
        task = asyncio.create_task(refund())
        await asyncio.sleep(1.0)  # the refund has read the voucher and waits for a lock
        assert not task.done()
        await tx.commit()
        await asyncio.wait_for(task, 30)
    finally:
        await sweep.close()
        await other.close()
    r = await client.get(f"/v1/vouchers/{v['id']}", headers=world.h("gemeente_finance"))
    assert (r.json()["state"], r.json()["available"]) == ("expired", 0)
    conn = await db.connect(db_dsn)
    try:
        left = await conn.fetchval(
            "SELECT sum(a.credits_posted - a.debits_posted) FROM accounts a JOIN voucher_shares s "
            "ON s.account_id = a.id WHERE s.voucher_id = $1",
            uuid.UUID(v["id"]),
        )
    finally:
        await conn.close()
    assert left == 0, "money left on an expired voucher"
    assert_adds_up(await overview(client, world))
    await assert_ledgers_balanced(db_dsn)


async def test_a_reservation_ends_with_its_voucher(client: Any, world: World, db_dsn: str) -> None:
    """A voucher valid until today: a reservation on it ends at the end of today (Amsterdam),
    not after the fund's reservation expiry, in the API and in the ledger's hold alike. Otherwise
    whether it could still be redeemed tomorrow would depend on when the year-end sweep ran."""
    from settlement.clock import end_of_day

    today = amsterdam_today()
    v = await issue(client, world, amount=10_000, valid_until=today.isoformat())
    r = await _reserve(client, world, v["code"])
    assert r.status_code == 201, r.text
    expires = datetime.fromisoformat(r.json()["expires_at"])
    assert expires <= end_of_day(today)
    conn = await db.connect(db_dsn)
    try:
        hold = await conn.fetchval(
            "SELECT h.expires_at FROM holds h JOIN reservation_parts p ON p.pending_transfer_id = h.transfer_id "
            "WHERE p.reservation_id = $1",
            uuid.UUID(r.json()["id"]),
        )
        days = await conn.fetchval("SELECT reservation_expiry_days FROM funds WHERE id = $1", world.ids["kindpakket"])
    finally:
        await conn.close()
    assert expires <= hold <= end_of_day(today)

    # a voucher valid for longer keeps the fund's reservation expiry, up to its own end
    v = await issue(client, world, amount=10_000)
    r = await _reserve(client, world, v["code"])
    assert r.status_code == 201, r.text
    created = datetime.fromisoformat(r.json()["created_at"])
    held = datetime.fromisoformat(r.json()["expires_at"]) - created
    voucher_left = end_of_day(date.fromisoformat(v["valid_until"])) - created
    if voucher_left > timedelta(days=days, minutes=1):
        assert held == timedelta(days=days)
    else:
        assert voucher_left - timedelta(minutes=1) <= held <= voucher_left
    await assert_ledgers_balanced(db_dsn)
