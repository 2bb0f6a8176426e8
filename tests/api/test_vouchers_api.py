"""The voucher life cycle over HTTP, posting exactly by DESIGN.md's rules."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from settlement import db
from settlement.vouchers.flows import expire_vouchers
from tests.api.conftest import World, assert_ledgers_balanced, ledger_state


async def issue(client: Any, world: World, who: str = "gemeente_validator", **body: Any) -> dict[str, Any]:
    body.setdefault("amount", 35_000)
    body.setdefault("beneficiary_ref", "WK-TEST-1")
    if "shares" not in body:
        body.setdefault("fund_id", world.ids["kindpakket"])
    r = await client.post("/v1/vouchers", json=body, headers=world.h(who))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def overview(client: Any, world: World, fund: str = "kindpakket", who: str = "gemeente_finance") -> Any:
    r = await client.get(f"/v1/funds/{world.ids[fund]}/overview", headers=world.h(who))
    assert r.status_code == 200, r.text
    return r.json()


def assert_adds_up(o: dict[str, Any]) -> None:
    assert o["granted"] == sum(s["granted"] for s in o["by_source"])
    assert o["returned_to_sources"] == sum(s["returned"] for s in o["by_source"])
    for s in o["by_source"]:
        assert s["net_granted"] == s["granted"] - s["returned"] >= 0, s
    assert o["net_granted"] == o["granted"] - o["returned_to_sources"]
    assert o["net_granted"] == o["available"] + o["issued"]
    assert o["issued"] == o["vouchers_outstanding"] + o["reserved"] + o["redeemed"]
    assert o["redeemed"] == o["open_payable"] + o["in_payout"] + o["paid"]


async def test_reserve_redeem_for_less_and_overview_adds_up(client: Any, world: World, db_dsn: str) -> None:
    before = await overview(client, world)
    assert_adds_up(before)
    v = await issue(client, world)
    assert v["available"] == 35_000
    assert v["beneficiary_ref"] == "WK-TEST-1"

    r = await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 20_000, "description": "schoolfiets"},
    )
    assert r.status_code == 201, r.text
    res = r.json()
    assert res["state"] == "held"
    mid = await overview(client, world)
    assert mid["reserved"] - before["reserved"] == 20_000
    assert_adds_up(mid)

    r = await client.post(
        f"/v1/reservations/{res['id']}/redeem",
        headers=world.h("bike_shop"),
        json={"amount": 18_950, "reference": "BON-1"},
    )
    assert r.status_code == 201, r.text
    red = r.json()
    assert red["amount"] == 18_950
    assert red["status"] == "open"

    after = await overview(client, world)
    assert_adds_up(after)
    assert after["reserved"] == before["reserved"]
    assert after["redeemed"] - before["redeemed"] == 18_950
    assert after["available"] == before["available"] - 35_000

    r = await client.get(f"/v1/vouchers/{v['id']}", headers=world.h("gemeente_finance"))
    assert r.json()["available"] == 35_000 - 18_950
    assert r.json()["spent"] == 18_950
    await assert_ledgers_balanced(db_dsn)


async def test_co_funded_redemption_splits_exactly(client: Any, world: World, db_dsn: str) -> None:
    v = await issue(
        client,
        world,
        who="leergeld_validator",
        amount=30_001,
        shares=[
            {"fund_id": world.ids["kindpakket"], "bp": 7_000},
            {"fund_id": world.ids["fiets"], "bp": 3_000},
        ],
    )
    assert [s["amount"] for s in v["shares"]] == [21_001, 9_000]  # 21000.7 + 9000.3: the cent goes to 0.7
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 10_001, "reference": "B-9", "description": "fiets"},
    )
    assert r.status_code == 201, r.text
    # the whole balance can still be spent, to the cent, despite rounding drift
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 20_000, "reference": "B-10", "description": "slot"},
    )
    assert r.status_code == 201, r.text
    r = await client.get(f"/v1/vouchers/{v['id']}", headers=world.h("leergeld_finance"))
    assert r.json()["available"] == 0
    await assert_ledgers_balanced(db_dsn)
    o1, o2 = await overview(client, world), await overview(client, world, "fiets", "leergeld_finance")
    assert_adds_up(o1)
    assert_adds_up(o2)


async def test_cancel_and_refund_and_withdraw_return_money(client: Any, world: World, db_dsn: str) -> None:
    v = await issue(client, world, amount=10_000)
    r = await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 4_000, "description": "x"},
    )
    res = r.json()
    r = await client.post(f"/v1/reservations/{res['id']}/cancel", headers=world.h("bike_shop"))
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("sports_club"),
        json={"voucher_code": v["code"], "amount": 6_000, "reference": "L-1", "description": "lid"},
    )
    red = r.json()
    r = await client.post(
        f"/v1/redemptions/{red['id']}/refunds",
        headers=world.h("sports_club"),
        json={"amount": 1_000, "reason": "korting"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/redemptions/{red['id']}/refunds",
        headers=world.h("sports_club"),
        json={"amount": 5_001, "reason": "te veel"},
    )
    assert r.status_code == 409 and r.json()["code"] == "refund_exceeds_redemption"
    before = await overview(client, world)
    r = await client.post(f"/v1/vouchers/{v['id']}/withdraw", headers=world.h("gemeente_finance"))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "withdrawn"
    after = await overview(client, world)
    assert after["available"] - before["available"] == 10_000 - 5_000  # spent 6000, refunded 1000
    assert after["returned_to_fund"] - before["returned_to_fund"] == 5_000
    assert_adds_up(after)
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("sports_club"),
        json={"voucher_code": v["code"], "amount": 1, "reference": "L-2", "description": "x"},
    )
    assert r.status_code == 409 and r.json()["code"] == "voucher_withdrawn"
    await assert_ledgers_balanced(db_dsn)


async def test_bulk_issue_reports_each_item(client: Any, world: World) -> None:
    items = [{"fund_id": world.ids["kindpakket"], "amount": 35_000, "beneficiary_ref": f"B-{i}"} for i in range(5)]
    items.append({"fund_id": world.ids["kindpakket"], "amount": 99_999, "beneficiary_ref": "over-cap"})
    items.append({"fund_id": 999_999, "amount": 100, "beneficiary_ref": "unknown fund"})
    items.append({"amount": 100, "beneficiary_ref": "no fund"})
    r = await client.post("/v1/vouchers/bulk", json={"items": items}, headers=world.h("gemeente_validator"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued"] == 5 and body["failed"] == 3
    assert [x["error"] for x in body["results"][5:]] == [
        "amount_exceeds_cap",
        "fund_not_found",
        "shares_invalid",
    ]
    assert [x["index"] for x in body["results"]] == list(range(8))


async def test_fund_budget_cannot_be_overspent(client: Any, world: World, db_dsn: str) -> None:
    o = await overview(client, world, "fiets", "leergeld_finance")
    n = o["available"] // 15_000 + 1
    items = [{"fund_id": world.ids["fiets"], "amount": 15_000, "beneficiary_ref": f"F-{i}"} for i in range(n)]
    r = await client.post("/v1/vouchers/bulk", json={"items": items}, headers=world.h("leergeld_validator"))
    body = r.json()
    assert body["issued"] == n - 1
    assert body["results"][-1]["error"] == "fund_budget_insufficient"
    o = await overview(client, world, "fiets", "leergeld_finance")
    assert o["available"] == o["granted"] - o["issued"] >= 0
    await assert_ledgers_balanced(db_dsn)


async def test_idempotent_replay_and_conflict(client: Any, world: World, db_dsn: str) -> None:
    body = {"fund_id": world.ids["kindpakket"], "amount": 5_000, "beneficiary_ref": "IDEM"}
    h = world.h("gemeente_validator", key="same-key")
    first = await client.post("/v1/vouchers", json=body, headers=h)
    state = await ledger_state(db_dsn)
    again = await client.post("/v1/vouchers", json=body, headers=h)
    assert again.status_code == first.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await ledger_state(db_dsn) == state
    other = await client.post("/v1/vouchers", json={**body, "amount": 5_001}, headers=h)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert await ledger_state(db_dsn) == state
    missing = await client.post("/v1/vouchers", json=body, headers={"Authorization": h["Authorization"]})
    assert missing.status_code == 400 and missing.json()["code"] == "idempotency_key_required"


async def test_replayed_rule_failure_answers_the_same(client: Any, world: World) -> None:
    h = world.h("bike_shop", key="fail-key")
    body = {"voucher_code": "V-NOPE-NOPE-NOPE", "amount": 100, "reference": "x", "description": "x"}
    a = await client.post("/v1/redemptions", json=body, headers=h)
    b = await client.post("/v1/redemptions", json=body, headers=h)
    assert a.status_code == b.status_code == 404
    assert a.json()["code"] == b.json()["code"] == "voucher_not_found"


async def _lapse_reservation(db_dsn: str, reservation_id: str) -> None:
    """Time passes: the reservation's holds lie past their expiry; the expiry job has not run yet."""
    conn = await db.connect(db_dsn)
    try:
        await conn.execute(
            "UPDATE holds SET expires_at = now() - interval '1 second' WHERE transfer_id IN "
            "(SELECT pending_transfer_id FROM reservation_parts WHERE reservation_id = $1)",
            uuid.UUID(reservation_id),
        )
    finally:
        await conn.close()


async def _closed_reservation(db_dsn: str, reservation_id: str) -> tuple[str, list[str], list[str]]:
    """The reservation's state, its holds' states and the kinds of the transfers that resolved them."""
    conn = await db.connect(db_dsn)
    try:
        rid = uuid.UUID(reservation_id)
        state = await conn.fetchval("SELECT state FROM reservations WHERE id = $1", rid)
        holds = await conn.fetch(
            "SELECT h.state, t.kind FROM reservation_parts p JOIN holds h ON h.transfer_id = p.pending_transfer_id "
            "LEFT JOIN transfers t ON t.pending_id = h.transfer_id WHERE p.reservation_id = $1",
            rid,
        )
    finally:
        await conn.close()
    return state, [h["state"] for h in holds], [h["kind"] for h in holds]


async def test_withdraw_voucher_after_its_reservation_lapsed(client: Any, world: World, db_dsn: str) -> None:
    # One reservation lapsed (the expiry job has not reached it), one still running: withdrawing
    # expires the first as the job would, voids the second, and all 10,000 go back to the fund.
    before = await overview(client, world)
    v = await issue(client, world, amount=10_000)
    ids = []
    for amount in (4_000, 1_000):
        r = await client.post(
            "/v1/reservations",
            headers=world.h("bike_shop"),
            json={"voucher_code": v["code"], "amount": amount, "description": "x"},
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    await _lapse_reservation(db_dsn, ids[0])
    r = await client.post(f"/v1/vouchers/{v['id']}/withdraw", headers=world.h("gemeente_finance"))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "withdrawn"
    assert await _closed_reservation(db_dsn, ids[0]) == ("expired", ["expired"], ["expire_pending"])
    assert await _closed_reservation(db_dsn, ids[1]) == ("cancelled", ["voided"], ["void_pending"])
    after = await overview(client, world)
    assert after["available"] == before["available"]
    assert after["reserved"] == before["reserved"]
    assert_adds_up(after)
    await assert_ledgers_balanced(db_dsn)


async def test_expiry_sweep_with_a_lapsed_reservation(client: Any, world: World, db_dsn: str) -> None:
    # The year-end sweep meets a reservation whose hold lapsed before the hold expiry job ran:
    # it expires the hold itself instead of aborting its whole batch.
    v = await issue(client, world, amount=10_000)
    r = await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 4_000, "description": "x"},
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    await _lapse_reservation(db_dsn, rid)
    conn = await db.connect(db_dsn)
    try:
        day_after = date.fromisoformat(v["valid_until"]) + timedelta(days=1)
        async with conn.transaction():
            assert await expire_vouchers(conn, today=day_after) >= 1
        assert await conn.fetchval("SELECT state FROM vouchers WHERE id = $1", uuid.UUID(v["id"])) == "expired"
    finally:
        await conn.close()
    assert await _closed_reservation(db_dsn, rid) == ("expired", ["expired"], ["expire_pending"])
    r = await client.get(f"/v1/vouchers/{v['id']}", headers=world.h("gemeente_finance"))
    assert (r.json()["state"], r.json()["available"], r.json()["spent"]) == ("expired", 0, 0)
    assert_adds_up(await overview(client, world))  # the sweep closed the world's other vouchers too
    await assert_ledgers_balanced(db_dsn)


async def test_voucher_history_shows_a_released_hold_as_money_back(client: Any, world: World) -> None:
    # A cancelled reservation gives its hold back to the voucher; the history showed the release as a second
    # -4000 (money out), so the lines read as if the voucher had lost the reservation twice.
    v = await issue(client, world, amount=10_000)
    r = await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 4_000, "description": "x"},
    )
    r = await client.post(f"/v1/reservations/{r.json()['id']}/cancel", headers=world.h("bike_shop"))
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 2_500, "reference": "B-1", "description": "x"},
    )
    assert r.status_code == 201, r.text
    r = await client.get(f"/v1/vouchers/{v['id']}/history", headers=world.h("gemeente_finance"))
    assert r.status_code == 200, r.text
    lines = [(x["kind"], x["code"], x["amount"]) for x in r.json()]
    assert lines == [
        ("posted", "voucher_issued", 10_000),
        ("pending", "reservation", -4_000),
        ("void_pending", "reservation_cancelled", 4_000),
        ("posted", "redemption", -2_500),
    ]
    # pending and its release cancel out; the posted lines are the balance
    assert sum(a for _, _, a in lines) == sum(a for k, _, a in lines if k in ("posted", "post_pending")) == 7_500
