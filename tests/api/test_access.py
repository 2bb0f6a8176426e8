"""Role by role: nobody reads or changes what is not theirs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import World, ledger_state
from tests.api.test_vouchers_api import issue


async def test_no_token_and_bad_token(client: Any, world: World) -> None:
    r = await client.get("/v1/funds")
    assert r.status_code == 401 and r.json()["code"] == "token_missing"
    r = await client.get("/v1/funds", headers={"Authorization": "Bearer stl_nonsense"})
    assert r.status_code == 401 and r.json()["code"] == "token_invalid"


async def test_sponsor_cannot_see_another_sponsors_fund(client: Any, world: World) -> None:
    r = await client.get(f"/v1/funds/{world.ids['fiets']}", headers=world.h("gemeente_finance"))
    assert r.status_code == 404
    r = await client.get(f"/v1/funds/{world.ids['fiets']}/overview", headers=world.h("gemeente_finance"))
    assert r.status_code == 404
    r = await client.get("/v1/funds", headers=world.h("leergeld_finance"))
    assert [f["code"] for f in r.json()] == ["FIETS"]


@pytest.mark.parametrize("who", ["auditor", "gemeente_approver", "bike_shop", "gemeente_validator"])
async def test_only_finance_grants_and_creates_funds(client: Any, world: World, who: str, db_dsn: str) -> None:
    before = await ledger_state(db_dsn)
    r = await client.post(
        f"/v1/funds/{world.ids['kindpakket']}/grants",
        headers=world.h(who),
        json={"source": "eigen-middelen", "amount": 100},
    )
    assert r.status_code == 403, r.text
    r = await client.post(
        "/v1/funds",
        headers=world.h(who),
        json={
            "code": "X",
            "name": "x",
            "period_start": "2026-01-01",
            "period_end": "2026-12-31",
            "cap_per_voucher": 1,
        },
    )
    assert r.status_code == 403
    assert await ledger_state(db_dsn) == before


async def test_auditor_reads_but_never_writes(client: Any, world: World) -> None:
    r = await client.get(f"/v1/funds/{world.ids['kindpakket']}/overview", headers=world.h("auditor"))
    assert r.status_code == 200
    for path, body in [
        ("/v1/vouchers", {"fund_id": world.ids["kindpakket"], "amount": 1, "beneficiary_ref": "x"}),
        ("/v1/debtor-accounts", {"iban": "NL91ABNA0417164300", "holder_name": "x"}),
        ("/v1/redemptions", {"voucher_code": "x", "amount": 1, "reference": "x", "description": "x"}),
    ]:
        r = await client.post(path, json=body, headers=world.h("auditor"))
        assert r.status_code == 403, (path, r.text)


async def test_validator_only_for_authorised_funds(client: Any, world: World, db_dsn: str) -> None:
    before = await ledger_state(db_dsn)
    # the gemeente desk is not a validator of Leergeld's bike fund
    r = await client.post(
        "/v1/vouchers",
        headers=world.h("gemeente_validator"),
        json={"fund_id": world.ids["fiets"], "amount": 100, "beneficiary_ref": "x"},
    )
    assert r.status_code in (403, 404)
    # a sponsor's finance team cannot issue against another sponsor's fund
    r = await client.post(
        "/v1/vouchers",
        headers=world.h("gemeente_finance"),
        json={"fund_id": world.ids["fiets"], "amount": 100, "beneficiary_ref": "x"},
    )
    assert r.status_code in (403, 404)
    assert await ledger_state(db_dsn) == before


async def test_suppliers_see_only_their_own(client: Any, world: World) -> None:
    v = await issue(client, world, amount=10_000)
    r = await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 1_000, "description": "x"},
    )
    rid = r.json()["id"]
    # another supplier: the reservation does not exist for it
    for method, path in [
        ("get", f"/v1/reservations/{rid}"),
        ("post", f"/v1/reservations/{rid}/redeem"),
        ("post", f"/v1/reservations/{rid}/cancel"),
    ]:
        kwargs: dict[str, Any] = {"headers": world.h("sports_club")}
        if method == "post":
            kwargs["json"] = {"reference": "x"} if path.endswith("redeem") else None
        r = await getattr(client, method)(path, **kwargs)
        assert r.status_code == 404, (path, r.text)
    # suppliers never see the beneficiary, nor look vouchers up by id
    r = await client.get(f"/v1/vouchers/by-code/{v['code']}", headers=world.h("bike_shop"))
    assert r.status_code == 200 and r.json()["beneficiary_ref"] is None
    r = await client.get(f"/v1/vouchers/{v['id']}", headers=world.h("bike_shop"))
    assert r.status_code == 404
    r = await client.get("/v1/redemptions", headers=world.h("clothing_bank"))
    assert all(x["supplier_id"] == world.ids["clothing_bank"] for x in r.json()["items"])
    r = await client.get("/v1/suppliers", headers=world.h("bike_shop"))
    assert [s["id"] for s in r.json()] == [world.ids["bike_shop"]]
    r = await client.get(f"/v1/suppliers/{world.ids['sports_club']}", headers=world.h("bike_shop"))
    assert r.status_code == 404


async def test_category_not_allowed(client: Any, world: World) -> None:
    v = await issue(client, world, who="leergeld_validator", fund_id=world.ids["fiets"], amount=10_000)
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("sports_club"),
        json={"voucher_code": v["code"], "amount": 100, "reference": "x", "description": "x"},
    )
    assert r.status_code == 403 and r.json()["code"] == "supplier_category_not_allowed"


async def test_bank_details_four_eyes(client: Any, world: World) -> None:
    sid = world.ids["bike_shop"]
    r = await client.post(
        f"/v1/suppliers/{sid}/bank-details",
        headers=world.h("bike_shop"),
        json={"iban": "NL91ABNA0417164300", "holder_name": "De Vries"},
    )
    assert r.status_code == 201 and r.json()["state"] == "pending"
    req = r.json()["id"]
    # the active details stay in use until approved
    r = await client.get(f"/v1/suppliers/{sid}", headers=world.h("gemeente_finance"))
    assert r.json()["bank_details"]["iban"] == "NL02ABNA0123456789"
    assert r.json()["pending_change"]["id"] == req
    r = await client.post(f"/v1/bank-detail-requests/{req}/approve", headers=world.h("gemeente_finance"))
    assert r.status_code == 403
    r = await client.post(f"/v1/bank-detail-requests/{req}/approve", headers=world.h("gemeente_approver"))
    assert r.status_code == 200 and r.json()["state"] == "active"
    # a sponsor's finance team requests; the same token may not approve (and only approvers approve)
    r = await client.post(
        f"/v1/suppliers/{sid}/bank-details",
        headers=world.h("gemeente_finance"),
        json={"iban": "NL20INGB0001234567", "holder_name": "De Vries"},
    )
    req2 = r.json()["id"]
    r = await client.post(f"/v1/bank-detail-requests/{req2}/approve", headers=world.h("gemeente_finance"))
    assert r.status_code == 403
    r = await client.post(
        f"/v1/bank-detail-requests/{req2}/reject",
        headers=world.h("gemeente_approver"),
        json={"reason": "not matching KvK"},
    )
    assert r.json()["state"] == "rejected"


async def test_admin_creates_orgs_and_tokens(client: Any, world: World) -> None:
    r = await client.post(
        "/v1/organisations",
        headers=world.h("admin"),
        json={"name": "Jeugdfonds Sport & Cultuur", "kinds": ["sponsor"]},
    )
    assert r.status_code == 201 and r.json()["ledger_id"]
    org = r.json()["id"]
    r = await client.post(
        f"/v1/organisations/{org}/tokens", headers=world.h("admin"), json={"role": "supplier", "name": "x"}
    )
    assert r.status_code == 422 and r.json()["code"] == "role_not_allowed_for_organisation"
    r = await client.post(
        f"/v1/organisations/{org}/tokens",
        headers=world.h("admin"),
        json={"role": "sponsor_finance", "name": "Finance JSC"},
    )
    token, token_id = r.json()["token"], r.json()["id"]
    r = await client.get("/v1/funds", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == []
    r = await client.post(f"/v1/tokens/{token_id}/revoke", headers=world.h("admin"))
    assert r.status_code == 200
    r = await client.get("/v1/funds", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    r = await client.post(
        "/v1/organisations", headers=world.h("gemeente_finance"), json={"name": "x", "kinds": ["sponsor"]}
    )
    assert r.status_code == 403


async def test_a_token_secret_is_shown_once_and_stored_nowhere(client: Any, world: World, db_dsn: str) -> None:
    from settlement import db

    org = world.ids["gemeente"]
    body = {"role": "auditor", "name": "Tweede accountant"}
    r = await client.post(f"/v1/organisations/{org}/tokens", headers=world.h("admin", "tok-1"), json=body)
    assert r.status_code == 201, r.text
    first = r.json()
    secret = first["token"]
    assert secret
    conn = await db.connect(db_dsn)
    try:
        # DESIGN.md "Security": tokens stored hashed; not in the idempotency store either
        for table in ("idempotency_keys", "audit_log", "api_tokens"):
            hits = await conn.fetchval(f"SELECT count(*) FROM {table} t WHERE t::text LIKE '%' || $1 || '%'", secret)
            assert hits == 0, table
    finally:
        await conn.close()
    # a replay names the same token, without its secret
    r = await client.post(f"/v1/organisations/{org}/tokens", headers=world.h("admin", "tok-1"), json=body)
    assert r.status_code == 201 and r.headers["idempotent-replayed"] == "true"
    assert r.json() == {**first, "token": None}
    # and the token works
    r = await client.get("/v1/funds", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200
