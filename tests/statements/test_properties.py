"""Property: a statement built from random payouts reconciles fully, and importing it twice changes nothing.

Each example makes random payables, pays them in a run (random file size,
instant or not), and writes the statement a bank would send: per payment
block either one batch entry (with or without the transaction details) or
one entry per payment, in random order, as camt.053 .02 or .08 or MT940.
After the import every payment is booked, ``in_transit`` is back to zero,
the run is settled, and the ledger's bank balance equals the closing
balance. A second import of the same bytes changes no ledger row.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciliation.model import BatchInfo, Entry, Statement, TxDetail
from reconciliation.synth import build_camt053, build_mt940
from sepa import read_pain001
from settlement import db
from settlement.payouts import flows as payouts
from settlement.statements import flows as statements
from tests.payouts.test_properties import DETAILS, LINE, SUPPLIERS, Rollback, add_payables, make_world

DAY = date(2026, 11, 24)


def bank_statement(files: list[Any], iban: str, opening: int, rng: random.Random, fmt: str) -> bytes:
    entries: list[Entry] = []
    for f in files:
        for b in f.blocks:
            style = rng.choice(["batch", "batch_no_details", "single"]) if fmt != "mt940" else "single"
            if style == "single":
                entries += [
                    Entry(
                        index=0,
                        amount_cents=p.amount_cents,
                        credit_debit="DBIT",
                        booking_date=DAY,
                        value_date=DAY,
                        bank_reference=f"S-{p.end_to_end_id}",
                        details=(TxDetail(end_to_end_id=p.end_to_end_id, amount_cents=p.amount_cents),),
                    )
                    for p in b.payments
                ]
            else:
                total = sum(p.amount_cents for p in b.payments)
                entries.append(
                    Entry(
                        index=0,
                        amount_cents=total,
                        credit_debit="DBIT",
                        booking_date=DAY,
                        value_date=DAY,
                        bank_reference=f"B-{b.pmt_inf_id}",
                        batch=BatchInfo(
                            msg_id=f.msg_id, pmt_inf_id=b.pmt_inf_id, count=len(b.payments), total_cents=total
                        ),
                        details=tuple(
                            TxDetail(end_to_end_id=p.end_to_end_id, amount_cents=p.amount_cents) for p in b.payments
                        )
                        if style == "batch"
                        else (),
                    )
                )
    rng.shuffle(entries)
    entries = [Entry(**{**_fields(e), "index": i}) for i, e in enumerate(entries)]
    s = Statement(
        kind="mt940" if fmt == "mt940" else "camt.053",
        message_id="PROP-1",
        statement_id="1/1" if fmt == "mt940" else "PROP-1",
        account_iban=iban,
        currency="EUR",
        created_at=datetime(2026, 11, 24, 20, tzinfo=UTC),
        opening_balance_cents=opening,
        closing_balance_cents=opening + sum(e.signed_cents for e in entries),
        statement_date=DAY,
        entries=tuple(entries),
    )
    return build_mt940(s) if fmt == "mt940" else build_camt053(s, fmt)  # type: ignore[arg-type]


def _fields(e: Entry) -> dict[str, Any]:
    return {f: getattr(e, f) for f in e.__struct_fields__}


STATS: dict[str, int] = {}


async def _example(conn: Any, w: dict[str, Any], lines: Any, details: Any, max_per_file: int, seed: int) -> None:
    rng = random.Random(seed)
    # Supplier 0 always has active details and more owed than any mix of
    # refunds can take back, so every example makes a run (none is vacuous).
    await add_payables(conn, w, [*lines, (0, 200_000)], ["active", *details[1:]])
    run = await payouts.create_run(conn, w["fin"], w["debtor"].id, instant=rng.random() < 0.5)
    await payouts.approve(conn, w["appr"], run.id)
    run = await payouts.export(conn, w["fin"], run.id, max_per_file=max_per_file)
    files = [read_pain001((await payouts.download(conn, w["fin"], run.id, f.id))[1]) for f in run.files]
    fmt = rng.choice(["camt.053.001.02", "camt.053.001.08", "mt940"])
    opening = rng.randrange(0, 10**9)
    data = bank_statement(files, w["debtor"].iban, opening, rng, fmt)
    async with conn.transaction():  # a savepoint: nothing before it is undone by a failure here
        result = await statements.import_file(conn, "test", data, max_bytes=10**8)
    STATS["reconciled"] = STATS.get("reconciled", 0) + 1
    (summary,) = result.statements
    assert summary.unmatched == 0, await conn.fetch(
        "SELECT reason FROM statement_entries WHERE statement_id = $1 AND state = 'unmatched'", summary.id
    )
    assert result.payments_booked == run.payment_count
    assert summary.balance_difference == 0
    assert result.runs_settled == [run.code]
    in_transit = await conn.fetchval(
        "SELECT credits_posted - debits_posted FROM accounts WHERE id = $1", w["debtor"].in_transit_account_id
    )
    assert in_transit == 0
    states = await conn.fetch("SELECT DISTINCT state FROM payments WHERE run_id = $1", run.id)
    assert [r["state"] for r in states] == ["booked"]

    before = await conn.fetch("SELECT id, debits_posted, credits_posted FROM accounts ORDER BY id")
    count = await conn.fetchval("SELECT count(*) FROM transfers")
    again = await statements.import_file(conn, "test", data, max_bytes=10**8)
    assert again.statements[0].duplicate
    assert await conn.fetch("SELECT id, debits_posted, credits_posted FROM accounts ORDER BY id") == before
    assert await conn.fetchval("SELECT count(*) FROM transfers") == count


def test_random_payouts_reconcile_fully_and_twice_changes_nothing(db_dsn: str) -> None:
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(db.connect(db_dsn))
    try:
        w = loop.run_until_complete(make_world(conn))

        @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            lines=st.lists(LINE, min_size=1, max_size=30),
            details=st.lists(DETAILS, min_size=SUPPLIERS, max_size=SUPPLIERS),
            max_per_file=st.integers(1, 4),
            seed=st.integers(0, 2**32),
        )
        def check(lines: Any, details: Any, max_per_file: int, seed: int) -> None:
            async def one() -> None:
                try:
                    async with conn.transaction():
                        await _example(conn, w, lines, details, max_per_file, seed)
                        raise Rollback
                except Rollback:
                    pass

            loop.run_until_complete(one())

        check()
        assert STATS.get("reconciled", 0) >= 30, STATS
    finally:
        loop.run_until_complete(conn.close())
        loop.close()
