"""Books for accountants and councils over HTTP: the exports open and add up, and stay in their books."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from ledger.rollup import LOCAL
from reconciliation.synth import build_camt053
from settlement import db
from settlement.books.xaf import _transaction
from tests.api.test_payouts_api import approve, download, export, new_run
from tests.api.test_statements_api import batch_entry, statement, xml
from tests.api.test_vouchers_api import issue, overview
from tests.conftest import SHARED_BANK_FILES
from tests.world import World

TODAY = datetime.now(UTC).date()
PERIOD = {"from": (TODAY - timedelta(days=30)).isoformat(), "to": (TODAY + timedelta(days=1)).isoformat()}


async def paid_and_booked(client: Any, world: World) -> dict[str, Any]:
    """The demo's payables paid in a run and booked from a statement: a full cycle to trace."""
    run = await export(client, world, (await approve(client, world, (await new_run(client, world))["id"]))["id"])
    (data,) = await download(client, world, run)
    from sepa import read_pain001

    file = read_pain001(data)
    r = await client.post("/v1/statements", content=build_camt053(statement([batch_entry(file)])), headers=xml(world))
    assert r.status_code == 200 and r.json()["payments_booked"] == run["payment_count"], r.text
    return run


async def test_trial_balance_in_every_format_adds_up(client: Any, world: World) -> None:
    await paid_and_booked(client, world)
    h = world.h("auditor")
    r = await client.get(f"/v1/books/trial-balance?as_of={TODAY}", headers=h)
    assert r.status_code == 200, r.text
    tb = r.json()
    assert tb["balanced"] and tb["total_debit"] == tb["total_credit"] > 0
    codes = {x["code"] for x in tb["lines"]}
    assert any(c.startswith("bank:") for c in codes) and any(c.startswith("fund:") for c in codes)

    r = await client.get(f"/v1/books/trial-balance?as_of={TODAY}&format=csv", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    body = [x for x in rows[1:] if x and x[0] != "Total"]
    assert sum(Decimal(x[2] or "0") for x in body) == sum(Decimal(x[3] or "0") for x in body)
    assert sum(Decimal(x[2] or "0") for x in body) * 100 == tb["total_debit"]

    r = await client.get(f"/v1/books/trial-balance?as_of={TODAY}&format=xlsx", headers=h)
    assert r.status_code == 200
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb.worksheets[0]
    values = [row for row in ws.iter_rows(values_only=True)]
    debit = sum(Decimal(str(v[2])) for v in values[1:] if v[0] not in (None, "Total") and v[2] is not None)
    assert debit * 100 == tb["total_debit"]

    r = await client.get(f"/v1/books/trial-balance?as_of={TODAY}&format=pdf", headers=h)
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    # as of a day before anything happened: nothing
    r = await client.get(f"/v1/books/trial-balance?as_of={TODAY - timedelta(days=400)}", headers=h)
    assert r.json()["lines"] == [] and r.json()["balanced"]


async def test_journal_equals_the_ledger(client: Any, world: World, db_dsn: str) -> None:
    r = await client.get("/v1/books/journal", params=PERIOD, headers=world.h("gemeente_finance"))
    assert r.status_code == 200, r.text
    j = r.json()
    conn = await db.connect(db_dsn)
    try:
        lid = await conn.fetchval("SELECT ledger_id FROM sponsors WHERE organisation_id = $1", world.ids["gemeente"])
        n = await conn.fetchval("SELECT count(*) FROM journal_entries WHERE ledger_id = $1", lid)
        posted = await conn.fetchval(
            "SELECT sum(amount) FROM transfers WHERE ledger_id = $1 AND kind IN ('posted', 'post_pending')", lid
        )
    finally:
        await conn.close()
    assert len(j["entries"]) == n and j["total_debit"] == posted
    r = await client.get("/v1/books/journal", params={**PERIOD, "format": "xlsx"}, headers=world.h("auditor"))
    assert r.status_code == 200 and r.content[:2] == b"PK"


async def test_fund_report_equals_the_ledger(client: Any, world: World, db_dsn: str) -> None:
    await paid_and_booked(client, world)
    o = await overview(client, world)
    r = await client.get("/v1/books/fund-report", params=PERIOD, headers=world.h("auditor"))
    assert r.status_code == 200, r.text
    (kind,) = [f for f in r.json()["funds"] if f["fund_id"] == world.ids["kindpakket"]]
    for key in ("granted", "redeemed", "paid", "in_payout", "open_payable", "available", "reserved"):
        assert kind[key] == o[key], key
    assert kind["issued"] == o["issued"] + o["returned_to_fund"]
    assert kind["vouchers"] == 45 and kind["beneficiaries"] == 45  # 40 kindpakket + 5 co-funded bikes
    assert sum(c["redeemed"] for c in kind["by_category"]) == kind["redeemed"]
    conn = await db.connect(db_dsn)
    try:  # per category: distinct suppliers and provisions, counted the plain way
        direct = {
            r["category"]: (r["suppliers"], r["redemptions"], r["amount"])
            for r in await conn.fetch(
                "SELECT s.category, count(DISTINCT l.supplier_id) AS suppliers, count(*) FILTER (WHERE "
                "l.refund_id IS NULL) AS redemptions, sum(l.amount) AS amount FROM payable_lines l "
                "JOIN suppliers s ON s.organisation_id = l.supplier_id WHERE l.fund_id = $1 GROUP BY 1",
                world.ids["kindpakket"],
            )
        }
    finally:
        await conn.close()
    assert len(direct) >= 2
    assert {c["category"]: (c["suppliers"], c["redemptions"], c["redeemed"]) for c in kind["by_category"]} == direct
    assert {s["source"] for s in kind["by_source"]} == {"rijk-kinderarmoede", "eigen-middelen"}
    for fmt, magic in (("xlsx", b"PK"), ("pdf", b"%PDF"), ("csv", b"")):
        r = await client.get("/v1/books/fund-report", params={**PERIOD, "format": fmt}, headers=world.h("auditor"))
        assert r.status_code == 200 and r.content.startswith(magic), fmt


async def test_auditfile_validates(client: Any, world: World) -> None:
    await paid_and_booked(client, world)
    r = await client.get(f"/v1/books/auditfile?year={TODAY.year}", headers=world.h("auditor"))
    assert r.status_code == 200, r.text
    doc = etree.fromstring(r.content)
    shared = SHARED_BANK_FILES / "xsd" / "XmlAuditfileFinancieel3.2.xsd"
    if not shared.exists():
        pytest.skip("shared XSDs absent")
    schema = etree.XMLSchema(etree.parse(str(shared)))
    assert schema.validate(doc), schema.error_log
    ns = {"x": "http://www.auditfiles.nl/XAF/3.2"}
    debit = Decimal(doc.findtext(".//x:transactions/x:totalDebit", namespaces=ns))
    credit = Decimal(doc.findtext(".//x:transactions/x:totalCredit", namespaces=ns))
    assert debit == credit > 0


def _xaf_row(at: datetime) -> dict[str, object]:
    return {
        "id": uuid.UUID(int=1),
        "seq": 1,
        "created_at": at,
        "value_date": at.date(),
        "description": "Voucher V-AAAA-BBBB-CCCC issued",
        "amount": 35_000,
        "dr": "fund:1",
        "cr": "voucher:V-AAAA-BBBB-CCCC",
    }


def test_xaf_transaction_date_is_the_local_day_of_recording() -> None:
    # Recorded at half past midnight on New Year's Day in the Netherlands (23:30 UTC on 31 December):
    # the 2026 auditfile selects it (local day boundaries, ledger.rollup.start_of), so its trDt and
    # periodNumber are 1 January and period 1, the day the journal and trial balance put it on.
    tx = _transaction([_xaf_row(datetime(2026, 1, 1, 0, 30, tzinfo=LOCAL))])
    assert (tx.date, tx.period) == (date(2026, 1, 1), 1)


def test_xaf_month_end_entry_in_its_own_month() -> None:
    # 1 May 01:15 local (CEST) is 30 April 23:15 UTC; given in UTC as the database returns it
    tx = _transaction([_xaf_row(datetime(2026, 5, 1, 1, 15, tzinfo=LOCAL).astimezone(UTC))])
    assert (tx.date, tx.period) == (date(2026, 5, 1), 5)


async def test_supplier_statement_and_trace(client: Any, world: World) -> None:
    run = await paid_and_booked(client, world)
    r = await client.get(
        f"/v1/books/supplier-statement/{world.ids['sports_club']}", params=PERIOD, headers=world.h("sports_club")
    )
    assert r.status_code == 200, r.text
    st = r.json()
    kinds = [x["kind"] for x in st["lines"]]
    assert kinds.count("redemption") == 2 and kinds.count("payment") == 1
    (pay,) = [x for x in st["lines"] if x["kind"] == "payment"]
    assert sorted(pay["covers"]) == ["LID-2026-117", "LID-2026-118"]
    assert st["closing_balance"] == 0  # redeemed 250.00, paid 250.00
    r = await client.get(
        f"/v1/books/supplier-statement/{world.ids['sports_club']}",
        params={**PERIOD, "format": "pdf"},
        headers=world.h("sports_club"),
    )
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    # another supplier's statement: not found
    r = await client.get(
        f"/v1/books/supplier-statement/{world.ids['sports_club']}", params=PERIOD, headers=world.h("bike_shop")
    )
    assert r.status_code == 404

    reds = (await client.get("/v1/redemptions", headers=world.h("sports_club"))).json()["items"]
    r = await client.get(f"/v1/books/trace/{reds[0]['id']}", headers=world.h("auditor"))
    assert r.status_code == 200, r.text
    steps = [s["step"] for s in r.json()["steps"]]
    assert steps[:2] == ["voucher", "redemption"]
    assert "payment" in steps and "payout_file" in steps and "statement_entry" in steps
    by = {s["step"]: s for s in r.json()["steps"]}
    assert by["payout_file"]["id"] == run["files"][0]["msg_id"]
    codes = {t["code"] for s in r.json()["steps"] for e in s["ledger_entries"] for t in e["transfers"]}
    assert {"voucher_issued", "redemption", "payout_exported", "payment_booked"} <= codes
    # Leergeld does not pay the club: the trace is not in its books
    r = await client.get(f"/v1/books/trace/{reds[0]['id']}", headers=world.h("leergeld_finance"))
    assert r.status_code == 404


async def test_sample_is_reproducible(client: Any, world: World) -> None:
    h = world.h("auditor")
    a = await client.get("/v1/books/sample", params={**PERIOD, "seed": "controle-2026", "n": 3}, headers=h)
    b = await client.get("/v1/books/sample", params={**PERIOD, "seed": "controle-2026", "n": 3}, headers=h)
    assert a.status_code == 200, a.text
    ids = [t["redemption_id"] for t in a.json()["traces"]]
    assert ids == [t["redemption_id"] for t in b.json()["traces"]] and len(ids) == 3
    assert a.json()["population"] == 4
    other = await client.get("/v1/books/sample", params={**PERIOD, "seed": "another", "n": 4}, headers=h)
    assert sorted(t["redemption_id"] for t in other.json()["traces"]) == sorted(
        t["redemption_id"]
        for t in (await client.get("/v1/books/sample", params={**PERIOD, "seed": "x", "n": 4}, headers=h)).json()[
            "traces"
        ]
    )


async def test_repeat_beneficiaries_are_found(client: Any, world: World) -> None:
    for _ in range(2):
        await issue(client, world, beneficiary_ref="WK-TWICE-1", amount=10_000)
    r = await client.get("/v1/books/checks/repeat-beneficiaries", params=PERIOD, headers=world.h("auditor"))
    assert r.status_code == 200, r.text
    (hit,) = [x for x in r.json() if x["beneficiary_ref"] == "WK-TWICE-1"]
    assert hit["vouchers"] == 2 and hit["total"] == 20_000


async def test_books_stay_in_their_own_sponsor(client: Any, world: World) -> None:
    g = (await client.get(f"/v1/books/trial-balance?as_of={TODAY}", headers=world.h("gemeente_finance"))).json()
    lg = (await client.get(f"/v1/books/trial-balance?as_of={TODAY}", headers=world.h("leergeld_finance"))).json()
    assert g["ledger_id"] != lg["ledger_id"]
    assert "fund:" + str(world.ids["kindpakket"]) not in {x["code"] for x in lg["lines"]}
    for who in ("bike_shop", "gemeente_validator"):
        r = await client.get(f"/v1/books/trial-balance?as_of={TODAY}", headers=world.h(who))
        assert r.status_code == 403, who
    r = await client.get("/v1/books/audit-trail", headers=world.h("auditor"))
    assert r.status_code == 200
    actions = {x["action"] for x in r.json()}
    assert {"fund.created", "fund.granted"} <= actions, actions
    assert all(x["actor"] for x in r.json())


async def test_auditor_writes_are_refused_everywhere(client: Any, world: World) -> None:
    app = client.app
    h = world.h("auditor")
    refused = 0
    for route in app.routes:
        for method in getattr(route, "methods", set()):
            if method not in ("POST", "PUT", "PATCH", "DELETE") or "{" in route.path:
                continue
            r = await client.request(method, route.path, json={}, headers=h)
            assert r.status_code in (403, 422), (method, route.path, r.status_code)
            refused += 1
    assert refused >= 8


async def test_co_funded_actions_are_in_both_sponsors_audit_trails(client: Any, world: World) -> None:
    # A co-funded voucher moves money in both sponsors' ledgers; each sponsor's accountant reads its own
    # audit trail only, so each must find there every action that touched its books.
    v = await issue(
        client,
        world,
        who="leergeld_validator",
        amount=20_000,
        shares=[{"fund_id": world.ids["kindpakket"], "bp": 7_000}, {"fund_id": world.ids["fiets"], "bp": 3_000}],
    )
    r = await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 5_000, "description": "fiets"},
    )
    assert r.status_code == 201, r.text
    res = r.json()
    r = await client.post(
        f"/v1/reservations/{res['id']}/redeem", headers=world.h("bike_shop"), json={"amount": 5_000, "reference": "B-1"}
    )
    assert r.status_code == 201, r.text
    red = r.json()
    r = await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 1_000, "description": "slot"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"/v1/reservations/{r.json()['id']}/cancel", headers=world.h("bike_shop"))
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/redemptions/{red['id']}/refunds", headers=world.h("bike_shop"), json={"amount": 1_000, "reason": "x"}
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"/v1/vouchers/{v['id']}/withdraw", headers=world.h("gemeente_finance"))
    assert r.status_code == 200, r.text
    wanted = {
        ("reservation.held", "reservation", res["id"]),
        ("voucher.redeemed", "redemption", red["id"]),
        ("reservation.cancelled", "reservation", None),
        ("redemption.refunded", "redemption", red["id"]),
        ("voucher.withdrawn", "voucher", v["id"]),
    }
    for who in ("gemeente_finance", "leergeld_finance"):
        r = await client.get("/v1/books/audit-trail", params={"limit": 500}, headers=world.h(who))
        assert r.status_code == 200, r.text
        seen = {(x["action"], x["subject_type"], x["subject_id"]) for x in r.json()}
        for action, kind, subject in wanted:
            assert any(a == action and k == kind and subject in (None, s) for a, k, s in seen), (who, action)


async def test_supplier_statement_export_carries_its_opening_balance(client: Any, world: World) -> None:
    # The period starts after the demo's redemptions: all of them are in the opening balance. The CSV,
    # XLSX and PDF showed the lines and a closing total, but no opening balance, so the amounts did not
    # add up to the total an accountant is shown.
    h = world.h("bike_shop")
    tomorrow = TODAY + timedelta(days=1)
    params = {"from": tomorrow.isoformat(), "to": (tomorrow + timedelta(days=1)).isoformat()}
    url = f"/v1/books/supplier-statement/{world.ids['bike_shop']}"
    st = (await client.get(url, params=params, headers=h)).json()
    assert st["opening_balance"] > 0 and st["closing_balance"] == st["opening_balance"]
    r = await client.get(url, params={**params, "format": "csv"}, headers=h)
    assert r.status_code == 200, r.text
    header, *body, total = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    amount = header.index("Amount")
    assert Decimal(total[amount]) * 100 == st["closing_balance"]
    assert sum(Decimal(x[amount]) for x in body) == Decimal(total[amount])
    assert body[0][header.index("What")] == "opening_balance"


async def test_repeat_beneficiaries_are_never_silently_cut(
    client: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check answered at most MAX_LIST hits, with nothing to say there were more: an auditor read a
    # complete-looking list. Beyond the bound it now refuses, naming the bound (narrow the period).
    from settlement.books import flows

    for ref in ("WK-TWICE-A", "WK-TWICE-B"):
        for _ in range(2):
            await issue(client, world, beneficiary_ref=ref, amount=1_000)
    r = await client.get("/v1/books/checks/repeat-beneficiaries", params=PERIOD, headers=world.h("auditor"))
    assert r.status_code == 200 and len(r.json()) == 2, r.text
    monkeypatch.setattr(flows, "MAX_LIST", 1)
    r = await client.get("/v1/books/checks/repeat-beneficiaries", params=PERIOD, headers=world.h("auditor"))
    assert r.status_code == 422 and r.json()["code"] == "period_too_large", r.text


async def test_an_expired_reservation_is_in_both_sponsors_audit_trails(client: Any, world: World, db_dsn: str) -> None:
    """The expiry job moves money too (the hold goes back to the voucher): each co-funding
    sponsor finds it in its trail, done by the system, not by a token."""
    from settlement import db
    from settlement.jobs import expire_holds_once

    v = await issue(
        client,
        world,
        who="leergeld_validator",
        amount=20_000,
        shares=[{"fund_id": world.ids["kindpakket"], "bp": 7_000}, {"fund_id": world.ids["fiets"], "bp": 3_000}],
    )
    r = await client.post(
        "/v1/reservations",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 5_000, "description": "fiets"},
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    conn = await db.connect(db_dsn)
    try:  # time passes
        await conn.execute(
            "UPDATE holds SET expires_at = now() - interval '1 second' WHERE transfer_id IN "
            "(SELECT pending_transfer_id FROM reservation_parts WHERE reservation_id = $1)",
            rid,
        )
        assert await expire_holds_once(conn) == 2  # one hold per share
    finally:
        await conn.close()
    for who in ("gemeente_finance", "leergeld_finance"):
        r = await client.get("/v1/books/audit-trail", params={"limit": 500}, headers=world.h(who))
        lines = [x for x in r.json() if x["action"] == "reservation.expired" and x["subject_id"] == rid]
        assert len(lines) == 1, (who, lines)
        assert lines[0]["actor"] == "system:hold-expiry" and lines[0]["token_id"] is None
        assert lines[0]["after"] == {"voucher": v["id"], "amount": 5_000}


async def test_trace_shows_each_refund_with_its_own_ledger_entry(client: Any, world: World) -> None:
    """A refund reverses (part of) a redemption with its own ledger entry: the trace's refund step
    shows that entry, and the redemption step only the redemption's own."""
    v = await issue(
        client,
        world,
        who="leergeld_validator",
        amount=20_000,
        beneficiary_ref="TR-REFUND",
        shares=[{"fund_id": world.ids["kindpakket"], "bp": 7_000}, {"fund_id": world.ids["fiets"], "bp": 3_000}],
    )
    r = await client.post(
        "/v1/redemptions",
        headers=world.h("bike_shop"),
        json={"voucher_code": v["code"], "amount": 5_001, "reference": "TR-1", "description": "fiets"},
    )
    assert r.status_code == 201, r.text
    red = r.json()
    refunds = []
    for amount in (1_001, 2_000):
        r = await client.post(
            f"/v1/redemptions/{red['id']}/refunds", headers=world.h("bike_shop"), json={"amount": amount, "reason": "x"}
        )
        assert r.status_code == 201, r.text
        refunds.append(r.json())
    for who, parts in (("gemeente_finance", (701, 1_400)), ("leergeld_finance", (300, 600))):
        r = await client.get(f"/v1/books/trace/{red['id']}", headers=world.h(who))
        assert r.status_code == 200, r.text
        steps = r.json()["steps"]
        (redemption,) = [s for s in steps if s["step"] == "redemption"]
        assert {t["code"] for e in redemption["ledger_entries"] for t in e["transfers"]} == {"redemption"}, who
        got = [s for s in steps if s["step"] == "refund"]
        assert [s["id"] for s in got] == [f["id"] for f in refunds], who
        for s, part in zip(got, parts, strict=True):
            assert [[(t["code"], t["amount"]) for t in e["transfers"]] for e in s["ledger_entries"]] == [
                [("refund", part)]
            ], (who, s)


async def test_a_redemption_refunded_in_full_is_no_provision(client: Any, world: World) -> None:
    """A purchase the shop took back in full before it was paid (status refunded) gave the child
    nothing: the fund report does not count it among the provisions; one refunded in part does."""

    async def provisions() -> tuple[int, dict[str, int]]:
        r = await client.get("/v1/books/fund-report", params=PERIOD, headers=world.h("auditor"))
        assert r.status_code == 200, r.text
        (kind,) = [f for f in r.json()["funds"] if f["fund_id"] == world.ids["kindpakket"]]
        return kind["provisions"], {c["category"]: c["redemptions"] for c in kind["by_category"]}

    before, by_category = await provisions()
    v = await issue(client, world, amount=20_000, beneficiary_ref="PROV-1")
    reds = []
    for ref in ("PROV-A", "PROV-B"):
        r = await client.post(
            "/v1/redemptions",
            headers=world.h("bike_shop"),
            json={"voucher_code": v["code"], "amount": 3_000, "reference": ref, "description": "fiets"},
        )
        assert r.status_code == 201, r.text
        reds.append(r.json())
    for red, amount in zip(reds, (3_000, 1_000), strict=True):
        r = await client.post(
            f"/v1/redemptions/{red['id']}/refunds", headers=world.h("bike_shop"), json={"amount": amount, "reason": "x"}
        )
        assert r.status_code == 201, r.text
    r = await client.get(f"/v1/redemptions/{reds[0]['id']}", headers=world.h("bike_shop"))
    assert r.json()["status"] == "refunded"
    after, by_category_after = await provisions()
    assert after == before + 1
    assert sum(by_category_after.values()) == sum(by_category.values()) + 1
