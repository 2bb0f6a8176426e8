"""Every endpoint refuses bad input with a clear error and no ledger change."""

from __future__ import annotations

from typing import Any

import pytest

from settlement import db
from tests.api.conftest import World, ledger_state
from tests.api.test_vouchers_api import issue


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"iban": "NL91ABNA0417164301", "holder_name": "x"}, 422, "iban_invalid"),
        ({"iban": "NL64XXXX0123456789", "holder_name": "x"}, 422, "iban_unknown_bank"),
        ({"iban": "NL91ABNA0417164300", "holder_name": "x", "bic": "DEUTDEFF"}, 422, "bic_country_mismatch"),
        # an ABN AMRO account with ING's BIC: the pain.001 would name the wrong bank as debtor agent
        ({"iban": "NL91ABNA0417164300", "holder_name": "x", "bic": "INGBNL2A"}, 422, "bic_bank_mismatch"),
        ({"iban": "NL91ABNA0417164300"}, 422, "validation_failed"),
        # nothing left in the EPC set: no payment file could name the debtor
        ({"iban": "NL91ABNA0417164300", "holder_name": "Δήμος 東京"}, 422, "holder_name_invalid"),
    ],
)
async def test_debtor_account_iban_checks(
    client: Any, world: World, body: dict[str, Any], status: int, code: str
) -> None:
    r = await client.post("/v1/debtor-accounts", json=body, headers=world.h("leergeld_finance"))
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_supplier_bank_details_iban_invalid(client: Any, world: World) -> None:
    r = await client.post(
        f"/v1/suppliers/{world.ids['bike_shop']}/bank-details",
        headers=world.h("bike_shop"),
        json={"iban": "NL00BOGUS", "holder_name": "x"},
    )
    assert r.status_code == 422 and r.json()["code"] == "iban_invalid"


@pytest.mark.parametrize(("bic", "status"), [("INGBNL2A", 422), ("ABNANL2A", 201), ("ABNANL2AXXX", 201)])
async def test_supplier_bic_must_be_the_ibans_bank(client: Any, world: World, bic: str, status: int) -> None:
    # the BIC goes into CdtrAgt: another bank's BIC than the IBAN's misroutes or bounces the payment
    r = await client.post(
        f"/v1/suppliers/{world.ids['bike_shop']}/bank-details",
        headers=world.h("bike_shop"),
        json={"iban": "NL91ABNA0417164300", "holder_name": "Fietsenwinkel", "bic": bic},
    )
    assert r.status_code == status, r.text
    if status == 422:
        assert r.json()["code"] == "bic_bank_mismatch"


@pytest.mark.parametrize("name", ["Ποδηλατάδικο Παπαδόπουλος", "Велосипеды", "自転車店", "🚲 🚲"])
async def test_supplier_bank_details_holder_name_without_epc_letters(
    client: Any, world: World, db_dsn: str, name: str
) -> None:
    # pain.001 names the creditor in the EPC character set: a name of which nothing is left there
    # would make every payout file with this supplier fail, so the request is refused up front.
    sid = world.ids["bike_shop"]

    async def rows() -> list[Any]:
        conn = await db.connect(db_dsn)
        try:
            return list(await conn.fetch("SELECT * FROM supplier_bank_details WHERE supplier_id = $1 ORDER BY id", sid))
        finally:
            await conn.close()

    before = await rows()
    r = await client.post(
        f"/v1/suppliers/{sid}/bank-details",
        headers=world.h("bike_shop"),
        json={"iban": "NL91ABNA0417164300", "holder_name": name},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "holder_name_invalid"
    assert r.json()["errors"][0]["field"] == "holder_name"
    assert await rows() == before
    # accented Latin letters reduce to their base letters: accepted, stored as written
    r = await client.post(
        f"/v1/suppliers/{sid}/bank-details",
        headers=world.h("bike_shop"),
        json={"iban": "NL91ABNA0417164300", "holder_name": "Fietsenmakerij Ærø & Čeněk Ποδήλατα"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["holder_name"] == "Fietsenmakerij Ærø & Čeněk Ποδήλατα"


async def test_missing_field_is_named(client: Any, world: World) -> None:
    # README "Errors": a 422 names the field; a missing one too, nested ones by their path
    h = world.h("gemeente_validator")
    r = await client.post("/v1/vouchers", json={"amount": 1, "fund_id": 1}, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "beneficiary_ref"
    r = await client.post("/v1/vouchers", json={"amount": 1, "beneficiary_ref": "x", "shares": [{"bp": 1}]}, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "shares[0].fund_id"


async def test_malformed_json_unknown_field_wrong_type(client: Any, world: World) -> None:
    h = {**world.h("gemeente_validator"), "content-type": "application/json"}
    r = await client.post("/v1/vouchers", content=b"{not json", headers=h)
    assert r.status_code == 400 and r.json()["code"] == "malformed_request"
    r = await client.post(
        "/v1/vouchers",
        json={"amount": 1, "beneficiary_ref": "x", "fund_id": 1, "bogus": 2},
        headers=world.h("gemeente_validator"),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "bogus"
    r = await client.post(
        "/v1/vouchers",
        json={"amount": "12.50", "beneficiary_ref": "x", "fund_id": 1},
        headers=world.h("gemeente_validator"),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "amount"
    r = await client.post(
        "/v1/vouchers",
        json={"amount": 12.5, "beneficiary_ref": "x", "fund_id": 1},
        headers=world.h("gemeente_validator"),
    )
    assert r.status_code == 422, "a float is never an amount"


@pytest.mark.parametrize(
    "body",
    [
        b'{"fund_id": 1, "amount": 100, "beneficiary_ref": "WK-\xff-1"}',  # not UTF-8
        b'{"fund_id": 1, "amount": 100, "beneficiary_ref": "WK-\xed\xa0\x80"}',  # a lone surrogate
        b"[" * 100_000 + b"]" * 100_000,  # nested deeper than any decoder recurses
    ],
    ids=["invalid_utf8", "surrogate", "deep_nesting"],
)
async def test_undecodable_json_is_a_400_problem_not_a_500(client: Any, world: World, db_dsn: str, body: bytes) -> None:
    state = await ledger_state(db_dsn)
    h = {**world.h("gemeente_validator"), "content-type": "application/json"}
    r = await client.post("/v1/vouchers", content=body, headers=h)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "malformed_request"
    assert await ledger_state(db_dsn) == state


@pytest.mark.parametrize("amount", [0, -100])
async def test_non_positive_amounts(client: Any, world: World, amount: int, db_dsn: str) -> None:
    v = await issue(client, world, amount=10_000)
    before = await ledger_state(db_dsn)
    for path, body, who in [
        (
            "/v1/vouchers",
            {"fund_id": world.ids["kindpakket"], "amount": amount, "beneficiary_ref": "x"},
            "gemeente_validator",
        ),
        ("/v1/reservations", {"voucher_code": v["code"], "amount": amount, "description": "x"}, "bike_shop"),
        (
            "/v1/redemptions",
            {"voucher_code": v["code"], "amount": amount, "reference": "x", "description": "x"},
            "bike_shop",
        ),
        (
            f"/v1/funds/{world.ids['kindpakket']}/grants",
            {"source": "eigen-middelen", "amount": amount},
            "gemeente_finance",
        ),
    ]:
        r = await client.post(path, json=body, headers=world.h(who))
        assert r.status_code == 422, (path, r.text)
        assert r.json()["errors"][0]["field"] == "amount"
    assert await ledger_state(db_dsn) == before


async def test_over_cap_and_over_balance(client: Any, world: World, db_dsn: str) -> None:
    before = await ledger_state(db_dsn)
    r = await client.post(
        "/v1/vouchers",
        headers=world.h("gemeente_validator"),
        json={"fund_id": world.ids["kindpakket"], "amount": 35_001, "beneficiary_ref": "x"},
    )
    assert r.status_code == 422 and r.json()["code"] == "amount_exceeds_cap"
    assert await ledger_state(db_dsn) == before
    v = await issue(client, world, amount=1_000)
    before = await ledger_state(db_dsn)
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 1_001, "reference": "x", "description": "x"},
    )
    assert r.status_code == 409 and r.json()["code"] == "voucher_balance_insufficient"
    r = await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 1_001, "description": "x"},
    )
    assert r.status_code == 409 and r.json()["code"] == "voucher_balance_insufficient"
    assert await ledger_state(db_dsn) == before


async def test_unknown_and_foreign_ids(client: Any, world: World, db_dsn: str) -> None:
    before = await ledger_state(db_dsn)
    for path in [
        "/v1/vouchers/00000000-0000-0000-0000-000000000000",
        "/v1/funds/999999",
        "/v1/reservations/00000000-0000-0000-0000-000000000000",
        "/v1/redemptions/00000000-0000-0000-0000-000000000000",
        "/v1/vouchers/by-code/V-NOPE",
    ]:
        r = await client.get(path, headers=world.h("gemeente_finance"))
        assert r.status_code == 404, path
    r = await client.post(
        "/v1/reservations/00000000-0000-0000-0000-000000000000/redeem",
        headers=world.h("bike_shop"),
        json={"reference": "x"},
    )
    assert r.status_code == 404
    r = await client.get("/v1/vouchers/not-a-uuid", headers=world.h("gemeente_finance"))
    assert r.status_code in (400, 404)
    assert await ledger_state(db_dsn) == before


async def test_expired_reservation_cannot_be_redeemed(client: Any, world: World, db_dsn: str) -> None:
    v = await issue(client, world, amount=10_000)
    r = await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 5_000, "description": "x"},
    )
    rid = r.json()["id"]
    conn = await db.connect(db_dsn)
    try:  # time passes: the hold's expiry lies in the past
        await conn.execute(
            "UPDATE holds SET expires_at = now() - interval '1 second' WHERE transfer_id IN "
            "(SELECT pending_transfer_id FROM reservation_parts WHERE reservation_id = $1)",
            rid,
        )
    finally:
        await conn.close()
    before = await ledger_state(db_dsn)
    r = await client.post(f"/v1/reservations/{rid}/redeem", headers=world.h("bike_shop"), json={"reference": "x"})
    assert r.status_code == 409 and r.json()["code"] == "reservation_expired"
    assert await ledger_state(db_dsn) == before
    # the expiry job releases the hold and marks the reservation
    from settlement.jobs import expire_holds_once

    conn = await db.connect(db_dsn)
    try:
        assert await expire_holds_once(conn) == 1
    finally:
        await conn.close()
    r = await client.get(f"/v1/reservations/{rid}", headers=world.h("bike_shop"))
    assert r.json()["state"] == "expired"
    r = await client.get(f"/v1/vouchers/by-code/{v['code']}", headers=world.h("bike_shop"))
    assert r.json()["available"] == 10_000


BIG = 2**63  # one past PostgreSQL's bigint


def _unstorable(w: World) -> list[tuple[str, str, str, Any]]:
    k = w.ids["kindpakket"]
    return [
        # ids beyond bigint, in the path, the query and the body
        ("get", f"/v1/funds/{BIG}", "gemeente_finance", None),
        ("get", f"/v1/funds/{BIG}/overview", "gemeente_finance", None),
        ("get", f"/v1/suppliers?after={BIG}", "gemeente_finance", None),
        ("post", "/v1/vouchers", "gemeente_validator", {"fund_id": BIG, "amount": 100, "beneficiary_ref": "x"}),
        ("post", f"/v1/funds/{BIG}/grants", "gemeente_finance", {"source": "rijk", "amount": 100}),
        ("post", f"/v1/funds/{k}/validators", "gemeente_finance", {"organisation_id": BIG}),
        ("post", f"/v1/organisations/{BIG}/tokens", "admin", {"role": "supplier", "name": "x"}),
        ("post", f"/v1/tokens/{BIG}/revoke", "admin", None),
        ("get", f"/v1/payout-runs/{BIG}", "gemeente_finance", None),
        ("post", f"/v1/payout-runs/{BIG}/approve", "gemeente_approver", None),
        ("post", "/v1/payout-runs", "gemeente_finance", {"debtor_account_id": BIG}),
        ("get", f"/v1/payments?before_id={BIG}", "gemeente_finance", None),
        ("get", f"/v1/statements/{BIG}", "gemeente_finance", None),
        ("post", f"/v1/statement-entries/{BIG}/resolve", "gemeente_finance", {"action": "ignore", "reason": "x"}),
        # a NUL character in text (PostgreSQL text cannot hold it)
        ("post", "/v1/vouchers", "gemeente_validator", {"fund_id": k, "amount": 100, "beneficiary_ref": "WK\u0000"}),
        ("post", "/v1/reservations", "bike_shop", {"voucher_code": "V\u0000", "amount": 100, "description": "x"}),
        ("get", "/v1/vouchers/by-code/%00", "bike_shop", None),
        ("post", "/v1/organisations", "admin", {"name": "x\u0000", "kinds": ["sponsor"]}),
        # the last day of the calendar
        ("get", "/v1/books/trial-balance?as_of=9999-12-31", "auditor", None),
        ("get", "/v1/books/journal?from=9999-12-01&to=9999-12-31", "auditor", None),
    ]


@pytest.mark.parametrize("case", range(20))
async def test_values_the_database_cannot_hold_are_a_problem_not_a_500(
    client: Any, world: World, db_dsn: str, case: int
) -> None:
    method, path, who, body = _unstorable(world)[case]
    before = await ledger_state(db_dsn)
    kw = {"json": body} if body is not None else {}
    r = await getattr(client, method)(path, headers=world.h(who), **kw)
    assert r.status_code in (400, 404, 422), (path, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await ledger_state(db_dsn) == before
