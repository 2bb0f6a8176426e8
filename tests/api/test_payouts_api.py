"""Payout runs over HTTP: build, four eyes, export, download, pain.002, supplier view."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from sepa import Rejection, build_pain002, parse_pain002, read_pain001, validate
from settlement import db
from tests.api.conftest import World, assert_ledgers_balanced, ledger_state
from tests.api.test_vouchers_api import assert_adds_up, issue, overview
from tests.conftest import SHARED_BANK_FILES


async def debtor_account(client: Any, world: World, who: str = "gemeente_finance") -> dict[str, Any]:
    r = await client.get("/v1/debtor-accounts", headers=world.h(who))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()[0]
    return out


async def new_run(client: Any, world: World, who: str = "gemeente_finance", **body: Any) -> dict[str, Any]:
    body.setdefault("debtor_account_id", (await debtor_account(client, world, who))["id"])
    r = await client.post("/v1/payout-runs", json=body, headers=world.h(who))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def approve(client: Any, world: World, run_id: int, who: str = "gemeente_approver") -> dict[str, Any]:
    r = await client.post(f"/v1/payout-runs/{run_id}/approve", headers=world.h(who))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def export(client: Any, world: World, run_id: int, who: str = "gemeente_finance") -> dict[str, Any]:
    r = await client.post(f"/v1/payout-runs/{run_id}/export", headers=world.h(who))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def download(client: Any, world: World, run: dict[str, Any], who: str = "gemeente_finance") -> list[bytes]:
    out = []
    for f in run["files"]:
        r = await client.get(f"/v1/payout-runs/{run['id']}/files/{f['id']}", headers=world.h(who))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/xml")
        assert r.headers["x-content-sha256"] == hashlib.sha256(r.content).hexdigest() == f["sha256"]
        out.append(r.content)
    return out


async def account_balance(dsn: str, code_prefix: str, sponsor: int) -> int:
    """credits - debits of the sponsor's accounts whose code starts with the prefix."""
    conn = await db.connect(dsn)
    try:
        v: int = await conn.fetchval(
            "SELECT coalesce(sum(a.credits_posted - a.debits_posted), 0)::bigint FROM accounts a "
            "JOIN sponsors s ON s.ledger_id = a.ledger_id WHERE s.organisation_id = $1 AND a.code LIKE $2",
            sponsor,
            code_prefix + "%",
        )
        return v
    finally:
        await conn.close()


async def test_build_approve_export_download(client: Any, world: World, db_dsn: str) -> None:
    before_overview = await overview(client, world)
    payable_before = await account_balance(db_dsn, "payable:", world.ids["gemeente"])
    run = await new_run(client, world)
    assert run["state"] == "draft"
    assert run["skipped"] == []
    # the demo: bike shop 70% of 274.50, two club memberships, winter clothes less a refund
    assert run["payment_count"] == 3
    assert run["total"] == 19_215 + 25_000 + 6_500 == payable_before
    assert run["code"].startswith("P")

    # four eyes: finance may not approve at all; the approver may
    r = await client.post(f"/v1/payout-runs/{run['id']}/approve", headers=world.h("gemeente_finance"))
    assert r.status_code == 403
    r = await client.post(f"/v1/payout-runs/{run['id']}/files/1", headers=world.h("gemeente_finance"))
    assert r.status_code in (404, 405)
    run = await approve(client, world, run["id"])
    assert run["state"] == "approved" and run["approved_at"]

    run = await export(client, world, run["id"])
    assert run["state"] == "exported"
    assert len(run["files"]) == 1 and run["files"][0]["version"] == "pain.001.001.09"
    (data,) = await download(client, world, run)
    validate(data, "pain.001.001.09")
    shared = SHARED_BANK_FILES / "xsd" / "pain.001.001.09.xsd"
    if shared.exists():
        from lxml import etree

        assert etree.XMLSchema(etree.parse(str(shared))).validate(etree.fromstring(data))
    file = read_pain001(data)
    assert file.msg_id == run["files"][0]["msg_id"]
    assert sum(p.amount_cents for b in file.blocks for p in b.payments) == run["total"]
    assert all(not b.instant and b.batch_booking for b in file.blocks)

    # the ledger: payable -> in_transit, to the cent; fund overview moves to in_payout and still adds up
    assert await account_balance(db_dsn, "payable:", world.ids["gemeente"]) == 0
    assert await account_balance(db_dsn, "in_transit:", world.ids["gemeente"]) == run["total"]
    after_overview = await overview(client, world)
    assert_adds_up(after_overview)
    assert after_overview["in_payout"] - before_overview["in_payout"] == 19_215 + 25_000 + 6_500 - 0
    await assert_ledgers_balanced(db_dsn)

    # a second export is refused and changes nothing
    state = await ledger_state(db_dsn)
    r = await client.post(f"/v1/payout-runs/{run['id']}/export", headers=world.h("gemeente_finance"))
    assert r.status_code == 409 and r.json()["code"] == "payout_run_already_exported"
    assert await ledger_state(db_dsn) == state

    # the club sees its payment with the vouchers it covers, in its own remittance terms
    r = await client.get("/v1/payments", headers=world.h("sports_club"))
    assert r.status_code == 200
    (pay,) = r.json()
    assert pay["amount"] == 25_000 and pay["state"] == "sent" and pay["execution_date"]
    r = await client.get(f"/v1/payments/{pay['id']}", headers=world.h("sports_club"))
    lines = r.json()["lines"]
    assert sorted(ln["reference"] for ln in lines) == ["LID-2026-117", "LID-2026-118"]
    assert all(ln["voucher_code"] in pay["remittance"] for ln in lines)
    # and the redemption says which payment it is in
    r = await client.get("/v1/redemptions", headers=world.h("sports_club"))
    assert {x["status"] for x in r.json()["items"]} == {"in_payout"}
    assert all(x["payments"] == [pay["id"]] for x in r.json()["items"])
    # nobody else sees it
    for who in ("bike_shop", "leergeld_finance"):
        r = await client.get(f"/v1/payments/{pay['id']}", headers=world.h(who))
        assert r.status_code == 404, who


async def test_creator_cannot_approve_own_run(client: Any, world: World) -> None:
    run = await new_run(client, world, who="gemeente_approver")
    r = await client.post(f"/v1/payout-runs/{run['id']}/approve", headers=world.h("gemeente_approver"))
    assert r.status_code == 403 and r.json()["code"] == "approver_must_differ_from_creator"
    # a second approver of the same sponsor may
    r = await client.post(
        f"/v1/organisations/{world.ids['gemeente']}/tokens",
        json={"role": "sponsor_approver", "name": "Second approver"},
        headers=world.h("admin"),
    )
    world.tokens["second_approver"] = r.json()["token"]
    run = await approve(client, world, run["id"], who="second_approver")
    assert run["state"] == "approved"


async def test_other_sponsors_and_roles_cannot_touch_a_run(client: Any, world: World, db_dsn: str) -> None:
    run = await new_run(client, world)
    state = await ledger_state(db_dsn)
    for who in ("leergeld_finance", "leergeld_approver"):
        r = await client.get(f"/v1/payout-runs/{run['id']}", headers=world.h(who))
        assert r.status_code == 404, who
        r = await client.post(f"/v1/payout-runs/{run['id']}/cancel", json={"reason": "x"}, headers=world.h(who))
        assert r.status_code == 404, who
    r = await client.post(f"/v1/payout-runs/{run['id']}/approve", headers=world.h("leergeld_approver"))
    assert r.status_code == 404
    # the auditor reads, and every write answers 403
    r = await client.get(f"/v1/payout-runs/{run['id']}", headers=world.h("auditor"))
    assert r.status_code == 200
    for path, body in (("approve", None), ("export", None), ("cancel", {"reason": "x"})):
        r = await client.post(f"/v1/payout-runs/{run['id']}/{path}", json=body, headers=world.h("auditor"))
        assert r.status_code == 403, path
    for who in ("bike_shop", "gemeente_validator"):
        r = await client.get(f"/v1/payout-runs/{run['id']}", headers=world.h(who))
        assert r.status_code == 403, who
    # someone else's debtor account
    leergeld_acct = await debtor_account(client, world, "leergeld_finance")
    r = await client.post(
        "/v1/payout-runs", json={"debtor_account_id": leergeld_acct["id"]}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 404
    assert await ledger_state(db_dsn) == state


async def test_cancel_frees_the_lines_for_the_next_run(client: Any, world: World) -> None:
    run = await new_run(client, world)
    # while the draft holds them, a second run finds nothing
    acct = await debtor_account(client, world)
    r = await client.post(
        "/v1/payout-runs", json={"debtor_account_id": acct["id"]}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 409 and r.json()["code"] == "nothing_to_pay"
    r = await client.post(
        f"/v1/payout-runs/{run['id']}/cancel", json={"reason": "wrong week"}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 200 and r.json()["state"] == "cancelled" and r.json()["cancel_reason"] == "wrong week"
    again = await new_run(client, world)
    assert again["total"] == run["total"] and again["payment_count"] == run["payment_count"]
    # a cancelled run cannot be approved or exported
    r = await client.post(f"/v1/payout-runs/{run['id']}/approve", headers=world.h("gemeente_approver"))
    assert r.status_code == 409


async def test_pending_and_blocked_bank_details_are_skipped_with_reason(client: Any, world: World) -> None:
    # the bike shop asks for new details; the old ones stay active until approved
    r = await client.post(
        f"/v1/suppliers/{world.ids['bike_shop']}/bank-details",
        json={"iban": "NL91ABNA0417164300", "holder_name": "De Vries Fietsen BV"},
        headers=world.h("bike_shop"),
    )
    assert r.status_code == 201
    run = await new_run(client, world)
    pays = (await client.get(f"/v1/payments?run_id={run['id']}", headers=world.h("gemeente_finance"))).json()
    bike = next(p for p in pays if p["supplier_id"] == world.ids["bike_shop"])
    assert bike["creditor_iban"] == "NL02ABNA0123456789"  # the approved ones, copied
    # the change gets approved after the run was built: export refuses stale details
    req_id = r.json()["id"]
    r = await client.post(f"/v1/bank-detail-requests/{req_id}/approve", headers=world.h("gemeente_approver"))
    assert r.status_code == 200
    await approve(client, world, run["id"])
    r = await client.post(f"/v1/payout-runs/{run['id']}/export", headers=world.h("gemeente_finance"))
    assert r.status_code == 409 and r.json()["code"] == "bank_details_changed"
    assert r.json()["suppliers"] == [world.ids["bike_shop"]]


async def test_supplier_without_approved_details_is_skipped(client: Any, world: World, db_dsn: str) -> None:
    conn = await db.connect(db_dsn)
    try:
        await conn.execute(
            "UPDATE supplier_bank_details SET state = 'superseded' WHERE supplier_id = $1", world.ids["clothing_bank"]
        )
        await conn.execute(
            "INSERT INTO supplier_bank_details (supplier_id, iban, holder_name, state, requested_by) "
            "SELECT $1, 'NL44RABO0123456789', 'Kledingbank', 'pending', min(id) FROM api_tokens",
            world.ids["clothing_bank"],
        )
    finally:
        await conn.close()
    run = await new_run(client, world)
    (skipped,) = run["skipped"]
    assert skipped["supplier_id"] == world.ids["clothing_bank"]
    assert skipped["reason"] == "bank_details_pending" and skipped["amount"] == 6_500
    assert run["payment_count"] == 2


async def test_instant_run_where_the_bank_supports_it(client: Any, world: World) -> None:
    codes = [(await issue(client, world, beneficiary_ref=f"WK-INST-{i}"))["code"] for i in range(3)]
    for i, code in enumerate(codes):
        r = await client.post(
            "/v1/redemptions",
            json={"voucher_code": code, "amount": 35_000, "reference": f"LID-X-{i}", "description": "seizoen"},
            headers=world.h("sports_club"),
        )
        assert r.status_code == 201, r.text
    leergeld = await debtor_account(client, world, "leergeld_finance")
    r = await client.post(
        "/v1/payout-runs",
        json={"debtor_account_id": leergeld["id"], "instant": True},
        headers=world.h("leergeld_finance"),
    )
    assert r.status_code == 422 and r.json()["code"] == "instant_not_supported"

    run = await new_run(client, world, instant=True)
    assert run["instant"] is True
    run = await approve(client, world, run["id"])
    run = await export(client, world, run["id"])
    (data,) = await download(client, world, run)
    file = read_pain001(data)
    assert [b.instant for b in file.blocks] == [True]
    assert file.blocks[0].execution_date.isoformat() == run["execution_date"]


async def test_instant_maximum_sends_large_payments_regular(client: Any, world: World, db_dsn: str) -> None:
    # A payable above EUR 100,000 for the club, written as the ledger would have it.
    conn = await db.connect(db_dsn)
    try:
        from sepa.rules import INSTANT_MAX_CENTS

        big = INSTANT_MAX_CENTS + 1
        await conn.execute(
            "UPDATE payable_lines SET amount = amount + $2 WHERE id = (SELECT min(id) FROM payable_lines "
            "WHERE supplier_id = $1 AND sponsor_id = $3)",
            world.ids["sports_club"],
            big,
            world.ids["gemeente"],
        )
    finally:
        await conn.close()
    run = await new_run(client, world, instant=True)
    (note,) = run["notes"]
    assert note["code"] == "instant_maximum_exceeded"
    pays = (await client.get(f"/v1/payments?run_id={run['id']}", headers=world.h("gemeente_finance"))).json()
    assert {p["supplier_id"]: p["instant"] for p in pays} == {
        world.ids["sports_club"]: False,
        world.ids["bike_shop"]: True,
        world.ids["clothing_bank"]: True,
    }


async def _export_demo_run(client: Any, world: World) -> tuple[dict[str, Any], bytes]:
    run = await export(client, world, (await approve(client, world, (await new_run(client, world))["id"]))["id"])
    (data,) = await download(client, world, run)
    return run, data


async def test_pain002_rejection_reopens_payable_and_blocks_details(client: Any, world: World, db_dsn: str) -> None:
    run, data = await _export_demo_run(client, world)
    file = read_pain001(data)
    bike = next(p for b in file.blocks for p in b.payments if p.creditor.iban == "NL02ABNA0123456789")
    report = build_pain002(
        file,
        msg_id="BANK-STS-0001",
        created_at=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
        rejections=[Rejection(end_to_end_id=bike.end_to_end_id, reason_code="AC04", additional_info="closed")],
    )
    r = await client.post(
        "/v1/payment-status-reports",
        content=report,
        headers={**world.h("gemeente_finance"), "Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["duplicate"] is False
    assert out["run_state"] == "partially_rejected"
    assert out["accepted"] == 2
    (rej,) = out["rejected"]
    assert rej["end_to_end_id"] == bike.end_to_end_id and rej["reason_code"] == "AC04"
    assert rej["bank_details_blocked"] is True
    # in_transit -> payable: the bike shop's money is owed again, the rest still in transit
    assert await account_balance(db_dsn, "payable:", world.ids["gemeente"]) == bike.amount_cents
    assert await account_balance(db_dsn, "in_transit:", world.ids["gemeente"]) == run["total"] - bike.amount_cents
    await assert_ledgers_balanced(db_dsn)
    assert_adds_up(await overview(client, world))
    r = await client.get(f"/v1/suppliers/{world.ids['bike_shop']}", headers=world.h("bike_shop"))
    assert r.json()["bank_details"]["state"] == "blocked"
    trail = (await client.get("/v1/books/audit-trail", params={"limit": 500}, headers=world.h("auditor"))).json()
    assert ("bank_details.blocked", str(world.ids["bike_shop"])) in {(x["action"], x["subject_id"]) for x in trail}
    # the shop sees why
    pay = (await client.get("/v1/payments", headers=world.h("bike_shop"))).json()
    assert [(p["state"], p["reason_code"]) for p in pay] == [("rejected", "AC04")]

    # the same report again: the first answer, nothing changes
    state = await ledger_state(db_dsn)
    r = await client.post(
        "/v1/payment-status-reports",
        content=report,
        headers={**world.h("gemeente_finance"), "Content-Type": "application/xml"},
    )
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert r.json()["rejected"] == out["rejected"]
    assert await ledger_state(db_dsn) == state

    # the next run skips the blocked shop and says why
    acct = await debtor_account(client, world)
    r = await client.post(
        "/v1/payout-runs", json={"debtor_account_id": acct["id"]}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 409 and r.json()["code"] == "nothing_to_pay"
    assert r.json()["skipped"][0]["reason"] == "bank_details_blocked"

    # new details, approved by four eyes: the lines are payable again
    r = await client.post(
        f"/v1/suppliers/{world.ids['bike_shop']}/bank-details",
        json={"iban": "NL91ABNA0417164300", "holder_name": "Rijwielhandel De Vries"},
        headers=world.h("bike_shop"),
    )
    r = await client.post(f"/v1/bank-detail-requests/{r.json()['id']}/approve", headers=world.h("gemeente_approver"))
    assert r.status_code == 200
    again = await new_run(client, world)
    assert again["total"] == bike.amount_cents
    pays = (await client.get(f"/v1/payments?run_id={again['id']}", headers=world.h("gemeente_finance"))).json()
    assert pays[0]["creditor_iban"] == "NL91ABNA0417164300"


async def _post_status(client: Any, world: World, report: bytes) -> dict[str, Any]:
    r = await client.post(
        "/v1/payment-status-reports",
        content=report,
        headers={**world.h("gemeente_finance"), "Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def _assert_rejected_and_payable_again(client: Any, world: World, db_dsn: str, out: dict[str, Any]) -> None:
    """Every payment rejected, none of the suppliers blocked, every line payable again."""
    assert len(out["rejected"]) == 3
    blocked = [x["supplier_id"] for x in out["rejected"] if x["bank_details_blocked"]]
    assert blocked == [], f"suppliers blocked for the debtor account's error: {blocked}"
    for who in ("bike_shop", "sports_club", "clothing_bank"):
        r = await client.get(f"/v1/suppliers/{world.ids[who]}", headers=world.h(who))
        assert r.json()["bank_details"]["state"] == "active", who
    assert await account_balance(db_dsn, "in_transit:", world.ids["gemeente"]) == 0
    await assert_ledgers_balanced(db_dsn)
    # the lines are open again: the next run pays all three suppliers
    assert (await new_run(client, world))["payment_count"] == 3


async def test_rejection_for_the_debtors_own_account_does_not_block_the_suppliers(
    client: Any, world: World, db_dsn: str
) -> None:
    """AC02 is InvalidDebtorAccountNumber (ISO 20022 ExternalStatusReason1Code): the
    sponsor's own account is wrong, the suppliers' bank details are fine."""
    _run, data = await _export_demo_run(client, world)
    file = read_pain001(data)
    report = build_pain002(
        file,
        msg_id="BANK-STS-AC02",
        created_at=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
        rejections=[
            Rejection(end_to_end_id=p.end_to_end_id, reason_code="AC02", additional_info="invalid debtor account")
            for b in file.blocks
            for p in b.payments
        ],
    )
    out = await _post_status(client, world, report)
    assert {x["reason_code"] for x in out["rejected"]} == {"AC02"}
    await _assert_rejected_and_payable_again(client, world, db_dsn, out)


async def test_a_block_rejected_for_its_debtor_account_does_not_block_the_suppliers(
    client: Any, world: World, db_dsn: str
) -> None:
    """A whole payment block (PmtInf: one debtor account) rejected with AC04 'closed
    account': the closed account is the block's, i.e. the sponsor's, not a supplier's."""
    _run, data = await _export_demo_run(client, world)
    file = read_pain001(data)
    (block,) = file.blocks
    report = f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
<GrpHdr><MsgId>BANK-STS-BLK</MsgId><CreDtTm>2026-11-24T08:00:00+00:00</CreDtTm></GrpHdr>
<OrgnlGrpInfAndSts><OrgnlMsgId>{file.msg_id}</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>
<GrpSts>RJCT</GrpSts></OrgnlGrpInfAndSts>
<OrgnlPmtInfAndSts><OrgnlPmtInfId>{block.pmt_inf_id}</OrgnlPmtInfId><PmtInfSts>RJCT</PmtInfSts>
<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn><AddtlInf>debtor account closed</AddtlInf></StsRsnInf></OrgnlPmtInfAndSts>
</CstmrPmtStsRpt></Document>""".encode()
    out = await _post_status(client, world, report)
    # the block's reason is shown on each payment, but blocks nobody
    assert {x["reason_code"] for x in out["rejected"]} == {"AC04"}
    await _assert_rejected_and_payable_again(client, world, db_dsn, out)


async def test_a_run_whose_payments_are_all_rejected_is_settled(client: Any, world: World, db_dsn: str) -> None:
    """DESIGN: '... | rejected -> settled when every payment is booked or resolved'; a
    rejected payment is resolved (its lines are payable again), so nothing is left to book."""
    from reconciliation.synth import build_camt053
    from tests.api.test_statements_api import statement, xml

    run, data = await _export_demo_run(client, world)
    file = read_pain001(data)
    report = build_pain002(
        file,
        msg_id="STS-ALL",
        created_at=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
        rejections=[
            Rejection(end_to_end_id=p.end_to_end_id, reason_code="AM04") for b in file.blocks for p in b.payments
        ],
    )
    out = await _post_status(client, world, report)
    assert len(out["rejected"]) == 3
    assert out["run_state"] == "settled"
    # the day's statement comes in, with nothing of this run on it: still settled
    r = await client.post("/v1/statements", content=build_camt053(statement([])), headers=xml(world))
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/payout-runs/{run['id']}", headers=world.h("gemeente_finance"))
    assert r.json()["payments_by_state"] == {"rejected": 3}
    assert r.json()["state"] == "settled"
    assert r.json()["settled_at"] is not None


async def test_pain002_accepted_is_not_paid(client: Any, world: World, db_dsn: str) -> None:
    run, data = await _export_demo_run(client, world)
    report = build_pain002(
        read_pain001(data),
        msg_id="BANK-STS-0002",
        created_at=datetime(2026, 11, 24, tzinfo=UTC),
        accepted_status="ACTC",
    )
    before = await overview(client, world)
    r = await client.post(
        "/v1/payment-status-reports",
        content=report,
        headers={**world.h("gemeente_approver"), "Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["run_state"] == "accepted" and r.json()["accepted"] == 3
    after = await overview(client, world)
    assert after["paid"] == before["paid"] and after["in_payout"] == before["in_payout"]
    pays = (await client.get(f"/v1/payments?run_id={run['id']}", headers=world.h("gemeente_finance"))).json()
    assert {p["state"] for p in pays} == {"accepted"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"<not xml", 400, "malformed_xml"),
        (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', 400, "malformed_xml"),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>', 400, "unsupported_message"),
    ],
)
async def test_bad_status_reports_are_refused(
    client: Any, world: World, db_dsn: str, body: bytes, status: int, code: str
) -> None:
    state = await ledger_state(db_dsn)
    r = await client.post(
        "/v1/payment-status-reports",
        content=body,
        headers={**world.h("gemeente_finance"), "Content-Type": "application/xml"},
    )
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await ledger_state(db_dsn) == state


async def test_status_report_for_another_sponsors_file_is_refused(client: Any, world: World, db_dsn: str) -> None:
    _run, data = await _export_demo_run(client, world)
    report = build_pain002(
        read_pain001(data),
        msg_id="BANK-STS-0003",
        created_at=datetime(2026, 11, 24, tzinfo=UTC),
        rejections=[
            Rejection(end_to_end_id=read_pain001(data).blocks[0].payments[0].end_to_end_id, reason_code="AC01")
        ],
    )
    state = await ledger_state(db_dsn)
    r = await client.post(
        "/v1/payment-status-reports",
        content=report,
        headers={**world.h("leergeld_finance"), "Content-Type": "application/xml"},
    )
    assert r.status_code == 404 and r.json()["code"] == "payout_file_not_found"
    assert await ledger_state(db_dsn) == state


async def test_status_report_on_a_direct_debit_with_the_same_msg_id_is_refused(
    client: Any, world: World, db_dsn: str
) -> None:
    # A pain.002 answers the message named by OrgnlMsgId *and* OrgnlMsgNmId: the sponsor's
    # direct-debit (pain.008) file may carry the same MsgId as a payout file; its rejections
    # must not bounce our credit transfers.
    _run, data = await _export_demo_run(client, world)
    file = read_pain001(data)
    report = build_pain002(
        file,
        msg_id="BANK-STS-0008",
        created_at=datetime(2026, 11, 24, tzinfo=UTC),
        rejections=[Rejection(end_to_end_id=file.blocks[0].payments[0].end_to_end_id, reason_code="AC04")],
    )
    report = report.replace(f"<OrgnlMsgNmId>{file.version}<".encode(), b"<OrgnlMsgNmId>pain.008.001.02<")
    assert b"pain.008.001.02" in report
    state = await ledger_state(db_dsn)
    r = await client.post(
        "/v1/payment-status-reports",
        content=report,
        headers={**world.h("gemeente_finance"), "Content-Type": "application/xml"},
    )
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "payout_file_not_found"
    assert await ledger_state(db_dsn) == state
    # the bank may write the name in capitals: still ours
    upper = report.replace(b"<OrgnlMsgNmId>pain.008.001.02<", f"<OrgnlMsgNmId>{file.version.upper()}<".encode())
    r = await client.post(
        "/v1/payment-status-reports",
        content=upper,
        headers={**world.h("gemeente_finance"), "Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["rejected"]) == 1


async def test_a_reason_code_in_a_later_status_reason_is_not_lost(client: Any, world: World, db_dsn: str) -> None:
    # StsRsnInf repeats: a bank may lead with a text-only one (who rejected, in words) and give
    # the code in the next. The code decides whether the supplier's details are blocked.
    _run, data = await _export_demo_run(client, world)
    file = read_pain001(data)
    bike = next(p for b in file.blocks for p in b.payments if p.creditor.iban == "NL02ABNA0123456789")
    report = build_pain002(
        file,
        msg_id="BANK-STS-0009",
        created_at=datetime(2026, 11, 24, tzinfo=UTC),
        rejections=[Rejection(end_to_end_id=bike.end_to_end_id, reason_code="AC04", additional_info="closed")],
    )
    assert report.count(b"<StsRsnInf>") == 1
    report = report.replace(
        b"<StsRsnInf>", b"<StsRsnInf><AddtlInf>Rejected by the beneficiary bank</AddtlInf></StsRsnInf><StsRsnInf>"
    )
    parse_pain002(report, strict=True)
    out = await _post_status(client, world, report)
    (rej,) = out["rejected"]
    assert rej["reason_code"] == "AC04", rej
    assert rej["reason_info"] == "Rejected by the beneficiary bank; closed"
    assert rej["bank_details_blocked"] is True


async def test_shared_pain002_files_parse_but_match_no_file_of_ours(client: Any, world: World) -> None:
    path = SHARED_BANK_FILES / "test-sepa-pain-unpaid.xml"
    if not path.exists():
        pytest.skip("shared bank files absent")
    r = await client.post(
        "/v1/payment-status-reports",
        content=path.read_bytes(),
        headers={**world.h("gemeente_finance"), "Content-Type": "application/xml"},
    )
    assert r.status_code == 404 and r.json()["code"] == "payout_file_not_found"


async def test_a_crash_between_building_the_file_and_posting_leaves_nothing(
    client: Any, world: World, db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from settlement.payouts import flows

    run = await approve(client, world, (await new_run(client, world))["id"])
    state = await ledger_state(db_dsn)

    async def crash(conn: Any, entries: Any, what: str) -> Any:
        files = await conn.fetchval("SELECT count(*) FROM payout_files WHERE run_id = $1", run["id"])
        assert files == 1  # the file was built and stored in this transaction ...
        raise ConnectionResetError("database went away")  # ... then the posting dies

    monkeypatch.setattr(flows, "post_all", crash)
    r = await client.post(f"/v1/payout-runs/{run['id']}/export", headers=world.h("gemeente_finance"))
    assert r.status_code == 503 and r.json()["code"] == "database_unavailable", r.text  # a lost connection
    monkeypatch.undo()
    assert await ledger_state(db_dsn) == state
    again = (await client.get(f"/v1/payout-runs/{run['id']}", headers=world.h("gemeente_finance"))).json()
    assert again["state"] == "approved" and again["files"] == []
    conn = await db.connect(db_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM payable_lines WHERE state = 'in_payout'") == 0
    finally:
        await conn.close()
    # and the retry exports it whole
    done = await export(client, world, run["id"])
    assert done["state"] == "exported" and len(done["files"]) == 1


async def test_stored_files_are_immutable(client: Any, world: World, db_dsn: str) -> None:
    import asyncpg

    run, _ = await _export_demo_run(client, world)
    conn = await db.connect(db_dsn)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("UPDATE payout_files SET content = 'x' WHERE run_id = $1", run["id"])
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("DELETE FROM payout_files WHERE run_id = $1", run["id"])
    finally:
        await conn.close()


async def test_files_split_at_the_configured_maximum(world: World, db_dsn: str, test_settings: Any) -> None:
    import msgspec
    from litestar.testing import AsyncTestClient

    from settlement.app import create_app

    app = create_app(msgspec.structs.replace(test_settings, payout_max_payments_per_file=2), dsn=db_dsn)
    async with AsyncTestClient(app=app) as c:
        run = await export(c, world, (await approve(c, world, (await new_run(c, world))["id"]))["id"])
        assert [f["payment_count"] for f in run["files"]] == [2, 1]
        files = [read_pain001(d) for d in await download(c, world, run)]
    ids = [p.end_to_end_id for f in files for b in f.blocks for p in b.payments]
    assert len(ids) == len(set(ids)) == 3
    assert len({f.msg_id for f in files}) == 2
    assert sum(f["ctrl_sum"] for f in run["files"]) == run["total"]


async def test_schedule_makes_a_draft_run_once(client: Any, world: World, db_dsn: str) -> None:
    from settlement.payouts.flows import run_due_schedules

    acct = await debtor_account(client, world)
    r = await client.put(
        f"/v1/debtor-accounts/{acct['id']}/payout-schedule",
        json={"weekdays": [1, 2, 3, 4, 5, 6, 7], "at_local": "00:00"},
        headers=world.h("gemeente_finance"),
    )
    assert r.status_code == 200, r.text
    conn = await db.connect(db_dsn)
    try:
        first = await run_due_schedules(conn)
        second = await run_due_schedules(conn)
    finally:
        await conn.close()
    assert len(first) == 1 and first[0].schedule and first[0].state == "draft"
    assert second == []
    # a scheduled run has no person as creator: any approver approves it
    run = await approve(client, world, first[0].id)
    assert run["state"] == "approved"


async def test_a_failing_schedule_does_not_stop_the_others(client: Any, world: World, db_dsn: str) -> None:
    """Two sponsors' schedules due; the first in order fails on a rule (its account no longer
    supports the instant runs it asks for). The second still makes its run, and the first says
    why in its sponsor's audit trail instead of failing again and again."""
    from settlement.payouts.flows import run_due_schedules

    accounts = sorted(
        [
            (await debtor_account(client, world, who), who, world.ids[sponsor])
            for who, sponsor in (("gemeente_finance", "gemeente"), ("leergeld_finance", "leergeld"))
        ],
        key=lambda a: a[0]["id"],
    )
    for acct, who, _ in accounts:
        r = await client.put(
            f"/v1/debtor-accounts/{acct['id']}/payout-schedule",
            json={"weekdays": [1, 2, 3, 4, 5, 6, 7], "at_local": "00:00"},
            headers=world.h(who),
        )
        assert r.status_code == 200, r.text
    (first, _, first_sponsor), (second, _, _) = accounts
    conn = await db.connect(db_dsn)
    try:
        # the first account's bank profile changed after its schedule asked for instant runs
        await conn.execute("UPDATE payout_schedules SET instant = true WHERE debtor_account_id = $1", first["id"])
        await conn.execute("UPDATE debtor_accounts SET instant_supported = false WHERE id = $1", first["id"])
        made = await run_due_schedules(conn)
        again = await run_due_schedules(conn)
        trail = await conn.fetch(
            "SELECT actor, sponsor_id, after FROM audit_log WHERE action = 'payout_schedule.failed' "
            "AND subject_id = $1",
            str(first["id"]),
        )
    finally:
        await conn.close()
    assert [r.debtor_account_id for r in made] == [second["id"]]
    assert again == []
    assert len(trail) == 1 and trail[0]["actor"] == "system:payout-schedule"
    assert trail[0]["sponsor_id"] == first_sponsor


async def test_an_iban_only_bank_profile_leaves_the_creditor_agents_out(client: Any, world: World) -> None:
    """A bank that prefers IBAN-only files: the account's profile says so, and its
    pain.001 names no creditor agent (the suppliers are all Dutch, inside the EEA)."""
    r = await client.post(
        "/v1/debtor-accounts",
        json={"iban": "NL69INGB0123456789", "holder_name": "Gemeente Westerkwartier", "iban_only": True},
        headers=world.h("gemeente_finance"),
    )
    assert r.status_code == 201, r.text
    acct = r.json()
    assert acct["iban_only"] is True and acct["bic"] == "INGBNL2A"
    listed = (await client.get("/v1/debtor-accounts", headers=world.h("gemeente_finance"))).json()
    assert [a["iban_only"] for a in listed] == [False, True]  # the demo's account keeps the default
    run = await new_run(client, world, debtor_account_id=acct["id"])
    run = await export(client, world, (await approve(client, world, run["id"]))["id"])
    (data,) = await download(client, world, run)
    validate(data, "pain.001.001.09")
    shared = SHARED_BANK_FILES / "xsd" / "pain.001.001.09.xsd"
    if shared.exists():
        from lxml import etree

        assert etree.XMLSchema(etree.parse(str(shared))).validate(etree.fromstring(data))
    assert b"<CdtrAgt>" not in data and b"NOTPROVIDED" not in data
    assert b"<DbtrAgt><FinInstnId><BICFI>INGBNL2A</BICFI>" in data.replace(b"\n", b"").replace(b" ", b"")
    file = read_pain001(data)
    assert all(p.creditor.bic is None for b in file.blocks for p in b.payments)
    # the payments still carry the suppliers' BICs, as copied when the run was built
    pays = (await client.get(f"/v1/payments?run_id={run['id']}", headers=world.h("gemeente_finance"))).json()
    assert all(p["creditor_bic"] for p in pays)
