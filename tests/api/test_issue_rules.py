"""Rules checked when vouchers are issued (single and bulk), found in review."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import World, ledger_state


async def _sports_fund(client: Any, world: World) -> int:
    """A Leergeld fund for sports clubs only, with budget; FIETS is for bike shops only."""
    r = await client.post(
        "/v1/funds",
        headers=world.h("leergeld_finance"),
        json={
            "code": "SPORT",
            "name": "Sport en cultuur",
            "period_start": "2020-01-01",
            "period_end": "2099-12-31",
            "cap_per_voucher": 10_000,
            "categories": ["sports_club"],
            "validators": [world.ids["leergeld"]],
        },
    )
    assert r.status_code == 201, r.text
    fund: int = r.json()["id"]
    r = await client.post(
        f"/v1/funds/{fund}/grants", headers=world.h("leergeld_finance"), json={"source": "donaties", "amount": 100_000}
    )
    assert r.status_code == 201, r.text
    return fund


async def test_co_funding_shares_whose_categories_exclude_each_other_are_refused(
    client: Any, world: World, db_dsn: str
) -> None:
    """A voucher is spent only where every share's fund allows it: shares of a bike-only
    and a sports-only fund make a voucher no supplier can ever take, its money locked
    until it expires. Such a voucher is refused when issued."""
    sport = await _sports_fund(client, world)
    before = await ledger_state(db_dsn)
    shares = [{"fund_id": world.ids["fiets"], "bp": 5_000}, {"fund_id": sport, "bp": 5_000}]
    r = await client.post(
        "/v1/vouchers",
        headers=world.h("leergeld_validator"),
        json={"amount": 10_000, "beneficiary_ref": "LG-X", "shares": shares},
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "fund_categories_disjoint"
    assert await ledger_state(db_dsn) == before
    # overlapping categories (Kindpakket allows bike shops too) are fine
    r = await client.post(
        "/v1/vouchers",
        headers=world.h("leergeld_validator"),
        json={
            "amount": 10_000,
            "beneficiary_ref": "LG-Y",
            "shares": [{"fund_id": world.ids["kindpakket"], "bp": 5_000}, {"fund_id": sport, "bp": 5_000}],
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("sports_club"),
        json={"voucher_code": r.json()["code"], "amount": 100, "reference": "L-1", "description": "lid"},
    )
    assert r.status_code == 201, r.text


async def test_a_beneficiary_ref_that_is_a_bsn_or_an_email_address_is_refused(
    client: Any, world: World, db_dsn: str
) -> None:
    """DESIGN.md: no personal data of beneficiaries is stored; the reference is
    pseudonymous. A citizen service number (9 digits passing the 11-test) or an
    email address is personal data, whatever field it is typed into."""
    before = await ledger_state(db_dsn)
    for ref in ("123456782", "BSN 111222333", "1234.56.782", "fam.jansen@example.nl"):
        r = await client.post(
            "/v1/vouchers",
            headers=world.h("gemeente_validator"),
            json={"fund_id": world.ids["kindpakket"], "amount": 1_000, "beneficiary_ref": ref},
        )
        assert r.status_code == 422, (ref, r.text)
        assert r.json()["code"] == "beneficiary_ref_personal_data", ref
    assert await ledger_state(db_dsn) == before
    # in a bulk: a result per item, the others issued
    items = [
        {"fund_id": world.ids["kindpakket"], "amount": 1_000, "beneficiary_ref": ref}
        for ref in ("WK-2026-01001", "123456782", "123456789", "WK-2026-01002")
    ]
    r = await client.post("/v1/vouchers/bulk", json={"items": items}, headers=world.h("gemeente_validator"))
    assert r.status_code == 200, r.text
    body = r.json()
    # 123456789 fails the 11-test: a client number, not a BSN
    assert [x["ok"] for x in body["results"]] == [True, False, True, True]
    assert body["results"][1]["error"] == "beneficiary_ref_personal_data"


async def test_a_bulk_answers_per_item_for_an_amount_or_reference_out_of_range(client: Any, world: World) -> None:
    """A bulk issue gives a result per item: an item with amount 0 or an empty
    reference fails on its own rule, and the good items are issued. It used to
    refuse the whole request (422 validation_failed), so one bad row of a year's
    file held back every child's voucher."""
    k = world.ids["kindpakket"]
    items = [
        {"fund_id": k, "amount": 1_000, "beneficiary_ref": "WK-B-1"},
        {"fund_id": k, "amount": 0, "beneficiary_ref": "WK-B-2"},
        {"fund_id": k, "amount": -5, "beneficiary_ref": "WK-B-3"},
        {"fund_id": k, "amount": 1_000, "beneficiary_ref": ""},
        {"fund_id": k, "amount": 1_000, "beneficiary_ref": "R" * 101},
        {"shares": [{"fund_id": k, "bp": 0}], "amount": 1_000, "beneficiary_ref": "WK-B-6"},
        {"fund_id": k, "amount": 10**14, "beneficiary_ref": "WK-B-7"},
        {"fund_id": k, "amount": 1_000, "beneficiary_ref": "WK-B-8"},
    ]
    r = await client.post("/v1/vouchers/bulk", json={"items": items}, headers=world.h("gemeente_validator"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["issued"], body["failed"]) == (2, 6)
    assert [x["error"] for x in body["results"]] == [
        None,
        "amount_must_be_positive",
        "amount_must_be_positive",
        "beneficiary_ref_invalid",
        "beneficiary_ref_invalid",
        "shares_must_sum_to_10000",
        "amount_exceeds_cap",
        None,
    ]
    # a single issue still answers the field's own validation error
    r = await client.post(
        "/v1/vouchers",
        headers=world.h("gemeente_validator"),
        json={"fund_id": k, "amount": 0, "beneficiary_ref": "WK-B-9"},
    )
    assert r.status_code == 422


async def test_a_validator_deauthorised_for_a_fund_issues_no_more_and_its_vouchers_stay_valid(
    client: Any, world: World, db_dsn: str
) -> None:
    """A sponsor ends a desk's authorisation for a fund (a contract with an
    intermediary ends): there was no way to do it. Now the desk can no longer
    issue against the fund, nor withdraw what it issued; the families' vouchers
    stay valid and spendable."""
    k, leergeld = world.ids["kindpakket"], world.ids["leergeld"]
    r = await client.post(
        "/v1/vouchers",
        headers=world.h("leergeld_validator"),
        json={"fund_id": k, "amount": 5_000, "beneficiary_ref": "LG-D-1"},
    )
    assert r.status_code == 201, r.text
    v = r.json()
    # only the fund's own sponsor's finance team may de-authorise
    for who in ("leergeld_finance", "gemeente_approver", "auditor", "gemeente_validator"):
        r = await client.post(f"/v1/funds/{k}/validators/{leergeld}/revoke", headers=world.h(who))
        assert r.status_code in (403, 404), (who, r.text)
    r = await client.post(f"/v1/funds/{k}/validators/{leergeld}/revoke", headers=world.h("gemeente_finance"))
    assert r.status_code == 200, r.text
    assert leergeld not in r.json()["validators"]
    r = await client.post(f"/v1/funds/{k}/validators/{leergeld}/revoke", headers=world.h("gemeente_finance"))
    assert r.status_code == 409 and r.json()["code"] == "validator_not_authorised"

    before = await ledger_state(db_dsn)
    r = await client.post(
        "/v1/vouchers",
        headers=world.h("leergeld_validator"),
        json={"fund_id": k, "amount": 5_000, "beneficiary_ref": "LG-D-2"},
    )
    assert r.status_code in (403, 404), r.text
    r = await client.post(f"/v1/vouchers/{v['id']}/withdraw", headers=world.h("leergeld_validator"))
    assert r.status_code == 403 and r.json()["code"] == "not_authorised_for_fund", r.text
    assert await ledger_state(db_dsn) == before
    # the voucher stays valid and spendable; the desk still sees what it issued
    r = await client.get(f"/v1/vouchers/{v['id']}", headers=world.h("leergeld_validator"))
    assert r.status_code == 200 and r.json()["state"] == "active"
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("sports_club"),
        json={"voucher_code": v["code"], "amount": 2_000, "reference": "L-9", "description": "lid"},
    )
    assert r.status_code == 201, r.text
    # authorised again, it issues again
    r = await client.post(
        f"/v1/funds/{k}/validators", headers=world.h("gemeente_finance"), json={"organisation_id": leergeld}
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/vouchers",
        headers=world.h("leergeld_validator"),
        json={"fund_id": k, "amount": 5_000, "beneficiary_ref": "LG-D-3"},
    )
    assert r.status_code == 201, r.text
