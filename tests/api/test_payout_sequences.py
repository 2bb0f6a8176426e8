"""Payouts over time: refunds, rejections and cancellations between and across runs."""

from __future__ import annotations

from typing import Any

from settlement import db
from tests.api.conftest import World, assert_ledgers_balanced, ledger_state
from tests.api.test_payouts_api import approve, debtor_account, export, new_run
from tests.api.test_vouchers_api import issue


async def redeem(client: Any, world: World, who: str, amount: int, ref: str) -> dict[str, Any]:
    v = await issue(client, world, amount=20_000)
    r = await client.post(
        "/v1/redemptions",
        headers=world.h(who),
        json={"voucher_code": v["code"], "amount": amount, "reference": ref, "description": "x"},
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def refund(client: Any, world: World, who: str, redemption_id: str, amount: int) -> None:
    r = await client.post(
        f"/v1/redemptions/{redemption_id}/refunds", headers=world.h(who), json={"amount": amount, "reason": "terug"}
    )
    assert r.status_code == 201, r.text


async def supplier_payable(dsn: str, world: World, supplier: str) -> int:
    """What the gemeente owes the supplier on its ledger (negative: the supplier owes)."""
    conn = await db.connect(dsn)
    try:
        v: int = await conn.fetchval(
            "SELECT (a.credits_posted - a.debits_posted)::bigint FROM accounts a JOIN sponsors s "
            "ON s.ledger_id = a.ledger_id WHERE s.organisation_id = $1 AND a.code = $2",
            world.ids["gemeente"],
            f"payable:{world.ids[supplier]}",
        )
        return v
    finally:
        await conn.close()


async def payments_of(client: Any, world: World, run_id: int) -> dict[int, int]:
    r = await client.get(f"/v1/payments?run_id={run_id}", headers=world.h("gemeente_finance"))
    assert r.status_code == 200, r.text
    return {p["supplier_id"]: p["amount"] for p in r.json()}


async def test_a_refund_after_the_run_was_built_stops_its_export(client: Any, world: World, db_dsn: str) -> None:
    """The clothing bank gives its whole redemption back while the run that pays it is
    approved: exporting that run would pay money the supplier no longer has a claim to."""
    run = await new_run(client, world)
    assert (await payments_of(client, world, run["id"]))[world.ids["clothing_bank"]] == 6_500
    (red,) = (await client.get("/v1/redemptions", headers=world.h("clothing_bank"))).json()["items"]
    await approve(client, world, run["id"])
    await refund(client, world, "clothing_bank", red["id"], 6_500)

    state = await ledger_state(db_dsn)
    r = await client.post(f"/v1/payout-runs/{run['id']}/export", headers=world.h("gemeente_finance"))
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "payables_changed"
    assert r.json()["suppliers"] == [world.ids["clothing_bank"]]
    assert await ledger_state(db_dsn) == state
    assert (await client.get(f"/v1/payout-runs/{run['id']}", headers=world.h("gemeente_finance"))).json()[
        "state"
    ] == "approved"

    # cancel and build again: the refund is netted, the clothing bank is owed nothing
    r = await client.post(
        f"/v1/payout-runs/{run['id']}/cancel", json={"reason": "refund"}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 200, r.text
    again = await new_run(client, world)
    pays = await payments_of(client, world, again["id"])
    assert world.ids["clothing_bank"] not in pays
    assert again["total"] == run["total"] - 6_500
    # refunded in full before it was paid: left out, nothing owed, nothing skipped
    assert again["skipped"] == []
    await approve(client, world, again["id"])
    await export(client, world, again["id"])
    assert await supplier_payable(db_dsn, world, "clothing_bank") == 0
    await assert_ledgers_balanced(db_dsn)


async def test_a_refund_of_something_paid_before_is_netted_in_the_next_run(
    client: Any, world: World, db_dsn: str
) -> None:
    """Refund after payout: the debt carries over run after run until new redemptions cover it."""
    run = await new_run(client, world)
    await approve(client, world, run["id"])
    await export(client, world, run["id"])
    (red,) = (await client.get("/v1/redemptions", headers=world.h("clothing_bank"))).json()["items"]
    await refund(client, world, "clothing_bank", red["id"], 4_000)
    await refund(client, world, "clothing_bank", red["id"], 1_000)
    assert await supplier_payable(db_dsn, world, "clothing_bank") == -5_000
    acct = await debtor_account(client, world)
    # nothing else to pay: no zero or negative payment, the debt stays
    r = await client.post(
        "/v1/payout-runs", json={"debtor_account_id": acct["id"]}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 409 and r.json()["code"] == "nothing_to_pay"
    assert [(s["amount"], s["reason"]) for s in r.json()["skipped"]] == [(-5_000, "nothing_to_pay")]
    # a new redemption smaller than the debt: still nothing
    await redeem(client, world, "clothing_bank", 3_000, "KB-1")
    r = await client.post(
        "/v1/payout-runs", json={"debtor_account_id": acct["id"]}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 409 and r.json()["skipped"][0]["amount"] == -2_000
    # another one: the net is paid, once
    await redeem(client, world, "clothing_bank", 4_500, "KB-2")
    run2 = await new_run(client, world)
    assert await payments_of(client, world, run2["id"]) == {world.ids["clothing_bank"]: 2_500}
    await approve(client, world, run2["id"])
    await export(client, world, run2["id"])
    assert await supplier_payable(db_dsn, world, "clothing_bank") == 0
    r = await client.post(
        "/v1/payout-runs", json={"debtor_account_id": acct["id"]}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 409 and r.json()["skipped"] == []
    await assert_ledgers_balanced(db_dsn)


async def test_every_transition_the_run_state_machine_lacks_is_refused(client: Any, world: World, db_dsn: str) -> None:
    """draft -> approved -> exported; cancelled from draft or approved only. Every other
    step is a 409 whose code says what the run is, and changes nothing."""
    fin = "gemeente_finance"

    async def refused(run_id: int, step: str, code: str) -> None:
        state = await ledger_state(db_dsn)
        body = {"reason": "x"} if step == "cancel" else None
        who = "gemeente_approver" if step == "approve" else fin
        r = await client.post(f"/v1/payout-runs/{run_id}/{step}", json=body, headers=world.h(who))
        assert r.status_code == 409, (step, r.text)
        assert r.json()["code"] == code, (step, r.json())
        assert r.headers["content-type"].startswith("application/problem+json")
        assert await ledger_state(db_dsn) == state

    run = await new_run(client, world)
    await refused(run["id"], "export", "payout_run_not_approved")
    r = await client.post(f"/v1/payout-runs/{run['id']}/cancel", json={"reason": "x"}, headers=world.h(fin))
    assert r.status_code == 200
    await refused(run["id"], "approve", "payout_run_not_draft")
    await refused(run["id"], "export", "payout_run_cancelled")
    await refused(run["id"], "cancel", "payout_run_not_cancellable")

    run = await new_run(client, world)
    await approve(client, world, run["id"])
    await refused(run["id"], "approve", "payout_run_not_draft")
    await export(client, world, run["id"])
    await refused(run["id"], "approve", "payout_run_not_draft")
    await refused(run["id"], "export", "payout_run_already_exported")
    await refused(run["id"], "cancel", "payout_run_not_cancellable")


async def test_a_payment_above_the_sct_maximum_is_skipped_not_a_broken_export(
    client: Any, world: World, db_dsn: str
) -> None:
    """EUR 999,999,999.99 is the most one SEPA credit transfer carries: a supplier owed more is
    skipped with the reason when the run is built, rather than a run nobody can export."""
    from sepa.rules import SCT_MAX_CENTS

    conn = await db.connect(db_dsn)
    try:
        # the sports club's two memberships now add up to one cent above the maximum
        await conn.execute(
            "UPDATE payable_lines SET amount = $2 WHERE id = "
            "(SELECT min(id) FROM payable_lines WHERE supplier_id = $1)",
            world.ids["sports_club"],
            SCT_MAX_CENTS - 12_500 + 1,
        )
    finally:
        await conn.close()
    run = await new_run(client, world)
    assert world.ids["sports_club"] not in await payments_of(client, world, run["id"])
    (skip,) = run["skipped"]
    assert (skip["supplier_id"], skip["reason"], skip["amount"]) == (
        world.ids["sports_club"],
        "amount_exceeds_maximum",
        SCT_MAX_CENTS + 1,
    )
    await approve(client, world, run["id"])
    run = await export(client, world, run["id"])
    assert run["state"] == "exported" and run["payment_count"] == 2


async def test_a_rejected_payment_and_a_later_refund_are_paid_once_net(client: Any, world: World, db_dsn: str) -> None:
    """Run 1 pays the clothing bank 6,500; it refunds 2,000 more; the bank rejects the payment
    (a reason that blocks nothing). The next run pays 4,500 once; cancelling and rebuilding it
    changes nothing; after it nothing is left."""
    from datetime import UTC, datetime

    from sepa import Rejection, build_pain002, read_pain001
    from tests.api.test_payouts_api import download

    run = await new_run(client, world)
    await approve(client, world, run["id"])
    run = await export(client, world, run["id"])
    (data,) = await download(client, world, run)
    (red,) = (await client.get("/v1/redemptions", headers=world.h("clothing_bank"))).json()["items"]
    await refund(client, world, "clothing_bank", red["id"], 2_000)
    file = read_pain001(data)
    kb = next(p for b in file.blocks for p in b.payments if p.amount_cents == 6_500)
    report = build_pain002(
        file,
        msg_id="BANK-STS-AM05",
        created_at=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
        rejections=[Rejection(end_to_end_id=kb.end_to_end_id, reason_code="AM05", additional_info="duplicate")],
    )
    r = await client.post(
        "/v1/payment-status-reports",
        content=report,
        headers={**world.h("gemeente_finance"), "Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    assert [x["bank_details_blocked"] for x in r.json()["rejected"]] == [False]
    assert await supplier_payable(db_dsn, world, "clothing_bank") == 4_500

    run2 = await new_run(client, world)
    assert await payments_of(client, world, run2["id"]) == {world.ids["clothing_bank"]: 4_500}
    r = await client.post(
        f"/v1/payout-runs/{run2['id']}/cancel", json={"reason": "again"}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 200
    run3 = await new_run(client, world)
    assert await payments_of(client, world, run3["id"]) == {world.ids["clothing_bank"]: 4_500}
    await approve(client, world, run3["id"])
    await export(client, world, run3["id"])
    assert await supplier_payable(db_dsn, world, "clothing_bank") == 0
    acct = await debtor_account(client, world)
    r = await client.post(
        "/v1/payout-runs", json={"debtor_account_id": acct["id"]}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 409 and r.json()["skipped"] == []
    await assert_ledgers_balanced(db_dsn)


async def _move_due(dsn: str, redemption_id: str, interval: str) -> None:
    """Put a redemption's lines (its refund lines too) at now() + interval, as a fund's
    cancellation window would (the world's funds have none)."""
    conn = await db.connect(dsn)
    try:
        await conn.execute(
            f"UPDATE payable_lines SET payable_from = now() + interval '{interval}' WHERE redemption_id = $1",
            redemption_id,
        )
    finally:
        await conn.close()


async def test_a_refund_inside_the_cancellation_window_falls_due_with_its_redemption(
    client: Any, world: World, db_dsn: str
) -> None:
    """A redemption still in its fund's 14-day window, partly refunded: the refund must not
    cut what the supplier is owed now; it is netted when the redemption itself falls due."""
    run = await new_run(client, world)
    await approve(client, world, run["id"])
    await export(client, world, run["id"])
    await redeem(client, world, "clothing_bank", 1_000, "KB-DUE")
    later = await redeem(client, world, "clothing_bank", 5_000, "KB-LATER")
    await _move_due(db_dsn, later["id"], "14 days")
    await refund(client, world, "clothing_bank", later["id"], 2_000)

    run2 = await new_run(client, world)
    assert await payments_of(client, world, run2["id"]) == {world.ids["clothing_bank"]: 1_000}
    assert run2["skipped"] == []
    await approve(client, world, run2["id"])
    await export(client, world, run2["id"])
    assert await supplier_payable(db_dsn, world, "clothing_bank") == 3_000

    # the window ends: the redemption and its refund fall due together
    await _move_due(db_dsn, later["id"], "-1 second")
    run3 = await new_run(client, world)
    assert await payments_of(client, world, run3["id"]) == {world.ids["clothing_bank"]: 3_000}
    await approve(client, world, run3["id"])
    await export(client, world, run3["id"])
    assert await supplier_payable(db_dsn, world, "clothing_bank") == 0
    await assert_ledgers_balanced(db_dsn)


async def test_a_redemption_refunded_in_full_before_payment_is_left_out(client: Any, world: World, db_dsn: str) -> None:
    """Nothing is owed for it: no skipped supplier in every later run, and its status says so."""
    run = await new_run(client, world)
    await approve(client, world, run["id"])
    await export(client, world, run["id"])
    gone = await redeem(client, world, "clothing_bank", 2_000, "KB-TERUG")
    await refund(client, world, "clothing_bank", gone["id"], 2_000)

    acct = await debtor_account(client, world)
    r = await client.post(
        "/v1/payout-runs", json={"debtor_account_id": acct["id"]}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 409 and r.json()["code"] == "nothing_to_pay", r.text
    assert r.json()["skipped"] == []
    r = await client.get(f"/v1/redemptions/{gone['id']}", headers=world.h("clothing_bank"))
    assert r.json()["status"] == "refunded" and r.json()["refunded"] == 2_000

    # with something else to pay, only that is paid
    await redeem(client, world, "clothing_bank", 700, "KB-NEU")
    run2 = await new_run(client, world)
    assert await payments_of(client, world, run2["id"]) == {world.ids["clothing_bank"]: 700}
    assert run2["skipped"] == []
    assert await supplier_payable(db_dsn, world, "clothing_bank") == 700
    await assert_ledgers_balanced(db_dsn)
