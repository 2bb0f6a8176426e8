"""A voucher's days are Amsterdam days, whatever the server's time zone.

``valid_until`` is the last valid day in Europe/Amsterdam (README: "Dates are
local (Europe/Amsterdam) days"); a server running in UTC, as servers do, must
not let a voucher spend for an hour or two into the next Amsterdam day, nor
have the year-end sweep just after midnight find nothing to close.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from settlement import db
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
