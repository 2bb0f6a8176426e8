"""Closing and returning under concurrency, over real HTTP, forced into each order by
holding the sponsor's ledger lock until every request is queued (tests/api/test_races.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import World, assert_ledgers_balanced
from tests.api.test_fund_close import fund_overview, new_fund
from tests.api.test_races import in_order
from tests.api.test_vouchers_api import assert_adds_up
from tests.conftest import LiveServer


@pytest.mark.parametrize("close_first", [True, False])
async def test_closing_races_issuing_a_voucher(
    client: Any, world: World, live_server: LiveServer, db_dsn: str, close_first: bool
) -> None:
    """Never a voucher of a closed fund: closed first, the issue answers fund_closed (not a
    short budget); issued first, the close is refused and lists that voucher."""
    f = await new_fund(client, world, "RACE", {"rijk": 100_000, "provincie": 50_000})
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        close_call = http.post(f"/v1/funds/{f}/close", headers=world.h("gemeente_finance"), json={"reason": "einde"})
        issue_call = http.post(
            "/v1/vouchers",
            headers=world.h("gemeente_validator"),
            json={"fund_id": f, "amount": 35_000, "beneficiary_ref": "WK-RACE-1"},
        )
        if close_first:
            close, issued = await in_order(db_dsn, world.ids["gemeente"], close_call, issue_call)
        else:
            issued, close = await in_order(db_dsn, world.ids["gemeente"], issue_call, close_call)
    o = await fund_overview(client, world, f)
    assert_adds_up(o)
    if close_first:
        assert close.status_code == 200, close.text
        assert (issued.status_code, issued.json()["code"]) == (409, "fund_closed")
        assert close.json()["total_returned"] == 150_000
        assert (o["available"], o["issued"], o["returned_to_sources"]) == (0, 0, 150_000)
    else:
        assert issued.status_code == 201, issued.text
        assert (close.status_code, close.json()["code"]) == (409, "fund_has_outstanding_vouchers")
        assert [v["code"] for v in close.json()["vouchers"]] == [issued.json()["code"]]
        assert (o["available"], o["issued"], o["returned_to_sources"]) == (115_000, 35_000, 0)
        r = await client.get(f"/v1/funds/{f}", headers=world.h("gemeente_finance"))
        assert r.json()["state"] == "open"
    await assert_ledgers_balanced(db_dsn)


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        # together more than the fund's 60,000 available (vouchers hold the other 90,000)
        ({"source": "rijk", "amount": 35_000}, {"source": "provincie", "amount": 35_000}, "return_exceeds_available"),
        # together more than the 50,000 the source granted
        (
            {"source": "provincie", "amount": 30_000},
            {"source": "provincie", "amount": 30_000},
            "return_exceeds_net_grant",
        ),
    ],
)
async def test_two_returns_race(
    client: Any,
    world: World,
    live_server: LiveServer,
    db_dsn: str,
    first: dict[str, Any],
    second: dict[str, Any],
    code: str,
) -> None:
    f = await new_fund(client, world, "TWEE", {"rijk": 100_000, "provincie": 50_000})
    for i in range(2):
        r = await client.post(
            "/v1/vouchers",
            headers=world.h("gemeente_validator"),
            json={"fund_id": f, "amount": 45_000, "beneficiary_ref": f"WK-R-{i}"},
        )
        assert r.status_code == 201, r.text
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        calls = [
            http.post(f"/v1/funds/{f}/returns", headers=world.h("gemeente_finance"), json={**body, "reason": "kort"})
            for body in (first, second)
        ]
        answers = await in_order(db_dsn, world.ids["gemeente"], *calls)
    assert [a.status_code for a in answers] == [201, 409], [a.text for a in answers]
    assert answers[1].json()["code"] == code
    o = await fund_overview(client, world, f)
    assert_adds_up(o)
    assert (o["available"], o["returned_to_sources"]) == (60_000 - first["amount"], first["amount"])
    await assert_ledgers_balanced(db_dsn)
