"""Property: for random payables, a run's files carry exactly the ledger's movement.

Each example writes random payable lines (redemptions and refunds, several
funds' worth, for random suppliers, some with pending or blocked bank
details) with their ledger postings, builds a run, approves it with a second
person, exports it at a random file size, and checks:

- the files' CtrlSum, summed, equals the movement payable -> in_transit;
- in every file, NbOfTxs and CtrlSum equal its payments;
- every claimed payable line is in exactly one payment, and a payment's lines
  add up to its amount; unclaimed lines belong to skipped suppliers only;
- the ledger stays balanced.

Examples run in a savepoint that is rolled back, on one connection with its
own event loop (hypothesis drives a synchronous test).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from ledger.engine import apply_batch
from ledger.model import EntrySpec, TransferSpec, new_entry_id
from ledger.money import parse_decimal
from sepa import read_pain001
from settlement import chart, db
from settlement.auth import load_actor
from settlement.orgs import flows as orgs
from settlement.payouts import flows as payouts
from settlement.sponsors import flows as sponsors

SUPPLIERS = 6
IBANS = [
    "NL02ABNA0123456789",
    "NL69INGB0123456789",
    "NL44RABO0123456789",
    "NL91ABNA0417164300",
    "NL20INGB0001234567",
    "NL39RABO0300065264",
]


STATS: dict[str, int] = {}


class Rollback(Exception):
    pass


async def make_world(conn: Any) -> dict[str, Any]:
    sponsor = await orgs.create_organisation(conn, "test", "Property sponsor", ["sponsor"])
    fin = await load_actor(conn, (await orgs.issue_token(conn, "test", sponsor.id, "sponsor_finance", "f")).id)
    appr = await load_actor(conn, (await orgs.issue_token(conn, "test", sponsor.id, "sponsor_approver", "a")).id)
    debtor = await sponsors.add_debtor_account(
        conn, fin, "NL91ABNA0417164300", "Property sponsor", None, "pain.001.001.09", True, True
    )
    fund = await sponsors.create_fund(
        conn,
        fin,
        code="PROP",
        name="p",
        period_start=date.today() - timedelta(days=1),
        period_end=date.today() + timedelta(days=30),
        cap_per_voucher=10**9,
        reservation_expiry_days=30,
        cancellation_window_days=0,
        categories=[],
        validators=[],
    )
    sup_ids = []
    for i in range(SUPPLIERS):
        org = await orgs.create_organisation(conn, "test", f"Supplier {i}", ["supplier"], supplier_category="bike_shop")
        sup_ids.append(org.id)
    assert sponsor.ledger_id is not None
    ids = await chart.ensure(
        conn, sponsor.ledger_id, [("test:source", "source")] + [(chart.payable(s), f"p{s}") for s in sup_ids]
    )
    return {
        "sponsor": sponsor.id,
        "ledger": sponsor.ledger_id,
        "fin": fin,
        "appr": appr,
        "debtor": debtor,
        "fund": fund.id,
        "suppliers": sup_ids,
        "accounts": ids,
    }


LINE = st.tuples(st.integers(0, SUPPLIERS - 1), st.integers(-5_000, 40_000).filter(lambda a: a != 0))
DETAILS = st.sampled_from(["active", "active", "active", "pending", "blocked", "none"])


async def add_payables(conn: Any, w: dict[str, Any], lines: list[tuple[int, int]], details: list[str]) -> None:
    """Bank details per supplier and random payable lines, with their ledger postings."""
    for i, sid in enumerate(w["suppliers"]):
        if details[i] != "none":
            await conn.execute(
                "INSERT INTO supplier_bank_details (supplier_id, iban, holder_name, state, requested_by, decided_by) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                sid,
                IBANS[i],
                f"Supplier {i}",
                details[i],
                w["fin"].token_id,
                None if details[i] == "pending" else w["appr"].token_id,
            )
    entries, rows = [], []
    for k, (i, amount) in enumerate(lines):
        sid = w["suppliers"][i]
        acct = w["accounts"][chart.payable(sid)]
        src = w["accounts"]["test:source"]
        dr, cr = (src, acct) if amount > 0 else (acct, src)
        entries.append(
            EntrySpec(
                id=new_entry_id(),
                ledger_id=w["ledger"],
                description="line",
                value_date=date.today(),
                transfers=(TransferSpec(debit_account_id=dr, credit_account_id=cr, amount=abs(amount)),),
            )
        )
        vid, rid = uuid.uuid4(), uuid.uuid4()
        rows.append((vid, rid, sid, amount, k))
    assert all(r.accepted for r in await apply_batch(conn, entries))
    for vid, rid, sid, amount, k in rows:
        await conn.execute(
            "INSERT INTO vouchers (id, code, sponsor_id, beneficiary_ref, amount, valid_from, valid_until, "
            "issued_by_org, issued_by_token) VALUES ($1, $2, $3, 'x', $4, current_date, current_date + 1, $3, $5)",
            vid,
            f"V{uuid.uuid4().hex[:10]}",
            w["sponsor"],
            abs(amount),
            w["fin"].token_id,
        )
        await conn.execute(
            "INSERT INTO redemptions (id, voucher_id, supplier_id, amount, reference, description) "
            "VALUES ($1, $2, $3, $4, $5, 'x')",
            rid,
            vid,
            sid,
            abs(amount),
            f"BON-{k}",
        )
        await conn.execute(
            "INSERT INTO payable_lines (sponsor_id, supplier_id, fund_id, redemption_id, amount, payable_from) "
            "VALUES ($1, $2, $3, $4, $5, now() - interval '1 hour')",
            w["sponsor"],
            sid,
            w["fund"],
            rid,
            amount,
        )


async def _example(
    conn: Any, w: dict[str, Any], lines: list[tuple[int, int]], details: list[str], max_per_file: int
) -> None:
    await add_payables(conn, w, lines, details)
    in_transit = w["debtor"].in_transit_account_id
    before = await conn.fetchval("SELECT credits_posted - debits_posted FROM accounts WHERE id = $1", in_transit)
    payable_suppliers = {
        w["suppliers"][i] for i in range(SUPPLIERS) if details[i] == "active" and sum(a for j, a in lines if j == i) > 0
    }
    if not payable_suppliers:
        with pytest.raises(payouts.Conflict) as refused:
            await payouts.create_run(conn, w["fin"], w["debtor"].id, instant=True)
        assert refused.value.code == "nothing_to_pay"
        return
    run = await payouts.create_run(conn, w["fin"], w["debtor"].id, instant=True)
    STATS["exported"] = STATS.get("exported", 0) + 1
    await payouts.approve(conn, w["appr"], run.id)
    run = await payouts.export(conn, w["fin"], run.id, max_per_file=max_per_file)
    after = await conn.fetchval("SELECT credits_posted - debits_posted FROM accounts WHERE id = $1", in_transit)

    # the files carry exactly the ledger movement
    assert sum(f.ctrl_sum for f in run.files) == after - before == run.total
    ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
    seen_e2e: set[str] = set()
    for f in run.files:
        _msg, data, _sha = await payouts.download(conn, w["fin"], run.id, f.id)
        doc = etree.fromstring(data)
        amounts = [p.amount_cents for b in read_pain001(data).blocks for p in b.payments]
        assert parse_decimal(doc.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=ns)) == sum(amounts)
        assert int(doc.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=ns)) == len(amounts) <= max_per_file
        assert sum(amounts) == f.ctrl_sum
        e2e = {p.end_to_end_id for b in read_pain001(data).blocks for p in b.payments}
        assert not e2e & seen_e2e
        seen_e2e |= e2e
    # every claimed line in exactly one payment; a payment's lines add up
    pays = await conn.fetch("SELECT id, supplier_id, amount FROM payments WHERE run_id = $1", run.id)
    assert len(pays) == len(seen_e2e) == run.payment_count
    for p in pays:
        covered = await conn.fetchval(
            "SELECT sum(l.amount) FROM payment_lines pl JOIN payable_lines l ON l.id = pl.line_id "
            "WHERE pl.payment_id = $1",
            p["id"],
        )
        assert covered == p["amount"] > 0
    dup = await conn.fetchval(
        "SELECT count(*) FROM (SELECT line_id FROM payment_lines pl JOIN payments p ON p.id = pl.payment_id "
        "WHERE p.run_id = $1 GROUP BY line_id HAVING count(*) > 1) x",
        run.id,
    )
    assert dup == 0
    paid_suppliers = {p["supplier_id"] for p in pays}
    for i, sid in enumerate(w["suppliers"]):
        net = sum(a for j, a in lines if j == i)
        assert (sid in paid_suppliers) == (details[i] == "active" and net > 0)
        unclaimed = await conn.fetchval(
            "SELECT count(*) FROM payable_lines WHERE supplier_id = $1 AND payment_id IS NULL", sid
        )
        assert (unclaimed == 0) == (sid in paid_suppliers or not any(j == i for j, _ in lines))
    unbalanced = await conn.fetchval(
        "SELECT sum(debits_posted) - sum(credits_posted) FROM accounts WHERE ledger_id = $1", w["ledger"]
    )
    assert unbalanced == 0


def test_ctrl_sum_equals_ledger_movement_and_each_payable_is_paid_once(db_dsn: str) -> None:
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(db.connect(db_dsn))
    try:
        w = loop.run_until_complete(make_world(conn))

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            lines=st.lists(LINE, min_size=1, max_size=40),
            details=st.lists(DETAILS, min_size=SUPPLIERS, max_size=SUPPLIERS),
            max_per_file=st.integers(1, 4),
        )
        def check(lines: list[tuple[int, int]], details: list[str], max_per_file: int) -> None:
            async def one() -> None:
                try:
                    async with conn.transaction():
                        await _example(conn, w, lines, details, max_per_file)
                        raise Rollback
                except Rollback:
                    pass

            loop.run_until_complete(one())

        check()
        assert STATS.get("exported", 0) >= 10, STATS  # the property was exercised, not skipped
    finally:
        loop.run_until_complete(conn.close())
        loop.close()
