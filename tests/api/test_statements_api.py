"""Reconciliation over HTTP: pay a run, send the statement a bank would, see the books match."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest

from reconciliation.model import BatchInfo, Entry, Statement, TxDetail
from reconciliation.synth import build_camt053, build_camt054, build_mt940
from sepa import CreditTransferFile, read_pain001
from settlement import db
from tests.api.test_payouts_api import account_balance, approve, download, export, new_run
from tests.api.test_vouchers_api import assert_adds_up, overview
from tests.world import World, assert_ledgers_balanced, ledger_state

GEMEENTE_IBAN = "NL91ABNA0417164300"
OPENING = 2_500_000_00
DAY = date(2026, 11, 24)


def xml(world: World, who: str = "gemeente_finance") -> dict[str, str]:
    return {**world.h(who), "Content-Type": "application/xml"}


async def paid_run(client: Any, world: World) -> tuple[dict[str, Any], CreditTransferFile]:
    run = await export(client, world, (await approve(client, world, (await new_run(client, world))["id"]))["id"])
    (data,) = await download(client, world, run)
    return run, read_pain001(data)


def batch_entry(file: CreditTransferFile, index: int = 0, *, details: bool = True) -> Entry:
    block = file.blocks[0]
    total = sum(p.amount_cents for p in block.payments)
    return Entry(
        index=index,
        amount_cents=total,
        credit_debit="DBIT",
        booking_date=DAY,
        value_date=DAY,
        bank_reference=f"BANKREF-{block.pmt_inf_id}",
        batch=BatchInfo(msg_id=file.msg_id, pmt_inf_id=block.pmt_inf_id, count=len(block.payments), total_cents=total),
        details=tuple(
            TxDetail(
                end_to_end_id=p.end_to_end_id,
                amount_cents=p.amount_cents,
                counterparty_name=p.creditor.name,
                counterparty_iban=p.creditor.iban,
                remittance=p.remittance,
            )
            for p in block.payments
        )
        if details
        else (),
    )


def statement(entries: list[Entry], *, opening: int = OPENING, sid: str = "2026-328", day: date = DAY) -> Statement:
    return Statement(
        kind="camt.053",
        message_id=f"STMT-{sid}",
        statement_id=sid,
        account_iban=GEMEENTE_IBAN,
        currency="EUR",
        created_at=datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=20),
        opening_balance_cents=opening,
        closing_balance_cents=opening + sum(e.signed_cents for e in entries),
        statement_date=day,
        entries=tuple(entries),
    )


async def fund_reference(client: Any, world: World) -> str:
    r = await client.get(f"/v1/funds/{world.ids['kindpakket']}", headers=world.h("gemeente_finance"))
    ref: str = r.json()["top_up_reference"]
    return ref


async def test_round_trip_books_every_payment_and_matches_the_bank(client: Any, world: World, db_dsn: str) -> None:
    run, file = await paid_run(client, world)
    ref = await fund_reference(client, world)
    top_up = Entry(
        index=1,
        amount_cents=6_000_000_00,
        credit_debit="CRDT",
        booking_date=DAY,
        value_date=DAY,
        bank_reference="BANKREF-RIJK-1",
        details=(TxDetail(counterparty_name="Ministerie van SZW", structured_reference=ref),),
    )
    stranger = Entry(
        index=2,
        amount_cents=12_34,
        credit_debit="CRDT",
        booking_date=DAY,
        value_date=DAY,
        bank_reference="BANKREF-UNKNOWN-1",
        details=(TxDetail(counterparty_name="Onbekend", remittance="gift"),),
    )
    st = statement([batch_entry(file), top_up, stranger])
    data = build_camt053(st)
    r = await client.post("/v1/statements", content=data, headers=xml(world))
    assert r.status_code == 200, r.text
    out = r.json()
    (summary,) = out["statements"]
    assert out["payments_booked"] == run["payment_count"] == 3
    assert out["top_ups"] == 1
    assert out["runs_settled"] == [run["code"]]
    assert summary["entries"] == 3 and summary["matched"] == 2 and summary["unmatched"] == 1
    # the unknown credit is not booked: the bank is 12.34 ahead of the books, and says so
    assert summary["balance_difference"] == 12_34
    assert summary["ledger_balance"] == st.closing_balance_cents - 12_34

    assert await account_balance(db_dsn, "in_transit:", world.ids["gemeente"]) == 0
    r = await client.get(f"/v1/payout-runs/{run['id']}", headers=world.h("gemeente_finance"))
    assert r.json()["state"] == "settled" and r.json()["payments_by_state"] == {"booked": 3}
    o = await overview(client, world)
    assert_adds_up(o)
    assert o["paid"] == run["total"] and o["in_payout"] == 0
    pay = (await client.get("/v1/payments", headers=world.h("sports_club"))).json()
    assert [p["state"] for p in pay] == ["booked"]
    reds = (await client.get("/v1/redemptions", headers=world.h("sports_club"))).json()["items"]
    assert {x["status"] for x in reds} == {"paid"}

    # the exceptions queue holds the stranger; a person matches it to the fund, saying why
    queue = (await client.get("/v1/statement-entries?state=unmatched", headers=world.h("gemeente_finance"))).json()
    (exc,) = queue
    assert exc["amount"] == 12_34 and exc["reason"]
    r = await client.post(
        f"/v1/statement-entries/{exc['id']}/resolve",
        json={"action": "match_top_up", "fund_id": world.ids["kindpakket"], "reason": "gift for the fund, see mail"},
        headers=world.h("gemeente_approver"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "matched" and r.json()["manual"] is True and r.json()["resolved_by"]
    s2 = (await client.get(f"/v1/statements/{summary['id']}", headers=world.h("auditor"))).json()
    assert s2["balance_difference"] == 0 and s2["unmatched"] == 0
    await assert_ledgers_balanced(db_dsn)

    # the same file again changes nothing
    state = await ledger_state(db_dsn)
    r = await client.post("/v1/statements", content=data, headers=xml(world))
    assert r.status_code == 200 and r.json()["statements"][0]["duplicate"] is True
    assert await ledger_state(db_dsn) == state
    # an overlapping report (the day's camt.054 notification of the same bookings) books nothing twice
    note = msgspec.structs.replace(statement([batch_entry(file), top_up], sid="NTF-328-1"), kind="camt.054")
    r = await client.post("/v1/statements", content=build_camt054(note), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["statements"][0]["entries_new"] == 0
    assert await ledger_state(db_dsn) == state
    # the audit trail knows who matched what, and why
    conn = await db.connect(db_dsn)
    try:
        why = await conn.fetchval(
            "SELECT after->>'reason' FROM audit_log WHERE action = 'statement_entry.match_top_up'"
        )
    finally:
        await conn.close()
    assert why == "gift for the fund, see mail"


async def test_single_bookings_and_a_return(client: Any, world: World, db_dsn: str) -> None:
    run, file = await paid_run(client, world)
    pays = file.blocks[0].payments
    singles = [
        Entry(
            index=i,
            amount_cents=p.amount_cents,
            credit_debit="DBIT",
            booking_date=DAY,
            value_date=DAY,
            bank_reference=f"B-{i}",
            details=(
                TxDetail(end_to_end_id=p.end_to_end_id, amount_cents=p.amount_cents, counterparty_iban=p.creditor.iban),
            ),
        )
        for i, p in enumerate(pays)
    ]
    # this bank still sends MT940, with the EndToEndId in /EREF/
    r = await client.post("/v1/statements", content=build_mt940(statement(singles, sid="328/1")), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["statements"][0]["kind"] == "mt940"
    assert r.json()["payments_booked"] == 3 and r.json()["statements"][0]["balance_difference"] == 0

    bike = next(p for p in pays if p.creditor.iban == "NL02ABNA0123456789")
    back = Entry(
        index=0,
        amount_cents=bike.amount_cents,
        credit_debit="CRDT",
        booking_date=DAY + timedelta(days=3),
        value_date=DAY + timedelta(days=3),
        bank_reference="RET-1",
        details=(
            TxDetail(
                end_to_end_id=bike.end_to_end_id,
                amount_cents=bike.amount_cents,
                return_reason="AC04",
                original_end_to_end_id=bike.end_to_end_id,
            ),
        ),
    )
    closing = OPENING - sum(p.amount_cents for p in pays)
    st = statement([back], opening=closing, sid="2026-331", day=DAY + timedelta(days=3))
    r = await client.post("/v1/statements", content=build_camt053(st, "camt.053.001.08"), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["payments_returned"] == 1
    assert r.json()["statements"][0]["balance_difference"] == 0
    # the money is owed to the shop again, its details blocked until new ones are approved
    assert await account_balance(db_dsn, "payable:", world.ids["gemeente"]) == bike.amount_cents
    r = await client.get(f"/v1/suppliers/{world.ids['bike_shop']}", headers=world.h("bike_shop"))
    assert r.json()["bank_details"]["state"] == "blocked"
    trail = (await client.get("/v1/books/audit-trail", params={"limit": 500}, headers=world.h("auditor"))).json()
    assert ("bank_details.blocked", str(world.ids["bike_shop"])) in {(x["action"], x["subject_id"]) for x in trail}
    shop = (await client.get("/v1/payments", headers=world.h("bike_shop"))).json()
    assert [(p["state"], p["reason_code"]) for p in shop] == [("returned", "AC04")]
    o = await overview(client, world)
    assert_adds_up(o)
    await assert_ledgers_balanced(db_dsn)
    r = await client.get(f"/v1/payout-runs/{run['id']}", headers=world.h("gemeente_finance"))
    assert r.json()["state"] == "settled"


async def test_a_wrong_amount_waits_in_the_queue_with_suggestions(client: Any, world: World, db_dsn: str) -> None:
    _run, file = await paid_run(client, world)
    p = file.blocks[0].payments[0]
    wrong = Entry(
        index=0,
        amount_cents=p.amount_cents - 1,
        credit_debit="DBIT",
        booking_date=DAY,
        value_date=DAY,
        bank_reference="W-1",
        details=(TxDetail(end_to_end_id=p.end_to_end_id, amount_cents=p.amount_cents - 1),),
    )
    r = await client.post("/v1/statements", content=build_camt053(statement([wrong])), headers=xml(world))
    assert r.status_code == 200, r.text
    assert r.json()["payments_booked"] == 0
    (e,) = (await client.get("/v1/statement-entries?state=unmatched", headers=world.h("gemeente_finance"))).json()
    assert "amount" in e["reason"]
    # matching it by hand to a payment of another amount is refused; ignoring needs a reason
    pays = (await client.get("/v1/payments", headers=world.h("gemeente_finance"))).json()
    target = next(x for x in pays if x["end_to_end_id"] == p.end_to_end_id)
    r = await client.post(
        f"/v1/statement-entries/{e['id']}/resolve",
        json={"action": "match_payment", "payment_id": target["id"], "reason": "close enough"},
        headers=world.h("gemeente_finance"),
    )
    assert r.status_code == 409 and r.json()["code"] == "amount_differs"
    r = await client.post(
        f"/v1/statement-entries/{e['id']}/resolve", json={"action": "ignore"}, headers=world.h("gemeente_finance")
    )
    assert r.status_code == 422
    r = await client.post(
        f"/v1/statement-entries/{e['id']}/resolve",
        json={"action": "ignore", "reason": "bank error, corrected next day"},
        headers=world.h("gemeente_finance"),
    )
    assert r.status_code == 200 and r.json()["state"] == "ignored"
    # the auditor reads the queue but may not resolve
    r = await client.get("/v1/statement-entries", headers=world.h("auditor"))
    assert r.status_code == 200 and len(r.json()) == 1


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><x>&lol3;</x></Document>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><x>&x;</x></Document>"""


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("bomb", BOMB, 400),
        ("external entity", XXE, 400),
        ("wrong namespace", b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>', 400),
        ("garbage", b"\x00\x01 this is not a statement", 400),
    ],
)
async def test_hostile_files_are_refused(
    client: Any, world: World, db_dsn: str, name: str, body: bytes, status: int
) -> None:
    state = await ledger_state(db_dsn)
    r = await client.post("/v1/statements", content=body, headers=xml(world))
    assert r.status_code == status, (name, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await ledger_state(db_dsn) == state


async def test_truncated_file_is_refused(client: Any, world: World, db_dsn: str) -> None:
    _run, file = await paid_run(client, world)
    data = build_camt053(statement([batch_entry(file)]))
    state = await ledger_state(db_dsn)
    r = await client.post("/v1/statements", content=data[: len(data) // 2], headers=xml(world))
    assert r.status_code == 400, r.text
    assert await ledger_state(db_dsn) == state


async def test_someone_elses_account_is_refused(client: Any, world: World, db_dsn: str) -> None:
    _run, file = await paid_run(client, world)
    data = build_camt053(statement([batch_entry(file)]))
    state = await ledger_state(db_dsn)
    r = await client.post("/v1/statements", content=data, headers=xml(world, "leergeld_finance"))
    assert r.status_code == 404 and r.json()["code"] == "statement_account_unknown"
    r = await client.post("/v1/statements", content=data, headers=xml(world, "auditor"))
    assert r.status_code == 403
    assert await ledger_state(db_dsn) == state


async def test_oversized_upload_is_refused_before_it_is_read(world: World, db_dsn: str, test_settings: Any) -> None:
    import msgspec
    from litestar.testing import AsyncTestClient

    from settlement.app import create_app

    app = create_app(msgspec.structs.replace(test_settings, max_upload_bytes=64 * 1024), dsn=db_dsn)
    state = await ledger_state(db_dsn)
    async with AsyncTestClient(app=app) as c:
        r = await c.post("/v1/statements", content=b"<" + b"x" * (200 * 1024), headers=xml(world))
    assert r.status_code == 413, r.text
    assert await ledger_state(db_dsn) == state


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_1_gb_upload_over_real_http_is_refused_without_being_read(
    world: World, live_server: Any, db_dsn: str, declared: bool
) -> None:
    """A 1 GiB body, streamed by the client, answers 413 and is never held in memory by the server.

    The live server runs in this process, so its memory is this process's: the
    peak resident size must not grow by anything near the body's size.
    """
    import httpx
    import psutil

    gib, chunk = 1 << 30, b"<" + b"x" * ((1 << 20) - 1)
    sent = 0
    me = psutil.Process()
    rss_before = peak = me.memory_info().rss

    async def body() -> Any:
        nonlocal sent, peak
        while sent < gib:
            sent += len(chunk)
            if sent % (32 << 20) == 0:  # sampled while the server receives
                peak = max(peak, me.memory_info().rss)
            yield chunk

    headers = xml(world) | ({"content-length": str(gib)} if declared else {})
    state = await ledger_state(db_dsn)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        try:
            r = await http.post("/v1/statements", content=body(), headers=headers)
        except (httpx.RemoteProtocolError, httpx.WriteError):
            r = None  # the server answered and closed while we were still sending: also a refusal
    if r is not None:
        assert r.status_code == 413, r.text
        assert r.json()["code"] == "payload_too_large"
    grown = max(peak, me.memory_info().rss) - rss_before
    assert grown < 256 << 20, f"memory grew by {grown >> 20} MiB while refusing a 1 GiB upload"
    assert await ledger_state(db_dsn) == state
