"""Returning budget to a funding source, and closing a fund after its period.

budget returned     fund:F -> funding:src   at most available, at most the source's net grant
fund closed         no more vouchers or grants; the unspent rest back to the sources
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
import msgspec
import pytest

from settlement import db
from settlement.books.verify import verify_books
from settlement.sponsors.flows import FundOverview, SourceLine, overview_problems
from settlement.vouchers.flows import expire_vouchers
from tests.api.conftest import World, assert_ledgers_balanced, ledger_state
from tests.api.test_books_api import PERIOD
from tests.api.test_vouchers_api import assert_adds_up, issue, overview


async def new_fund(client: Any, world: World, code: str, grants: dict[str, int]) -> int:
    """A gemeente fund open to any supplier, with budget from the given sources."""
    r = await client.post(
        "/v1/funds",
        headers=world.h("gemeente_finance"),
        json={
            "code": code,
            "name": f"Fonds {code}",
            "period_start": "2020-01-01",
            "period_end": "2099-12-31",
            "cap_per_voucher": 50_000,
            "validators": [world.ids["gemeente"]],
        },
    )
    assert r.status_code == 201, r.text
    fund: int = r.json()["id"]
    for source, amount in grants.items():
        r = await client.post(
            f"/v1/funds/{fund}/grants",
            headers=world.h("gemeente_finance"),
            json={"source": source, "amount": amount, "source_name": f"Bron {source}"},
        )
        assert r.status_code == 201, r.text
    world.ids[code.lower()] = fund
    return fund


async def fund_overview(client: Any, world: World, fund: int) -> Any:
    r = await client.get(f"/v1/funds/{fund}/overview", headers=world.h("gemeente_finance"))
    assert r.status_code == 200, r.text
    return r.json()


async def funding_account(db_dsn: str, world: World, source: str) -> tuple[int, int]:
    conn = await db.connect(db_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT a.debits_posted, a.credits_posted FROM funding_sources s JOIN accounts a ON a.id = s.account_id "
            "WHERE s.sponsor_id = $1 AND s.code = $2",
            world.ids["gemeente"],
            source,
        )
        return row["debits_posted"], row["credits_posted"]
    finally:
        await conn.close()


async def audit(client: Any, world: World, action: str) -> list[Any]:
    r = await client.get("/v1/books/audit-trail", params={"action": action}, headers=world.h("auditor"))
    assert r.status_code == 200, r.text
    out: list[Any] = r.json()
    return out


async def test_a_return_shows_beside_the_grant_and_replays(client: Any, world: World, db_dsn: str) -> None:
    """A grant booked too high: part goes back to its source. The accountant sees 'granted
    6,000,000, returned 1,234,567' rather than a smaller grant, in the overview, the
    returns list, the journal, the fund report and the audit trail."""
    k = world.ids["kindpakket"]
    before = await overview(client, world)
    debits, credits = await funding_account(db_dsn, world, "rijk-kinderarmoede")
    body = {"source": "rijk-kinderarmoede", "amount": 1_234_567, "reason": "Rijksbijdrage te hoog geboekt, brief 3 mrt"}
    headers = world.h("gemeente_finance", key="return-1")
    r = await client.post(f"/v1/funds/{k}/returns", headers=headers, json=body)
    assert r.status_code == 201, r.text
    ret = r.json()
    assert (ret["source"], ret["amount"], ret["reason"], ret["at_close"]) == (
        "rijk-kinderarmoede",
        1_234_567,
        body["reason"],
        False,
    )
    assert ret["by"].startswith("Anna Bakker")
    after = await overview(client, world)
    assert_adds_up(after)
    assert after["granted"] == before["granted"] == 8_750_000
    assert after["returned_to_sources"] == 1_234_567
    assert after["net_granted"] == 8_750_000 - 1_234_567
    assert after["available"] == before["available"] - 1_234_567
    rijk = next(s for s in after["by_source"] if s["source"] == "rijk-kinderarmoede")
    assert (rijk["granted"], rijk["returned"], rijk["net_granted"]) == (6_000_000, 1_234_567, 4_765_433)
    # the ledger: fund:F -> funding:src; the money received on the bank is another account's business
    assert await funding_account(db_dsn, world, "rijk-kinderarmoede") == (debits, credits + 1_234_567)
    await assert_ledgers_balanced(db_dsn)

    # the same key again: the same answer, nothing more booked
    state = await ledger_state(db_dsn)
    r = await client.post(f"/v1/funds/{k}/returns", headers=headers, json=body)
    assert r.status_code == 201 and r.headers["Idempotent-Replayed"] == "true"
    assert r.json() == ret
    assert await ledger_state(db_dsn) == state

    r = await client.get(f"/v1/funds/{k}/returns", headers=world.h("auditor"))
    assert r.status_code == 200 and r.json() == [ret]
    r = await client.get("/v1/books/journal", params=PERIOD, headers=world.h("auditor"))
    (entry,) = [e for e in r.json()["entries"] if any(t["code"] == "budget_returned" for t in e["transfers"])]
    assert entry["id"] == ret["id"] and body["reason"] in entry["description"]
    assert [(t["debit"], t["credit"], t["amount"]) for t in entry["transfers"]] == [
        (f"fund:{k}", "funding:rijk-kinderarmoede", 1_234_567)
    ]
    (line,) = await audit(client, world, "fund.budget_returned")
    assert line["after"]["reason"] == body["reason"] and line["after"]["amount"] == 1_234_567
    assert line["actor"].startswith("Anna Bakker")
    r = await client.get("/v1/books/fund-report", params=PERIOD, headers=world.h("auditor"))
    (row,) = [f for f in r.json()["funds"] if f["fund_id"] == k]
    assert (row["granted"], row["returned_to_sources"]) == (8_750_000, 1_234_567)
    assert {s["source"]: s["returned"] for s in row["by_source"]} == {
        "rijk-kinderarmoede": 1_234_567,
        "eigen-middelen": 0,
    }
    r = await client.get(
        "/v1/books/fund-report",
        params={**PERIOD, "format": "csv"},
        headers=world.h("auditor"),
    )
    assert r.status_code == 200 and "Returned to sources" in r.content.decode("utf-8-sig")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"source": "eigen-middelen", "amount": 2_750_001, "reason": "x"}, 409, "return_exceeds_net_grant"),
        ({"source": "provincie", "amount": 1, "reason": "x"}, 422, "funding_source_not_granted"),
        ({"source": "donaties", "amount": 1, "reason": "x"}, 422, "funding_source_not_granted"),
        ({"source": "eigen-middelen", "amount": 1, "reason": "   "}, 422, "reason_required"),
        ({"source": "eigen-middelen", "amount": 1}, 422, "validation_failed"),
        ({"source": "eigen-middelen", "amount": 0, "reason": "x"}, 422, "validation_failed"),
        ({"source": "eigen-middelen", "amount": -5, "reason": "x"}, 422, "validation_failed"),
    ],
)
async def test_a_refused_return_changes_nothing(
    client: Any, world: World, db_dsn: str, body: dict[str, Any], status: int, code: str
) -> None:
    # a source of the gemeente that granted to another fund only
    await new_fund(client, world, "ANDER", {"provincie": 10_000})
    before = await ledger_state(db_dsn)
    r = await client.post(
        f"/v1/funds/{world.ids['kindpakket']}/returns", headers=world.h("gemeente_finance"), json=body
    )
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert r.headers["content-type"].startswith("application/problem+json")
    if code == "return_exceeds_net_grant":
        assert r.json()["net_granted"] == 2_750_000
    assert await ledger_state(db_dsn) == before
    assert (await overview(client, world))["returned_to_sources"] == 0


async def test_no_more_back_than_available_nor_than_the_source_granted(client: Any, world: World, db_dsn: str) -> None:
    """Budget on vouchers is not available: it comes back when they expire or are withdrawn.
    A source gets back at most what it granted less what it got back before."""
    f = await new_fund(client, world, "KORT", {"rijk": 100_000, "provincie": 20_000})
    await issue(client, world, fund_id=f, amount=50_000)
    await issue(client, world, fund_id=f, amount=30_000, beneficiary_ref="WK-TEST-2")
    before = await ledger_state(db_dsn)
    r = await client.post(
        f"/v1/funds/{f}/returns",
        headers=world.h("gemeente_finance"),
        json={"source": "rijk", "amount": 40_001, "reason": "x"},
    )
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["available"]) == ("return_exceeds_available", 40_000)
    assert await ledger_state(db_dsn) == before
    for amount in (15_000, 5_000):
        r = await client.post(
            f"/v1/funds/{f}/returns",
            headers=world.h("gemeente_finance"),
            json={"source": "provincie", "amount": amount, "reason": "provincie kort in"},
        )
        assert r.status_code == 201, r.text
    before = await ledger_state(db_dsn)
    r = await client.post(
        f"/v1/funds/{f}/returns",
        headers=world.h("gemeente_finance"),
        json={"source": "provincie", "amount": 1, "reason": "x"},
    )
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["net_granted"]) == ("return_exceeds_net_grant", 0)
    assert await ledger_state(db_dsn) == before
    o = await fund_overview(client, world, f)
    assert_adds_up(o)
    assert (o["available"], o["returned_to_sources"], o["net_granted"]) == (20_000, 20_000, 100_000)


@pytest.mark.parametrize(
    "who", ["gemeente_validator", "gemeente_approver", "auditor", "bike_shop", "leergeld_validator"]
)
async def test_only_the_sponsors_finance_returns_and_closes(client: Any, world: World, db_dsn: str, who: str) -> None:
    k = world.ids["kindpakket"]
    before = await ledger_state(db_dsn)
    r = await client.post(
        f"/v1/funds/{k}/returns", headers=world.h(who), json={"source": "eigen-middelen", "amount": 1, "reason": "x"}
    )
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "role_not_allowed"
    r = await client.post(f"/v1/funds/{k}/close", headers=world.h(who), json={"reason": "x"})
    assert r.status_code == 403, r.text
    assert await ledger_state(db_dsn) == before


async def test_another_sponsors_fund_answers_404(client: Any, world: World, db_dsn: str) -> None:
    fiets = world.ids["fiets"]
    before = await ledger_state(db_dsn)
    r = await client.post(
        f"/v1/funds/{fiets}/returns",
        headers=world.h("gemeente_finance"),
        json={"source": "donaties", "amount": 1, "reason": "x"},
    )
    assert r.status_code == 404 and r.json()["code"] == "fund_not_found"
    r = await client.post(f"/v1/funds/{fiets}/close", headers=world.h("gemeente_finance"), json={"reason": "x"})
    assert r.status_code == 404 and r.json()["code"] == "fund_not_found"
    r = await client.get(f"/v1/funds/{fiets}/returns", headers=world.h("gemeente_finance"))
    assert r.status_code == 404 and r.json()["code"] == "fund_not_found"
    r = await client.get(f"/v1/funds/{fiets}/returns", headers=world.h("leergeld_finance"))
    assert r.status_code == 200 and r.json() == []
    assert await ledger_state(db_dsn) == before


async def test_closing_with_open_vouchers_is_refused_with_their_list(client: Any, world: World, db_dsn: str) -> None:
    """The finance team sees what is still outstanding, and nothing is withdrawn behind its back."""
    before = await ledger_state(db_dsn)
    o = await overview(client, world)
    r = await client.post(
        f"/v1/funds/{world.ids['kindpakket']}/close",
        headers=world.h("gemeente_finance", key="close-k"),
        json={"reason": "schooljaar afgesloten"},
    )
    assert r.status_code == 409, r.text
    p = r.json()
    assert p["code"] == "fund_has_outstanding_vouchers"
    # 40 Kindpakket vouchers and 5 co-funded bikes, one with a reservation held
    assert p["outstanding_count"] == len(p["vouchers"]) == 45
    assert p["outstanding_spendable"] == o["vouchers_outstanding"] == sum(v["spendable"] for v in p["vouchers"])
    assert p["outstanding_reserved"] == o["reserved"] == sum(v["reserved"] for v in p["vouchers"]) > 0
    assert not any(v["past_validity"] for v in p["vouchers"])
    assert "WK-" not in r.text and "LG-" not in r.text  # codes, never the beneficiary references
    assert await ledger_state(db_dsn) == before
    # the refusal is the answer to its key (a close after withdrawing them takes a new key)
    again = await client.post(
        f"/v1/funds/{world.ids['kindpakket']}/close",
        headers=world.h("gemeente_finance", key="close-k"),
        json={"reason": "schooljaar afgesloten"},
    )
    assert (again.status_code, again.headers["Idempotent-Replayed"], again.json()) == (409, "true", p)
    r = await client.get(f"/v1/funds/{world.ids['kindpakket']}", headers=world.h("gemeente_finance"))
    assert r.json()["state"] == "open"
    await issue(client, world)  # still open for vouchers


async def test_close_returns_the_rest_pro_rata_and_stops_the_fund(client: Any, world: World, db_dsn: str) -> None:
    f = await new_fund(client, world, "SLUIT", {"rijk": 100_000, "provincie": 50_000, "legaat": 7})
    v = await issue(client, world, fund_id=f, amount=30_000)
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 10_001, "reference": "BON-S1", "description": "fiets"},
    )
    assert r.status_code == 201, r.text
    redemption = r.json()["id"]
    r = await client.post(f"/v1/vouchers/{v['id']}/withdraw", headers=world.h("gemeente_finance"))
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/funds/{f}/returns",
        headers=world.h("gemeente_finance"),
        json={"source": "rijk", "amount": 20_000, "reason": "te hoog geboekt"},
    )
    assert r.status_code == 201, r.text
    o = await fund_overview(client, world, f)
    assert (o["available"], o["net_granted"], o["issued"]) == (120_006, 130_007, 10_001)

    r = await client.post(
        f"/v1/funds/{f}/close",
        headers=world.h("gemeente_finance", key="close-1"),
        json={"reason": "  periode voorbij "},
    )
    assert r.status_code == 200, r.text
    closure = r.json()
    # 120,006 over net grants legaat 7, provincie 50,000, rijk 80,000 (of 130,007): exact shares
    # 6.46, 46,153.67, 73,845.87; floors 6 + 46,153 + 73,845 leave 2 cents, for the two largest remainders
    assert [(x["source"], x["amount"]) for x in closure["returned"]] == [
        ("legaat", 6),
        ("provincie", 46_154),
        ("rijk", 73_846),
    ]
    assert closure["total_returned"] == 120_006
    assert all(x["at_close"] and x["reason"] == "periode voorbij" for x in closure["returned"])
    assert closure["fund"]["state"] == "closed" and closure["fund"]["close_reason"] == "periode voorbij"
    assert closure["fund"]["closed_by"].startswith("Anna Bakker")
    after = closure["overview"]
    assert_adds_up(after)
    assert after == await fund_overview(client, world, f)
    assert (after["available"], after["returned_to_sources"], after["net_granted"]) == (0, 140_006, 10_001)
    assert {s["source"]: s["net_granted"] for s in after["by_source"]} == {
        "legaat": 1,
        "provincie": 3_846,
        "rijk": 6_154,
    }
    assert await funding_account(db_dsn, world, "rijk") == (100_000, 20_000 + 73_846)
    await assert_ledgers_balanced(db_dsn)
    (line,) = await audit(client, world, "fund.closed")
    assert line["after"]["total_returned"] == 120_006 and line["after"]["split"] == "pro_rata_net_grants"
    assert line["before"] == {"state": "open", "available": 120_006}

    # replayed, not closed twice
    state = await ledger_state(db_dsn)
    r = await client.post(
        f"/v1/funds/{f}/close",
        headers=world.h("gemeente_finance", key="close-1"),
        json={"reason": "  periode voorbij "},
    )
    assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true" and r.json() == closure
    # closed: no vouchers, no grants, no second close; nothing changes
    refusals = [
        await client.post(
            "/v1/vouchers",
            headers=world.h("gemeente_validator"),
            json={"fund_id": f, "amount": 1, "beneficiary_ref": "X"},
        ),
        await client.post(
            f"/v1/funds/{f}/grants", headers=world.h("gemeente_finance"), json={"source": "rijk", "amount": 1}
        ),
        await client.post(f"/v1/funds/{f}/close", headers=world.h("gemeente_finance"), json={"reason": "nog eens"}),
    ]
    assert [(x.status_code, x.json()["code"]) for x in refusals] == [(409, "fund_closed")] * 3
    r = await client.post(
        "/v1/vouchers/bulk",
        headers=world.h("gemeente_validator"),
        json={"items": [{"fund_id": f, "amount": 1, "beneficiary_ref": "X"}]},
    )
    assert r.status_code == 200 and r.json()["results"][0]["error"] == "fund_closed"
    assert await ledger_state(db_dsn) == state

    # a refund after the close brings money back to the closed fund: it goes back to a source too
    r = await client.post(
        f"/v1/redemptions/{redemption}/refunds",
        headers=world.h("bike_shop"),
        json={"amount": 1_000, "reason": "retour"},
    )
    assert r.status_code == 201, r.text
    assert (await fund_overview(client, world, f))["available"] == 1_000
    r = await client.post(
        "/v1/vouchers",
        headers=world.h("gemeente_validator"),
        json={"fund_id": f, "amount": 1_000, "beneficiary_ref": "X"},
    )
    assert (r.status_code, r.json()["code"]) == (409, "fund_closed")
    r = await client.post(
        f"/v1/funds/{f}/returns",
        headers=world.h("gemeente_finance"),
        json={"source": "rijk", "amount": 1_000, "reason": "restitutie na sluiting"},
    )
    assert r.status_code == 201, r.text
    o = await fund_overview(client, world, f)
    assert_adds_up(o)
    assert (o["available"], o["redeemed"], o["returned_to_sources"]) == (0, 9_001, 141_006)
    await assert_ledgers_balanced(db_dsn)
    conn = await db.connect(db_dsn)
    try:  # `settlement audit verify`: the books, the overviews with their returns, all add up
        report = await verify_books(conn, sponsor_id=world.ids["gemeente"])
    finally:
        await conn.close()
    assert report.ok, report.failures


def test_the_overview_check_names_a_source_given_back_more_than_it_granted() -> None:
    """`settlement audit verify` reads every overview through overview_problems."""
    line = SourceLine(source="rijk", name="Rijk", granted=100, returned=150, net_granted=-50)
    o = FundOverview(
        fund_id=1,
        currency="EUR",
        granted=100,
        returned_to_sources=150,
        net_granted=-50,
        by_source=[line],
        issued=0,
        returned_to_fund=0,
        vouchers_outstanding=0,
        reserved=0,
        redeemed=0,
        in_payout=0,
        paid=0,
        open_payable=0,
        available=-50,
    )
    assert overview_problems(o) == ["source rijk: net granted -50 (granted 100, returned 150)"]
    fine = msgspec.structs.replace(
        o,
        returned_to_sources=40,
        net_granted=60,
        available=60,
        by_source=[msgspec.structs.replace(line, returned=40, net_granted=60)],
    )
    assert overview_problems(fine) == []
    assert overview_problems(msgspec.structs.replace(fine, available=61)) == [
        "net granted 60 != available 61 + issued 0"
    ]


async def test_close_with_the_callers_split(client: Any, world: World, db_dsn: str) -> None:
    f = await new_fund(client, world, "SPLIT", {"rijk": 60_000, "provincie": 40_000})
    before = await ledger_state(db_dsn)
    for split, status, code in (
        (
            [{"source": "rijk", "amount": 60_000}, {"source": "provincie", "amount": 39_999}],
            409,
            "split_does_not_match_rest",
        ),
        (
            [{"source": "rijk", "amount": 60_001}, {"source": "provincie", "amount": 39_999}],
            409,
            "return_exceeds_net_grant",
        ),
        ([{"source": "rijk", "amount": 100_000}], 409, "return_exceeds_net_grant"),
        ([{"source": "legaat", "amount": 0}, {"source": "rijk", "amount": 100_000}], 422, "funding_source_not_granted"),
        ([{"source": "rijk", "amount": 50_000}, {"source": "rijk", "amount": 50_000}], 422, "split_invalid"),
        ([{"source": "rijk", "amount": -1}], 422, "validation_failed"),
    ):
        r = await client.post(
            f"/v1/funds/{f}/close", headers=world.h("gemeente_finance"), json={"reason": "x", "split": split}
        )
        assert r.status_code == status, (split, r.text)
        assert r.json()["code"] == code, split
        if code == "split_does_not_match_rest":
            assert r.json()["rest"] == 100_000
    assert await ledger_state(db_dsn) == before
    r = await client.post(
        f"/v1/funds/{f}/close",
        headers=world.h("gemeente_finance"),
        json={
            "reason": "provincie eerst",
            "split": [{"source": "provincie", "amount": 40_000}, {"source": "rijk", "amount": 60_000}],
        },
    )
    assert r.status_code == 200, r.text
    assert [(x["source"], x["amount"]) for x in r.json()["returned"]] == [("provincie", 40_000), ("rijk", 60_000)]
    assert_adds_up(r.json()["overview"])
    (line,) = await audit(client, world, "fund.closed")
    assert line["after"]["split"] == "explicit"


async def test_a_fund_with_nothing_left_closes_without_a_booking(client: Any, world: World, db_dsn: str) -> None:
    f = await new_fund(client, world, "LEEG", {"rijk": 5_000})
    r = await client.post(
        f"/v1/funds/{f}/returns",
        headers=world.h("gemeente_finance"),
        json={"source": "rijk", "amount": 5_000, "reason": "x"},
    )
    assert r.status_code == 201, r.text
    before = await ledger_state(db_dsn)
    r = await client.post(f"/v1/funds/{f}/close", headers=world.h("gemeente_finance"), json={"reason": "niets meer"})
    assert r.status_code == 200, r.text
    assert (r.json()["returned"], r.json()["total_returned"], r.json()["fund"]["state"]) == ([], 0, "closed")
    assert await ledger_state(db_dsn) == before


async def test_after_the_year_end_sweep_the_demo_fund_closes(client: Any, world: World, db_dsn: str) -> None:
    """The year's vouchers expire (the sweep), then the fund closes: every cent of the
    rest back to the two sources, each within a cent of its pro-rata share."""
    year = date.today().year
    conn = await db.connect(db_dsn)
    try:
        while True:
            async with conn.transaction():
                if not await expire_vouchers(conn, today=date(year + 1, 1, 2)):
                    break
    finally:
        await conn.close()
    o = await overview(client, world)
    assert (o["vouchers_outstanding"], o["reserved"]) == (0, 0)
    rest = o["available"]
    r = await client.post(
        f"/v1/funds/{world.ids['kindpakket']}/close",
        headers=world.h("gemeente_finance"),
        json={"reason": "jaar afgesloten"},
    )
    assert r.status_code == 200, r.text
    parts = {x["source"]: x["amount"] for x in r.json()["returned"]}
    assert sum(parts.values()) == rest
    nets = {s["source"]: s["net_granted"] for s in o["by_source"]}
    total = sum(nets.values())
    for source, amount in parts.items():
        exact = rest * nets[source]
        assert amount * total - total < exact < amount * total + total, source  # within a cent
    after = r.json()["overview"]
    assert_adds_up(after)
    assert after["available"] == 0 and after["net_granted"] == after["redeemed"]
    await assert_ledgers_balanced(db_dsn)
    r = await client.get("/v1/books/fund-report", params=PERIOD, headers=world.h("auditor"))
    (row,) = [x for x in r.json()["funds"] if x["fund_id"] == world.ids["kindpakket"]]
    assert row["closed_at"] is not None and row["returned_to_sources"] == rest


async def test_the_database_refuses_what_the_flows_refuse(client: Any, world: World, db_dsn: str) -> None:
    """No code path can return more than a source granted, grant to a closed fund, or add a
    voucher share to one: the database checks it again."""
    f = await new_fund(client, world, "DB", {"rijk": 1_000})
    r = await client.post(f"/v1/funds/{f}/close", headers=world.h("gemeente_finance"), json={"reason": "x"})
    assert r.status_code == 200, r.text
    conn = await db.connect(db_dsn)
    try:
        k = world.ids["kindpakket"]
        g = world.ids["gemeente"]
        with pytest.raises(asyncpg.CheckViolationError, match="return_exceeds_net_grant"):
            await conn.execute(
                "INSERT INTO budget_returns (id, fund_id, sponsor_id, source, amount, reason, at_close, actor) "
                "VALUES (gen_random_uuid(), $1, $2, 'eigen-middelen', 2750001, 'x', false, 'test')",
                k,
                g,
            )
        with pytest.raises(asyncpg.CheckViolationError, match="fund_closed"):
            await conn.execute(
                "INSERT INTO grants (id, fund_id, sponsor_id, source, amount) "
                "VALUES (gen_random_uuid(), $1, $2, 'rijk', 1)",
                f,
                g,
            )
        share = await conn.fetchrow("SELECT * FROM voucher_shares LIMIT 1")
        with pytest.raises(asyncpg.CheckViolationError, match="fund_closed"):
            await conn.copy_records_to_table(
                "voucher_shares",
                records=[(share["voucher_id"], 9, f, g, share["ledger_id"], share["account_id"], 1, 1, "X")],
                columns=[
                    "voucher_id",
                    "position",
                    "fund_id",
                    "sponsor_id",
                    "ledger_id",
                    "account_id",
                    "bp",
                    "amount",
                    "beneficiary_ref",
                ],
            )
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute("UPDATE budget_returns SET amount = amount + 1")
    finally:
        await conn.close()


async def test_money_received_goes_to_the_source_with_the_most_still_to_come_after_returns(
    client: Any, world: World, db_dsn: str
) -> None:
    """Money received with a fund's top-up reference is booked to the fund's source with
    the most still to come. Budget returned to a source is no longer to come from it:
    after 4,000,000 of the 6,000,000 from the Rijk went back, the gemeente's own means
    (2,750,000) have more to come than the Rijk (2,000,000)."""
    from reconciliation.model import Entry, TxDetail
    from reconciliation.synth import build_camt053
    from tests.api.test_statements_api import DAY, fund_reference, statement, xml

    r = await client.post(
        f"/v1/funds/{world.ids['kindpakket']}/returns",
        headers=world.h("gemeente_finance"),
        json={"source": "rijk-kinderarmoede", "amount": 4_000_000, "reason": "Rijksbijdrage verlaagd"},
    )
    assert r.status_code == 201, r.text
    top_up = Entry(
        index=0,
        amount_cents=100_000,
        credit_debit="CRDT",
        booking_date=DAY,
        value_date=DAY,
        bank_reference="BANKREF-TOP-1",
        details=(TxDetail(counterparty_name="Gemeente", structured_reference=await fund_reference(client, world)),),
    )
    r = await client.post("/v1/statements", content=build_camt053(statement([top_up])), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["top_ups"] == 1
    conn = await db.connect(db_dsn)
    try:
        rows = await conn.fetch("SELECT source, amount FROM top_ups")
        assert [tuple(x) for x in rows] == [("eigen-middelen", 100_000)]
    finally:
        await conn.close()
