"""Statement imports at the edges a review found: each test failed before its fix."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from reconciliation.model import Entry, TxDetail
from reconciliation.synth import build_camt053, build_camt054, build_mt940
from sepa import Rejection, build_pain002
from settlement import db
from settlement.errors import Conflict
from settlement.statements import flows
from tests.api.test_payouts_api import account_balance, new_run
from tests.api.test_statements_api import DAY, GEMEENTE_IBAN, OPENING, fund_reference, paid_run, statement, xml
from tests.world import World, assert_ledgers_balanced, ledger_state


async def bank_ledger(dsn: str, on: Any) -> int:
    conn = await db.connect(dsn)
    try:
        b = await conn.fetchval("SELECT bank_account_id FROM debtor_accounts WHERE iban = $1", GEMEENTE_IBAN)
        v: int = await flows.bank_balance(conn, b, on)
        return v
    finally:
        await conn.close()


def pay_entry(p: Any, i: int, ref: str, *, e2e: bool = True, day: Any = DAY) -> Entry:
    return Entry(
        index=i,
        amount_cents=p.amount_cents,
        credit_debit="DBIT",
        booking_date=day,
        value_date=day,
        bank_reference=ref,
        details=(TxDetail(end_to_end_id=p.end_to_end_id if e2e else None, amount_cents=p.amount_cents),),
    )


async def test_opening_balance_is_taken_when_a_notification_came_first(client: Any, world: World, db_dsn: str) -> None:
    ref = await fund_reference(client, world)
    top = Entry(
        index=0,
        amount_cents=1000_00,
        credit_debit="CRDT",
        booking_date=DAY,
        value_date=DAY,
        bank_reference="TOP-1",
        details=(TxDetail(structured_reference=ref),),
    )
    note = msgspec.structs.replace(statement([top], sid="NTF-1"), kind="camt.054")
    r = await client.post("/v1/statements", content=build_camt054(note), headers=xml(world))
    assert r.status_code == 200, r.text
    r = await client.post("/v1/statements", content=build_camt053(statement([top], sid="STMT-1")), headers=xml(world))
    assert r.status_code == 200, r.text
    (s,) = r.json()["statements"]
    assert (s["entries_duplicate"], s["balance_difference"]) == (1, 0)
    await assert_ledgers_balanced(db_dsn)


async def test_notification_dated_before_the_first_day_statement_is_not_counted_twice(
    client: Any, world: World, db_dsn: str
) -> None:
    """A camt.054 booked on D-1, then the account's first camt.053 (day D), whose opening
    balance already holds that booking: the ledger's bank account must equal the closing balance."""
    ref = await fund_reference(client, world)
    before = DAY - timedelta(days=1)
    top = Entry(
        index=0,
        amount_cents=1000_00,
        credit_debit="CRDT",
        booking_date=before,
        value_date=before,
        bank_reference="TOP-D-1",
        details=(TxDetail(structured_reference=ref),),
    )
    note = msgspec.structs.replace(statement([top], sid="NTF-1", day=before), kind="camt.054")
    r = await client.post("/v1/statements", content=build_camt054(note), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["top_ups"] == 1
    # the bank's first day statement for the account: 5,000.00 at the start of D (the top-up included)
    first = statement([], opening=5000_00, sid="STMT-D", day=DAY)
    r = await client.post("/v1/statements", content=build_camt053(first), headers=xml(world))
    assert r.status_code == 200, r.text
    (s,) = r.json()["statements"]
    assert s["ledger_balance"] == 5000_00, s
    assert s["balance_difference"] == 0, s
    await assert_ledgers_balanced(db_dsn)


async def test_an_unmatched_notification_before_the_first_day_statement_is_booked_once_resolved(
    client: Any, world: World, db_dsn: str
) -> None:
    """The earlier notification's line waits in the queue: the first day statement's opening
    balance holds it, the ledger not yet. It shows as a difference, and once a person books
    it the bank account equals the statement (not the statement plus the line)."""
    before = DAY - timedelta(days=1)
    stranger = Entry(
        index=0,
        amount_cents=12_34,
        credit_debit="CRDT",
        booking_date=before,
        value_date=before,
        bank_reference="GIFT-D-1",
    )
    note = msgspec.structs.replace(statement([stranger], sid="NTF-1", day=before), kind="camt.054")
    r = await client.post("/v1/statements", content=build_camt054(note), headers=xml(world))
    assert r.status_code == 200 and r.json()["statements"][0]["unmatched"] == 1, r.text
    first = statement([], opening=5000_00, sid="STMT-D", day=DAY)
    r = await client.post("/v1/statements", content=build_camt053(first), headers=xml(world))
    assert r.status_code == 200, r.text
    (s,) = r.json()["statements"]
    assert (s["ledger_balance"], s["balance_difference"]) == (5000_00 - 12_34, 12_34), s
    (q,) = (await client.get("/v1/statement-entries?state=unmatched", headers=world.h("gemeente_finance"))).json()
    r = await client.post(
        f"/v1/statement-entries/{q['id']}/resolve",
        json={"action": "match_top_up", "fund_id": world.ids["kindpakket"], "reason": "gift, see mail"},
        headers=world.h("gemeente_approver"),
    )
    assert r.status_code == 200, r.text
    assert await bank_ledger(db_dsn, DAY) == 5000_00
    await assert_ledgers_balanced(db_dsn)


async def test_money_for_a_fund_without_a_grant_waits_in_the_queue(client: Any, world: World, db_dsn: str) -> None:
    r = await client.post(
        "/v1/funds",
        json={
            "code": "NEW",
            "name": "New fund",
            "period_start": "2026-01-01",
            "period_end": "2026-12-31",
            "cap_per_voucher": 10000,
        },
        headers=world.h("gemeente_finance"),
    )
    assert r.status_code == 201, r.text
    top = Entry(
        index=0,
        amount_cents=500_00,
        credit_debit="CRDT",
        booking_date=DAY,
        value_date=DAY,
        bank_reference="TOP-NEW",
        details=(TxDetail(structured_reference=r.json()["top_up_reference"]),),
    )
    r = await client.post("/v1/statements", content=build_camt053(statement([top])), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["statements"][0]["unmatched"] == 1
    (q,) = (await client.get("/v1/statement-entries?state=unmatched", headers=world.h("gemeente_finance"))).json()
    assert "no grant" in q["reason"]


async def test_two_equal_charges_with_the_same_bank_reference_are_two_entries(
    client: Any, world: World, db_dsn: str
) -> None:
    fee = [
        Entry(
            index=i,
            amount_cents=5_00,
            credit_debit="DBIT",
            booking_date=DAY,
            value_date=DAY,
            bank_reference="NOTPROVIDED",
        )
        for i in range(2)
    ]
    st = statement(fee)
    assert len(set(st.fingerprints())) == 2
    r = await client.post("/v1/statements", content=build_camt053(st), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["statements"][0]["entries_new"] == 2
    again = await client.post("/v1/statements", content=build_camt053(st), headers=xml(world))
    assert again.json()["statements"][0]["duplicate"] is True


async def test_payments_are_booked_on_their_own_day(client: Any, world: World, db_dsn: str) -> None:
    _run, file = await paid_run(client, world)
    pays = file.blocks[0].payments
    day0 = statement([], sid="S0", day=DAY - timedelta(days=1))
    r = await client.post("/v1/statements", content=build_camt053(day0), headers=xml(world))
    assert r.status_code == 200 and r.json()["statements"][0]["balance_difference"] == 0
    entries = [pay_entry(p, i, f"B-{i}") for i, p in enumerate(pays)]
    # a notification made the next day, covering day D
    note = msgspec.structs.replace(statement(entries, sid="N1", day=DAY + timedelta(days=1)), kind="camt.054")
    r = await client.post("/v1/statements", content=build_camt054(note), headers=xml(world))
    assert r.status_code == 200 and r.json()["payments_booked"] == len(pays)
    r = await client.post("/v1/statements", content=build_camt053(statement(entries, sid="S1")), headers=xml(world))
    assert r.json()["statements"][0]["balance_difference"] == 0


async def test_an_older_day_statement_after_a_newer_one_is_refused(client: Any, world: World, db_dsn: str) -> None:
    _run, file = await paid_run(client, world)
    p0, p1 = file.blocks[0].payments[:2]
    s1 = statement([pay_entry(p0, 0, "B-0")], sid="S1")
    day2 = DAY + timedelta(days=1)
    s2 = statement([pay_entry(p1, 0, "B-1", day=day2)], sid="S2", opening=s1.closing_balance_cents, day=day2)
    r = await client.post("/v1/statements", content=build_camt053(s2), headers=xml(world))
    assert r.status_code == 200, r.text
    state = await ledger_state(db_dsn)
    r = await client.post("/v1/statements", content=build_camt053(s1), headers=xml(world))
    assert r.status_code == 409 and r.json()["code"] == "statement_out_of_order"
    assert await ledger_state(db_dsn) == state
    assert await bank_ledger(db_dsn, day2) == s2.closing_balance_cents


async def test_a_manual_match_waits_for_an_import_and_never_books_twice(
    client: Any, world: World, db_dsn: str, monkeypatch: Any
) -> None:
    _run, file = await paid_run(client, world)
    p = file.blocks[0].payments[0]
    # an entry the matcher cannot place (no EndToEndId) waits in the queue
    s0 = statement([pay_entry(p, 0, "N-1", e2e=False)], sid="S0")
    r = await client.post("/v1/statements", content=build_camt053(s0), headers=xml(world))
    assert r.status_code == 200 and r.json()["statements"][0]["unmatched"] == 1
    (q,) = (await client.get("/v1/statement-entries?state=unmatched", headers=world.h("gemeente_finance"))).json()
    pays = (await client.get("/v1/payments", headers=world.h("gemeente_finance"))).json()
    pid = next(x["id"] for x in pays if x["end_to_end_id"] == p.end_to_end_id)
    in_transit_before = await account_balance(db_dsn, "in_transit:%", world.ids["gemeente"])

    real = flows._post_bookings
    planned, go = asyncio.Event(), asyncio.Event()

    async def paused(*a: Any, **k: Any) -> Any:
        if not planned.is_set():  # the import, after it planned to book the payment
            planned.set()
            await go.wait()
        return await real(*a, **k)

    monkeypatch.setattr(flows, "_post_bookings", paused)
    data = build_camt053(statement([pay_entry(p, 0, "B-1")], sid="S1", opening=s0.closing_balance_cents))
    a, b = await db.connect(db_dsn), await db.connect(db_dsn)
    try:

        async def importer() -> Any:
            async with a.transaction():
                return await flows.import_file(a, "ops", data, max_bytes=10_000_000)

        async def person() -> Any:
            async with b.transaction():
                return await flows.resolve(
                    b, "ops", q["id"], action="match_payment", reason="seen on the phone", payment_id=pid
                )

        task = asyncio.create_task(importer())
        await asyncio.wait_for(planned.wait(), 30)
        resolver = asyncio.create_task(person())
        await asyncio.sleep(0.5)
        assert not resolver.done()  # it waits for the import of the same account
        go.set()
        res = await asyncio.wait_for(task, 30)
        with pytest.raises(Conflict):
            await asyncio.wait_for(resolver, 30)
    finally:
        await a.close()
        await b.close()
    assert res.payments_booked == 1
    conn = await db.connect(db_dsn)
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM statement_entry_payments WHERE payment_id = $1 AND kind = 'booked'", pid
        )
    finally:
        await conn.close()
    assert n == 1
    after = await account_balance(db_dsn, "in_transit:%", world.ids["gemeente"])
    assert abs(in_transit_before - after) == p.amount_cents
    await assert_ledgers_balanced(db_dsn)


async def test_a_line_covering_several_payments_books_and_returns_them_together(
    client: Any, world: World, db_dsn: str
) -> None:
    """A debit line without references matched by hand to two payments; later one credit returns both."""
    _run, file = await paid_run(client, world)
    p0, p1 = file.blocks[0].payments[:2]
    both = p0.amount_cents + p1.amount_cents
    out = Entry(index=0, amount_cents=both, credit_debit="DBIT", booking_date=DAY, value_date=DAY, bank_reference="X-1")
    r = await client.post("/v1/statements", content=build_camt053(statement([out], sid="S1")), headers=xml(world))
    assert r.status_code == 200 and r.json()["statements"][0]["unmatched"] == 1
    (q,) = (await client.get("/v1/statement-entries?state=unmatched", headers=world.h("gemeente_finance"))).json()
    pays = {
        x["end_to_end_id"]: x["id"]
        for x in (await client.get("/v1/payments", headers=world.h("gemeente_finance"))).json()
    }
    ids = [pays[p0.end_to_end_id], pays[p1.end_to_end_id]]
    path = f"/v1/statement-entries/{q['id']}/resolve"
    state = await ledger_state(db_dsn)
    # one of them alone does not add up; both at once with payment_id is unclear
    bad = await client.post(
        path,
        json={"action": "match_payment", "reason": "x", "payment_ids": ids[:1]},
        headers=world.h("gemeente_finance"),
    )
    assert bad.status_code == 409 and bad.json()["code"] == "amount_differs"
    bad = await client.post(
        path,
        json={"action": "match_payment", "reason": "x", "payment_id": ids[0], "payment_ids": ids},
        headers=world.h("gemeente_finance"),
    )
    assert bad.status_code == 422
    assert await ledger_state(db_dsn) == state
    ok = await client.post(
        path,
        json={"action": "match_payment", "reason": "bank listed both by phone", "payment_ids": ids},
        headers=world.h("gemeente_approver"),
    )
    assert ok.status_code == 200, ok.text
    # the audit trail says which payments the person matched the line to
    trail = (
        await client.get(
            "/v1/books/audit-trail",
            params={"subject": f"statement_entry:{q['id']}"},
            headers=world.h("auditor"),
        )
    ).json()
    (line,) = trail
    assert line["action"] == "statement_entry.match_payment" and sorted(line["after"]["payment_ids"]) == sorted(ids)
    in_transit_after_booking = await account_balance(db_dsn, "in_transit:%", world.ids["gemeente"])

    # the bank returns both in one credit line that names both EndToEndIds
    back = Entry(
        index=0,
        amount_cents=both,
        credit_debit="CRDT",
        booking_date=DAY + timedelta(days=2),
        value_date=DAY + timedelta(days=2),
        bank_reference="RET-2",
        details=tuple(
            TxDetail(
                end_to_end_id=p.end_to_end_id,
                amount_cents=p.amount_cents,
                return_reason="AC04",
                original_end_to_end_id=p.end_to_end_id,
            )
            for p in (p0, p1)
        ),
    )
    s2 = statement(
        [back], sid="S2", opening=statement([out], sid="S1").closing_balance_cents, day=DAY + timedelta(days=2)
    )
    r = await client.post("/v1/statements", content=build_camt053(s2), headers=xml(world))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["payments_returned"] == 2 and body["statements"][0]["unmatched"] == 0
    assert body["statements"][0]["balance_difference"] == 0
    assert await account_balance(db_dsn, "in_transit:%", world.ids["gemeente"]) == in_transit_after_booking
    conn = await db.connect(db_dsn)
    try:
        states = await conn.fetch("SELECT state FROM payments WHERE id = ANY($1::bigint[])", ids)
    finally:
        await conn.close()
    assert [s["state"] for s in states] == ["returned", "returned"]
    await assert_ledgers_balanced(db_dsn)


async def test_a_rejection_of_the_last_open_payment_settles_the_run(client: Any, world: World, db_dsn: str) -> None:
    """Two payments booked on the statement, then the bank's pain.002 rejects the third:
    every payment is booked or rejected, so the run is settled (README: 'a run whose
    payments are all booked, rejected or returned is settled')."""
    run, file = await paid_run(client, world)
    p0, p1, p2 = file.blocks[0].payments
    st = statement([pay_entry(p0, 0, "B-0"), pay_entry(p1, 1, "B-1")])
    r = await client.post("/v1/statements", content=build_camt053(st), headers=xml(world))
    assert r.status_code == 200 and r.json()["payments_booked"] == 2, r.text
    assert r.json()["runs_settled"] == []
    report = build_pain002(
        file,
        msg_id="STS-LAST",
        created_at=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
        rejections=[Rejection(end_to_end_id=p2.end_to_end_id, reason_code="AM04")],
    )
    r = await client.post("/v1/payment-status-reports", content=report, headers=xml(world))
    assert r.status_code == 200, r.text
    assert len(r.json()["rejected"]) == 1 and r.json()["run_state"] == "settled"
    r = await client.get(f"/v1/payout-runs/{run['id']}", headers=world.h("gemeente_finance"))
    assert r.json()["payments_by_state"] == {"booked": 2, "rejected": 1}
    assert r.json()["state"] == "settled"
    await assert_ledgers_balanced(db_dsn)


async def test_mt940_with_a_nul_byte_is_a_problem_not_a_500(client: Any, world: World, db_dsn: str) -> None:
    """PostgreSQL cannot store U+0000 in text or jsonb: the parser refuses the file, nothing is booked."""
    mt940 = (
        b":20:STMT-NUL\n:25:NL91ABNA0417164300\n:28C:1\n:60F:C261124EUR1,00\n"
        b":61:2611241124C1,00NTRFNONREF//X1\n:86:/EREF/ab\x00c/\n:62F:C261124EUR2,00\n-"
    )
    state = await ledger_state(db_dsn)
    r = await client.post(
        "/v1/statements", content=mt940, headers={**world.h("gemeente_finance"), "Content-Type": "text/plain"}
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_statement" and "line 6: a NUL byte" in r.json()["detail"]
    assert await ledger_state(db_dsn) == state
    assert (await client.get("/v1/statements", headers=world.h("gemeente_finance"))).json() == []


async def test_a_day_statement_after_a_missing_one_is_refused(client: Any, world: World, db_dsn: str) -> None:
    """Days 1 and 3 without day 2: day 3 opens where day 2 closed, not where day 1 did. Taken in,
    day 3 would make day 2 "out of order" for good and its payments would never be booked."""
    _run, file = await paid_run(client, world)
    p0, p1, p2 = file.blocks[0].payments[:3]
    day2, day3 = DAY + timedelta(days=1), DAY + timedelta(days=2)
    s1 = statement([pay_entry(p0, 0, "B-0")], sid="S1")
    s2 = statement([pay_entry(p1, 0, "B-1", day=day2)], sid="S2", opening=s1.closing_balance_cents, day=day2)
    s3 = statement([pay_entry(p2, 0, "B-2", day=day3)], sid="S3", opening=s2.closing_balance_cents, day=day3)
    r = await client.post("/v1/statements", content=build_camt053(s1), headers=xml(world))
    assert r.status_code == 200, r.text
    state = await ledger_state(db_dsn)
    r = await client.post("/v1/statements", content=build_camt053(s3), headers=xml(world))
    assert r.status_code == 409 and r.json()["code"] == "statement_gap", r.text
    assert "S1" in r.json()["detail"]
    assert await ledger_state(db_dsn) == state
    # in order, both go in and the books match the bank
    for s in (s2, s3):
        r = await client.post("/v1/statements", content=build_camt053(s), headers=xml(world))
        assert r.status_code == 200, r.text
        assert r.json()["statements"][0]["balance_difference"] == 0
    assert await bank_ledger(db_dsn, day3) == s3.closing_balance_cents
    await assert_ledgers_balanced(db_dsn)


async def test_a_corrected_day_statement_is_refused(client: Any, world: World, db_dsn: str) -> None:
    """The same statement id and day again with other content (a bank's correction) would book
    its new lines on top of the first and keep the lines it dropped: refused, nothing changes.
    The same statement in another file (another camt version) still changes nothing."""
    _run, file = await paid_run(client, world)
    p0, p1 = file.blocks[0].payments[:2]
    s1 = statement([pay_entry(p0, 0, "B-0")], sid="S1")
    r = await client.post("/v1/statements", content=build_camt053(s1), headers=xml(world))
    assert r.status_code == 200, r.text
    state = await ledger_state(db_dsn)
    corrected = statement([pay_entry(p0, 0, "B-0"), pay_entry(p1, 1, "B-1")], sid="S1")
    r = await client.post("/v1/statements", content=build_camt053(corrected), headers=xml(world))
    assert r.status_code == 409 and r.json()["code"] == "statement_differs", r.text
    assert await ledger_state(db_dsn) == state
    r = await client.post("/v1/statements", content=build_camt053(s1, "camt.053.001.08"), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["statements"][0]["entries_new"] == 0
    assert await ledger_state(db_dsn) == state
    assert await bank_ledger(db_dsn, DAY) == s1.closing_balance_cents


async def test_resolving_a_line_updates_the_balance_check_of_later_statements(
    client: Any, world: World, db_dsn: str
) -> None:
    """A gift on day 1 waits in the queue: days 1 and 2 both show it as a difference. Once a
    person books it, the ledger matches the bank on both days, and both statements must say so."""
    gift = Entry(
        index=0, amount_cents=12_34, credit_debit="CRDT", booking_date=DAY, value_date=DAY, bank_reference="G-1"
    )
    s1 = statement([gift], sid="S1")
    day2 = DAY + timedelta(days=1)
    s2 = statement([], sid="S2", opening=s1.closing_balance_cents, day=day2)
    ids = []
    for s in (s1, s2):
        r = await client.post("/v1/statements", content=build_camt053(s), headers=xml(world))
        assert r.status_code == 200, r.text
        assert r.json()["statements"][0]["balance_difference"] == 12_34
        ids.append(r.json()["statements"][0]["id"])
    (q,) = (await client.get("/v1/statement-entries?state=unmatched", headers=world.h("gemeente_finance"))).json()
    r = await client.post(
        f"/v1/statement-entries/{q['id']}/resolve",
        json={"action": "match_top_up", "fund_id": world.ids["kindpakket"], "reason": "gift, see mail"},
        headers=world.h("gemeente_approver"),
    )
    assert r.status_code == 200, r.text
    for sid, s in zip(ids, (s1, s2), strict=True):
        got = (await client.get(f"/v1/statements/{sid}", headers=world.h("gemeente_finance"))).json()
        assert (got["ledger_balance"], got["balance_difference"]) == (s.closing_balance_cents, 0), got
    assert [x["unmatched"] for x in (await client.get("/v1/statements", headers=world.h("auditor"))).json()] == [0, 0]


async def test_a_statement_that_does_not_add_up_is_refused(client: Any, world: World, db_dsn: str) -> None:
    """Opening + booked entries != closing: a truncated or edited file. Booked, its lines would
    be in the ledger and the bank's good copy of the statement refused as a different one."""
    _run, file = await paid_run(client, world)
    p0, p1 = file.blocks[0].payments[:2]
    good = statement([pay_entry(p0, 0, "B-0"), pay_entry(p1, 1, "B-1")], sid="1/1")
    lost_a_line = msgspec.structs.replace(good, entries=good.entries[:1])
    state = await ledger_state(db_dsn)
    for data in (build_camt053(lost_a_line), build_mt940(lost_a_line)):
        r = await client.post("/v1/statements", content=data, headers=xml(world))
        assert r.status_code == 422 and r.json()["code"] == "statement_does_not_add_up", r.text
        assert f"difference {-p1.amount_cents} cents" in r.json()["detail"]
        assert await ledger_state(db_dsn) == state
    r = await client.post("/v1/statements", content=build_mt940(good), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["payments_booked"] == 2 and r.json()["statements"][0]["balance_difference"] == 0


async def test_a_zero_amount_line_with_a_fund_reference_waits_in_the_queue(
    client: Any, world: World, db_dsn: str
) -> None:
    """A 0.00 credit naming a fund's top-up reference: the ledger refuses a transfer of 0, so
    matching it as a top-up failed the whole statement (409 ledger_refused) and nothing got in."""
    ref = await fund_reference(client, world)
    zero = Entry(
        index=0,
        amount_cents=0,
        credit_debit="CRDT",
        booking_date=DAY,
        value_date=DAY,
        bank_reference="ZERO-1",
        details=(TxDetail(structured_reference=ref),),
    )
    r = await client.post("/v1/statements", content=build_camt053(statement([zero], sid="S1")), headers=xml(world))
    assert r.status_code == 200, r.text
    (s,) = r.json()["statements"]
    assert (s["unmatched"], s["balance_difference"], r.json()["top_ups"]) == (1, 0, 0)
    await assert_ledgers_balanced(db_dsn)


async def test_bank_charges_and_interest_are_booked_so_the_books_match_the_bank(
    client: Any, world: World, db_dsn: str
) -> None:
    """Monthly charges out, interest in, and money moved to the sponsor's own savings account:
    no part of the scheme, yet on the bank account. Ignored, the ledger's bank account stays off
    the bank's for good (and `audit verify` fails); booked as external, the two agree."""
    from settlement.books.verify import verify_books

    lines = [
        Entry(index=0, amount_cents=7_50, credit_debit="DBIT", booking_date=DAY, value_date=DAY, bank_reference="K-1"),
        Entry(index=1, amount_cents=1_23, credit_debit="CRDT", booking_date=DAY, value_date=DAY, bank_reference="R-1"),
        Entry(
            index=2, amount_cents=500_00, credit_debit="DBIT", booking_date=DAY, value_date=DAY, bank_reference="O-1"
        ),
        Entry(index=3, amount_cents=0, credit_debit="DBIT", booking_date=DAY, value_date=DAY, bank_reference="Z-1"),
    ]
    st = statement(lines)
    r = await client.post("/v1/statements", content=build_camt053(st), headers=xml(world))
    assert r.status_code == 200, r.text
    sid = r.json()["statements"][0]["id"]
    assert r.json()["statements"][0]["balance_difference"] == -7_50 + 1_23 - 500_00
    queue = (await client.get("/v1/statement-entries?state=unmatched", headers=world.h("gemeente_finance"))).json()
    by_ref = {q["bank_reference"]: q["id"] for q in queue}

    # a category is needed, and a zero line has nothing to book: refused, nothing changed
    state = await ledger_state(db_dsn)
    r = await client.post(
        f"/v1/statement-entries/{by_ref['K-1']}/resolve",
        json={"action": "book_external", "reason": "kosten"},
        headers=world.h("gemeente_finance"),
    )
    assert r.status_code == 422 and r.json()["code"] == "category_required", r.text
    assert await ledger_state(db_dsn) == state
    r = await client.post(
        f"/v1/statement-entries/{by_ref['Z-1']}/resolve",
        json={"action": "book_external", "category": "bank_charges", "reason": "nul"},
        headers=world.h("gemeente_finance"),
    )
    assert r.status_code == 409 and r.json()["code"] == "amount_is_zero", r.text
    assert await ledger_state(db_dsn) == state
    r = await client.post(
        f"/v1/statement-entries/{by_ref['Z-1']}/resolve",
        json={"action": "ignore", "reason": "a 0.00 line moves no money"},
        headers=world.h("gemeente_finance"),
    )
    assert r.status_code == 200, r.text

    for ref, category in (("K-1", "bank_charges"), ("R-1", "interest"), ("O-1", "own_transfer")):
        r = await client.post(
            f"/v1/statement-entries/{by_ref[ref]}/resolve",
            json={"action": "book_external", "category": category, "reason": f"{category}, see bank letter"},
            headers=world.h("gemeente_finance"),
        )
        assert r.status_code == 200, r.text
        assert (r.json()["state"], r.json()["match_kind"]) == ("matched", "external")

    got = (await client.get(f"/v1/statements/{sid}", headers=world.h("gemeente_finance"))).json()
    assert (got["unmatched"], got["balance_difference"]) == (0, 0), got
    assert await bank_ledger(db_dsn, DAY) == st.closing_balance_cents

    tb = (await client.get(f"/v1/books/trial-balance?as_of={DAY}", headers=world.h("auditor"))).json()
    lines_by_code = {ln["code"]: ln for ln in tb["lines"]}
    assert lines_by_code["external:bank_charges"]["debit"] == 7_50
    assert lines_by_code["external:interest"]["credit"] == 1_23
    assert lines_by_code["external:own_transfer"]["debit"] == 500_00

    conn = await db.connect(db_dsn)
    try:
        report = await verify_books(conn, sponsor_id=world.ids["gemeente"])
    finally:
        await conn.close()
    assert report.ok, report.failures
    await assert_ledgers_balanced(db_dsn)


async def test_a_return_short_of_the_banks_charges_owes_the_supplier_the_whole_payment(
    client: Any, world: World, db_dsn: str
) -> None:
    """The bike shop's payment bounces and comes back 2.50 short: the banks kept their charges.
    The matcher leaves it to a person; matched to the payment, the bank gets what came back,
    the charges go to external:bank_charges, and the shop is owed (and later paid) the whole
    payment again, as its reopened lines say."""
    _run, file = await paid_run(client, world)
    pays = file.blocks[0].payments
    booked = [pay_entry(p, i, f"B-{i}") for i, p in enumerate(pays)]
    r = await client.post("/v1/statements", content=build_camt053(statement(booked, sid="S1")), headers=xml(world))
    assert r.status_code == 200 and r.json()["payments_booked"] == len(pays), r.text
    bike = next(p for p in pays if p.creditor.iban == "NL02ABNA0123456789")
    day = DAY + timedelta(days=2)
    back = Entry(
        index=0,
        amount_cents=bike.amount_cents - 2_50,
        credit_debit="CRDT",
        booking_date=day,
        value_date=day,
        bank_reference="RET-SHORT",
        details=(
            TxDetail(
                end_to_end_id=bike.end_to_end_id,
                amount_cents=bike.amount_cents - 2_50,
                return_reason="AC04",
                original_end_to_end_id=bike.end_to_end_id,
            ),
        ),
    )
    closing = OPENING - sum(p.amount_cents for p in pays)
    st = statement([back], opening=closing, sid="S2", day=day)
    r = await client.post("/v1/statements", content=build_camt053(st), headers=xml(world))
    assert r.status_code == 200 and r.json()["payments_returned"] == 0, r.text
    (q,) = (await client.get("/v1/statement-entries?state=unmatched", headers=world.h("gemeente_finance"))).json()
    payment_id = next(
        p["id"]
        for p in (await client.get("/v1/payments", headers=world.h("gemeente_finance"))).json()
        if p["end_to_end_id"] == bike.end_to_end_id
    )
    r = await client.post(
        f"/v1/statement-entries/{q['id']}/resolve",
        json={"action": "match_payment", "payment_id": payment_id, "reason": "return, 2.50 charges kept"},
        headers=world.h("gemeente_approver"),
    )
    assert r.status_code == 200, r.text
    got = (await client.get(f"/v1/statements/{r.json()['statement_id']}", headers=world.h("gemeente_finance"))).json()
    assert got["balance_difference"] == 0, got
    assert await account_balance(db_dsn, "payable:", world.ids["gemeente"]) == bike.amount_cents
    tb = (await client.get(f"/v1/books/trial-balance?as_of={day}", headers=world.h("auditor"))).json()
    assert {ln["code"]: ln for ln in tb["lines"]}["external:bank_charges"]["debit"] == 2_50

    # new details approved: the next run pays the shop the whole payment, once
    r = await client.post(
        f"/v1/suppliers/{world.ids['bike_shop']}/bank-details",
        json={"iban": "NL20INGB0001234567", "holder_name": "Rijwielhandel De Vries"},
        headers=world.h("bike_shop"),
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"/v1/bank-detail-requests/{r.json()['id']}/approve", headers=world.h("gemeente_approver"))
    assert r.status_code == 200, r.text
    again = await new_run(client, world)
    r = await client.get(f"/v1/payments?run_id={again['id']}", headers=world.h("gemeente_finance"))
    assert [(p["supplier_id"], p["amount"]) for p in r.json()] == [(world.ids["bike_shop"], bike.amount_cents)]
    await assert_ledgers_balanced(db_dsn)
