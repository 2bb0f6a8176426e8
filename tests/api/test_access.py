"""Role by role: nobody reads or changes what is not theirs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from settlement import db
from tests.api.conftest import World, ledger_state
from tests.api.test_vouchers_api import issue
from tests.conftest import LiveServer


async def test_no_token_and_bad_token(client: Any, world: World) -> None:
    r = await client.get("/v1/funds")
    assert r.status_code == 401 and r.json()["code"] == "token_missing"
    r = await client.get("/v1/funds", headers={"Authorization": "Bearer stl_nonsense"})
    assert r.status_code == 401 and r.json()["code"] == "token_invalid"
    # a 401 names the scheme to use (RFC 9110 15.5.2, RFC 6750 3)
    assert r.headers["www-authenticate"] == 'Bearer realm="settlement", error="invalid_token"'
    r = await client.post("/v1/vouchers", json={})
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="settlement"'


async def test_the_bearer_scheme_is_case_insensitive(client: Any, world: World) -> None:
    """RFC 9110 11.1: the authentication scheme is a case-insensitive token."""
    token = world.tokens["gemeente_finance"]
    for scheme in ("bearer", "BEARER", "Bearer"):
        r = await client.get("/v1/funds", headers={"Authorization": f"{scheme} {token}"})
        assert r.status_code == 200, (scheme, r.text)
    r = await client.get("/v1/funds", headers={"Authorization": f"Basic {token}"})
    assert r.status_code == 401 and r.json()["code"] == "token_missing"
    r = await client.get("/v1/funds", headers={"Authorization": f"Bearer{token}"})
    assert r.status_code == 401


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


async def _new_org(
    client: Any, world: World, name: str, kinds: list[str], roles: list[str]
) -> tuple[int, dict[str, dict[str, str]]]:
    """An organisation made by the platform admin, and one token header per role."""
    body: dict[str, Any] = {"name": name, "kinds": kinds}
    if "supplier" in kinds:
        body["supplier_category"] = "clothing_bank"
    r = await client.post("/v1/organisations", headers=world.h("admin"), json=body)
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    tokens = {}
    for role in roles:
        r = await client.post(
            f"/v1/organisations/{org}/tokens", headers=world.h("admin"), json={"role": role, "name": role}
        )
        assert r.status_code == 201, r.text
        tokens[role] = {"Authorization": f"Bearer {r.json()['token']}"}
    return org, tokens


async def _request_details(
    client: Any, headers: dict[str, str], supplier: int, iban: str = "NL91ABNA0417164300"
) -> Any:
    headers = {"Idempotency-Key": f"bd-{uuid.uuid4()}", **headers}
    return await client.post(
        f"/v1/suppliers/{supplier}/bank-details", headers=headers, json={"iban": iban, "holder_name": "Nieuwe naam"}
    )


async def _pending_ids(client: Any, world: World, who: str) -> set[int]:
    r = await client.get("/v1/bank-detail-requests", headers=world.h(who))
    assert r.status_code == 200, r.text
    return {x["id"] for x in r.json()}


async def test_supplier_org_cannot_approve_its_own_bank_details(client: Any, world: World) -> None:
    # A foundation that both co-funds vouchers and runs a clothing bank: one organisation, sponsor and supplier.
    org, tokens = await _new_org(
        client, world, "Stichting Kledingbank en Fonds", ["sponsor", "supplier"], ["supplier", "sponsor_approver"]
    )
    r = await _request_details(client, {**tokens["supplier"], "Idempotency-Key": "bd-1"}, org)
    assert r.status_code == 201, r.text
    req = r.json()["id"]
    # its own approver token is a different token, but not a second, independent pair of eyes
    r = await client.post(
        f"/v1/bank-detail-requests/{req}/approve", headers={**tokens["sponsor_approver"], "Idempotency-Key": "bd-2"}
    )
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "approver_is_the_supplier"
    r = await client.get("/v1/bank-detail-requests", headers=tokens["sponsor_approver"])
    assert req not in {x["id"] for x in r.json()}
    # its first details (no dealings with any sponsor yet): another sponsor's approver decides
    assert req in await _pending_ids(client, world, "gemeente_approver")
    r = await client.post(f"/v1/bank-detail-requests/{req}/approve", headers=world.h("gemeente_approver"))
    assert r.status_code == 200 and r.json()["state"] == "active", r.text


async def test_sponsor_requests_bank_details_only_for_suppliers_it_deals_with(
    client: Any, world: World, db_dsn: str
) -> None:
    # Leergeld pays the bike shop (co-funded bikes), never the sports club
    club = world.ids["sports_club"]
    r = await _request_details(client, world.h("leergeld_finance"), club)
    assert r.status_code == 404 and r.json()["code"] == "supplier_not_found", r.text
    conn = await db.connect(db_dsn)
    try:
        n = await conn.fetchval("SELECT count(*) FROM supplier_bank_details WHERE supplier_id = $1", club)
    finally:
        await conn.close()
    assert n == 1  # the active details only
    r = await _request_details(client, world.h("leergeld_finance"), world.ids["bike_shop"])
    assert r.status_code == 201, r.text
    r = await _request_details(client, world.h("gemeente_finance"), club)
    assert r.status_code == 201, r.text


async def test_sponsor_requested_change_is_decided_by_that_sponsor_only(client: Any, world: World) -> None:
    # The bike shop is paid by both sponsors; Leergeld's finance team asks for a new IBAN
    r = await _request_details(client, world.h("leergeld_finance"), world.ids["bike_shop"])
    assert r.status_code == 201, r.text
    req = r.json()["id"]
    # the gemeente also pays the shop, but cannot approve what Leergeld asked (nor see it waiting)
    for who in ("gemeente_approver", "gemeente_finance", "auditor"):
        assert req not in await _pending_ids(client, world, who), who
    for verb in ("approve", "reject"):
        r = await client.post(f"/v1/bank-detail-requests/{req}/{verb}", headers=world.h("gemeente_approver"))
        assert r.status_code == 404 and r.json()["code"] == "bank_details_not_found", r.text
    for who in ("leergeld_approver", "leergeld_finance"):
        assert req in await _pending_ids(client, world, who), who
    r = await client.post(f"/v1/bank-detail-requests/{req}/approve", headers=world.h("leergeld_approver"))
    assert r.status_code == 200 and r.json()["state"] == "active", r.text


async def test_supplier_requested_change_is_decided_by_a_sponsor_it_deals_with(client: Any, world: World) -> None:
    # The sports club is paid by the gemeente only: Leergeld's approver may not redirect its money
    r = await _request_details(client, world.h("sports_club"), world.ids["sports_club"])
    assert r.status_code == 201, r.text
    club_req = r.json()["id"]
    assert club_req not in await _pending_ids(client, world, "leergeld_approver")
    r = await client.post(f"/v1/bank-detail-requests/{club_req}/approve", headers=world.h("leergeld_approver"))
    assert r.status_code == 404 and r.json()["code"] == "bank_details_not_found", r.text
    assert club_req in await _pending_ids(client, world, "gemeente_approver")
    r = await client.post(f"/v1/bank-detail-requests/{club_req}/approve", headers=world.h("gemeente_approver"))
    assert r.status_code == 200 and r.json()["state"] == "active", r.text
    # the bike shop is paid by both: either sponsor's approver decides its own request
    r = await _request_details(client, world.h("bike_shop"), world.ids["bike_shop"])
    shop_req = r.json()["id"]
    assert shop_req in await _pending_ids(client, world, "gemeente_approver")
    assert shop_req in await _pending_ids(client, world, "leergeld_approver")
    r = await client.post(f"/v1/bank-detail-requests/{shop_req}/reject", headers=world.h("leergeld_approver"))
    assert r.status_code == 200 and r.json()["state"] == "rejected", r.text


async def test_first_bank_details_of_a_new_supplier_any_sponsor_approves(client: Any, world: World) -> None:
    org, tokens = await _new_org(client, world, "Bibliotheek Westerkwartier", ["supplier"], ["supplier"])
    r = await _request_details(client, tokens["supplier"], org)
    assert r.status_code == 201, r.text
    req = r.json()["id"]
    # no sponsor deals with it yet: its first details go to any sponsor's approver
    assert req in await _pending_ids(client, world, "gemeente_approver")
    assert req in await _pending_ids(client, world, "leergeld_approver")
    # but no sponsor's finance team may ask for a change on it
    r = await _request_details(client, world.h("gemeente_finance"), org)
    assert r.status_code == 404 and r.json()["code"] == "supplier_not_found", r.text
    r = await client.post(f"/v1/bank-detail-requests/{req}/approve", headers=world.h("leergeld_approver"))
    assert r.status_code == 200 and r.json()["state"] == "active", r.text


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


async def test_admin_lists_tokens_without_secrets_and_revokes_once(client: Any, world: World, db_dsn: str) -> None:
    from settlement import db

    org = world.ids["gemeente"]
    r = await client.post(
        f"/v1/organisations/{org}/tokens", headers=world.h("admin"), json={"role": "auditor", "name": "Lijst test"}
    )
    assert r.status_code == 201, r.text
    secret, token_id = r.json()["token"], r.json()["id"]

    r = await client.get("/v1/tokens", params={"organisation_id": org}, headers=world.h("admin"))
    assert r.status_code == 200, r.text
    listed = r.json()
    assert secret not in r.text
    assert {t["organisation_id"] for t in listed} == {org}
    mine = next(t for t in listed if t["id"] == token_id)
    assert mine["prefix"] == secret[:10] and mine["revoked"] is False and mine["revoked_at"] is None
    assert [t["id"] for t in listed] == sorted(t["id"] for t in listed)

    # paging: `after` the last id seen gives the rest, nothing twice
    r = await client.get("/v1/tokens", params={"limit": 2}, headers=world.h("admin"))
    first = r.json()
    r = await client.get("/v1/tokens", params={"after": first[-1]["id"]}, headers=world.h("admin"))
    rest = r.json()
    r = await client.get("/v1/tokens", params={"limit": 200}, headers=world.h("admin"))
    assert [t["id"] for t in first + rest] == [t["id"] for t in r.json()]

    # revoking twice answers the same, with one audit line
    r1 = await client.post(f"/v1/tokens/{token_id}/revoke", headers=world.h("admin"))
    r2 = await client.post(f"/v1/tokens/{token_id}/revoke", headers=world.h("admin"))
    assert r1.status_code == r2.status_code == 200
    assert r1.json() == r2.json() and r1.json()["revoked"] is True and r1.json()["revoked_at"]
    r = await client.get("/v1/tokens", params={"organisation_id": org, "revoked": "true"}, headers=world.h("admin"))
    assert [t["id"] for t in r.json()] == [token_id]
    r = await client.get("/v1/tokens", params={"organisation_id": org, "revoked": "false"}, headers=world.h("admin"))
    assert token_id not in [t["id"] for t in r.json()] and r.json()
    conn = await db.connect(db_dsn)
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'token.revoked' AND subject_id = $1 AND sponsor_id = $2",
            str(token_id),
            org,
        )
    finally:
        await conn.close()
    assert n == 1

    # nobody but the platform admin sees the list
    for who in ("gemeente_finance", "gemeente_approver", "auditor", "bike_shop"):
        r = await client.get("/v1/tokens", headers=world.h(who))
        assert r.status_code == 403 and r.json()["code"] == "role_not_allowed", (who, r.text)


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


async def test_bank_detail_decisions_are_in_the_deciding_sponsors_audit_trail(client: Any, world: World) -> None:
    # Four eyes on where the money goes: the sponsor's accountant must find its approver's decisions
    # (and its finance team's requests) in the sponsor's audit trail. They were written without a
    # sponsor, so no sponsor's trail showed them.
    sid = world.ids["bike_shop"]
    r = await _request_details(client, world.h("bike_shop"), sid)
    assert r.status_code == 201, r.text
    approved = r.json()["id"]
    r = await client.post(f"/v1/bank-detail-requests/{approved}/approve", headers=world.h("gemeente_approver"))
    assert r.status_code == 200, r.text
    r = await _request_details(client, world.h("gemeente_finance"), sid, "NL20INGB0001234567")
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/bank-detail-requests/{r.json()['id']}/reject",
        headers=world.h("gemeente_approver"),
        json={"reason": "not matching KvK"},
    )
    assert r.status_code == 200, r.text
    r = await client.get("/v1/books/audit-trail", params={"limit": 500}, headers=world.h("auditor"))
    assert r.status_code == 200, r.text
    actions = [(x["action"], x["subject_id"]) for x in r.json() if x["action"].startswith("bank_details.")]
    assert ("bank_details.approved", str(sid)) in actions
    assert ("bank_details.requested", str(sid)) in actions
    assert ("bank_details.rejected", str(sid)) in actions
    r = await client.get("/v1/books/audit-trail", params={"limit": 500}, headers=world.h("leergeld_finance"))
    assert not [x for x in r.json() if x["action"].startswith("bank_details.")]


async def _states(db_dsn: str, supplier: int) -> dict[int, str]:
    conn = await db.connect(db_dsn)
    try:
        rows = await conn.fetch("SELECT id, state FROM supplier_bank_details WHERE supplier_id = $1", supplier)
    finally:
        await conn.close()
    return {r["id"]: r["state"] for r in rows}


async def test_a_pending_bank_detail_change_blocks_another_organisations_request(
    client: Any, world: World, db_dsn: str
) -> None:
    shop = world.ids["bike_shop"]
    r = await _request_details(client, world.h("bike_shop"), shop)
    assert r.status_code == 201, r.text
    mine = r.json()["id"]
    # neither sponsor can cancel the shop's own pending change by asking for another
    for who in ("gemeente_finance", "leergeld_finance"):
        r = await _request_details(client, world.h(who), shop, iban="NL20INGB0001234567")
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "bank_details_change_pending"
        assert r.json()["pending_request_id"] == mine
    assert (await _states(db_dsn, shop))[mine] == "pending"
    r = await client.get(f"/v1/suppliers/{shop}", headers=world.h("gemeente_finance"))
    assert r.json()["pending_change"]["id"] == mine
    # once decided, a new request is welcome again
    r = await client.post(f"/v1/bank-detail-requests/{mine}/reject", headers=world.h("gemeente_approver"))
    assert r.status_code == 200, r.text
    r = await _request_details(client, world.h("leergeld_finance"), shop, iban="NL20INGB0001234567")
    assert r.status_code == 201, r.text


async def test_a_pending_bank_detail_change_is_replaced_by_its_requester_or_the_supplier(
    client: Any, world: World, db_dsn: str
) -> None:
    shop = world.ids["bike_shop"]
    first = (await _request_details(client, world.h("gemeente_finance"), shop)).json()["id"]
    # the same sponsor corrects its own request
    r = await _request_details(client, world.h("gemeente_finance"), shop, iban="NL20INGB0001234567")
    assert r.status_code == 201, r.text
    second = r.json()["id"]
    # another sponsor may not replace it
    r = await _request_details(client, world.h("leergeld_finance"), shop, iban="NL44RABO0123456789")
    assert r.status_code == 409 and r.json()["code"] == "bank_details_change_pending", r.text
    # the supplier whose details they are may
    r = await _request_details(client, world.h("bike_shop"), shop, iban="NL44RABO0123456789")
    assert r.status_code == 201, r.text
    third = r.json()["id"]
    states = await _states(db_dsn, shop)
    assert (states[first], states[second], states[third]) == ("superseded", "superseded", "pending")
    assert list(states.values()).count("pending") == 1


async def test_concurrent_bank_detail_requests_of_two_sponsors_leave_one_pending(
    client: Any, world: World, live_server: LiveServer, db_dsn: str
) -> None:
    """Both sponsors ask at once: one organisation's requests win (each replacing the one
    before it), the other's are refused; never two pending changes, never a silent cancel."""
    shop = world.ids["bike_shop"]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        for round_ in range(4):
            who = ["gemeente_finance", "leergeld_finance"] * 3
            answers = await asyncio.gather(
                *(
                    http.post(
                        f"/v1/suppliers/{shop}/bank-details",
                        headers=world.h(w),
                        json={"iban": "NL20INGB0001234567", "holder_name": f"Ronde {round_}"},
                    )
                    for w in who
                )
            )
            won = {w.split("_")[0] for w, a in zip(who, answers, strict=True) if a.status_code == 201}
            lost = {w.split("_")[0] for w, a in zip(who, answers, strict=True) if a.status_code == 409}
            assert len(won) == 1 and lost == {"gemeente", "leergeld"} - won, [a.text for a in answers]
            pending = [i for i, s in (await _states(db_dsn, shop)).items() if s == "pending"]
            assert len(pending) == 1, pending
            r = await http.post(
                f"/v1/bank-detail-requests/{pending[0]}/reject", headers=world.h(f"{won.pop()}_approver")
            )
            assert r.status_code == 200, r.text


async def test_a_token_used_while_it_is_being_revoked_is_refused_once_revoked(
    client: Any, world: World, live_server: LiveServer, db_dsn: str
) -> None:
    """The revoking process forgets the token at once, even when the token was used (and
    so looked up again) while the revocation was still being written."""
    from tests.api.test_races import wait_for_lock_waiters

    shop = {"Authorization": f"Bearer {world.tokens['bike_shop']}"}
    blocker = await db.connect(db_dsn)
    try:
        token_id = await blocker.fetchval(
            "SELECT t.id FROM api_tokens t WHERE t.organisation_id = $1 AND t.role = 'supplier'",
            world.ids["bike_shop"],
        )
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM api_tokens WHERE id = $1 FOR UPDATE", token_id)
            revoke = asyncio.ensure_future(http.post(f"/v1/tokens/{token_id}/revoke", headers=world.h("admin")))
            await wait_for_lock_waiters(db_dsn, 1)
            r = await http.get("/v1/redemptions", headers=shop)
            assert r.status_code == 200, r.text  # not revoked yet: the revocation waits
            await tx.rollback()
            r = await revoke
            assert r.status_code == 200 and r.json()["revoked"], r.text
            r = await http.get("/v1/redemptions", headers=shop)
            assert r.status_code == 401 and r.json()["code"] == "token_invalid", r.text
    finally:
        await blocker.close()


async def test_another_roles_token_is_not_answered_a_replay(client: Any, world: World) -> None:
    """Idempotency keys are per organisation; a replay must not answer a token of another
    role a request that role may not make (here: finance 'approving' a bank-detail change)."""
    r = await _request_details(client, world.h("bike_shop"), world.ids["bike_shop"], "NL20INGB0001234567")
    assert r.status_code == 201, r.text
    req = r.json()["id"]
    key = {"Idempotency-Key": f"approve-{req}"}
    r = await client.post(f"/v1/bank-detail-requests/{req}/approve", headers={**world.h("gemeente_approver"), **key})
    assert r.status_code == 200, r.text
    again = await client.post(
        f"/v1/bank-detail-requests/{req}/approve", headers={**world.h("gemeente_approver"), **key}
    )
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    r = await client.post(f"/v1/bank-detail-requests/{req}/approve", headers={**world.h("gemeente_finance"), **key})
    assert r.status_code == 409 and r.json()["code"] == "idempotency_key_reused", r.text
    assert "idempotent-replayed" not in r.headers
