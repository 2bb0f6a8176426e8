"""``settlement bench reconcile``: a camt.053 with 100,000 entries against 100,000 open payments.

In a scratch database: a sponsor with N payments sent and not yet booked
(``in_transit`` holding their sum), written in bulk and not timed. Then, timed,
``settlement.statements.flows.import_file`` on the camt.053 bytes: parse,
store every entry, match (EndToEndId; one entry in 50 is a batch booking by
PmtInfId with its transactions), book (one ledger entry for the day's
bookings), settle the runs and check the balance, in one transaction.

Printed with it, on the same bytes: ``parse_s`` (our parser alone) and
``lxml_iterparse_s`` (a bare lxml iterparse that only clears elements), the
yardstick for the parser.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from time import perf_counter
from typing import Any

from ledger.engine import apply_batch
from ledger.model import EntrySpec, TransferSpec, new_entry_id
from reconciliation.bench import bare_iterparse, payout_statement
from reconciliation.camt import parse_camt
from reconciliation.synth import build_camt053
from settlement import chart, db
from settlement.auth import load_actor
from settlement.orgs import flows as orgs
from settlement.scratch import scratch_database
from settlement.sponsors import flows as sponsors
from settlement.statements import flows as statements

SUPPLIERS_PER_RUN = 1_000


async def _setup(conn: Any, entries: int) -> tuple[bytes, int]:
    st, expected, blocks = payout_statement(entries)
    data = build_camt053(st, validate=False)
    sponsor = await orgs.create_organisation(conn, "system:bench", "Bench sponsor", ["sponsor"])
    fin = await load_actor(conn, (await orgs.issue_token(conn, "system:bench", sponsor.id, "sponsor_finance", "f")).id)
    debtor = await sponsors.add_debtor_account(
        conn, fin, st.account_iban, "Bench sponsor", None, "pain.001.001.09", False, True
    )
    assert sponsor.ledger_id is not None
    sup = [
        r["id"]
        for r in await conn.fetch(
            "INSERT INTO organisations (name, kinds) SELECT 'Bench supplier ' || g, '{supplier}' "
            "FROM generate_series(1, $1) g RETURNING id",
            SUPPLIERS_PER_RUN,
        )
    ]
    await conn.execute(
        "INSERT INTO suppliers (organisation_id, category) SELECT unnest($1::bigint[]), 'bike_shop'", sup
    )
    details = [
        r["id"]
        for r in await conn.fetch(
            "INSERT INTO supplier_bank_details (supplier_id, iban, holder_name, state, requested_by) "
            "SELECT s, 'NL91ABNA0417164300', 'Bench', 'active', $2 FROM unnest($1::bigint[]) s RETURNING id",
            sup,
            fin.token_id,
        )
    ]
    pays = list(expected.values())
    runs = (len(pays) + SUPPLIERS_PER_RUN - 1) // SUPPLIERS_PER_RUN
    run_ids = [
        r["id"]
        for r in await conn.fetch(
            "INSERT INTO payout_runs (code, sponsor_id, debtor_account_id, state, created_by_label, payment_count, "
            "total, execution_date) SELECT 'P20261123' || lpad(g::text, 4, '0'), $1, $2, 'exported', 'bench', 0, 0, "
            "$3 FROM generate_series(1, $4) g RETURNING id",
            sponsor.id,
            debtor.id,
            date(2026, 11, 23),
            runs,
        )
    ]
    await conn.execute(
        "INSERT INTO payments (run_id, sponsor_id, supplier_id, seq, end_to_end_id, amount, instant, "
        "bank_details_id, creditor_iban, creditor_name, remittance, refs_included, refs_omitted, state, pmt_inf_id) "
        "SELECT r, $1, s, q, e, a, false, d, i, 'Bench', e, 0, 0, 'sent', b FROM unnest($2::bigint[], "
        "$3::bigint[], $4::int[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::text[]) "
        "AS u(r, s, q, e, a, d, i, b)",
        sponsor.id,
        [run_ids[k // SUPPLIERS_PER_RUN] for k in range(len(pays))],
        [sup[k % SUPPLIERS_PER_RUN] for k in range(len(pays))],
        [k + 1 for k in range(len(pays))],
        [p.end_to_end_id for p in pays],
        [p.amount_cents for p in pays],
        [details[k % SUPPLIERS_PER_RUN] for k in range(len(pays))],
        [p.creditor_iban or "NL91ABNA0417164300" for p in pays],
        [p.pmt_inf_id for p in pays],
    )
    # the ledger as the exports left it: the payments' sum in transit, the opening balance in the bank
    ids = await chart.ensure(conn, sponsor.ledger_id, [("bench:payable", "Payables (bench)")])
    total = sum(p.amount_cents for p in pays)
    assert st.opening_balance_cents is not None
    await apply_batch(
        conn,
        [
            EntrySpec(
                id=new_entry_id(),
                ledger_id=sponsor.ledger_id,
                description="bench: payouts exported",
                value_date=date(2026, 11, 23),
                transfers=(
                    TransferSpec(
                        debit_account_id=ids["bench:payable"],
                        credit_account_id=debtor.in_transit_account_id,
                        amount=total,
                    ),
                ),
            )
        ],
    )
    return data, len(blocks)


async def bench_reconcile(dsn: str, migrations: Path, *, entries: int = 100_000, keep: bool = False) -> dict[str, Any]:
    async with scratch_database(dsn, migrations, prefix="bench_reconcile", keep=keep) as target:
        conn = await db.connect(target)
        try:
            async with conn.transaction():
                data, batches = await _setup(conn, entries)
            t0 = perf_counter()
            parsed = parse_camt(data, max_bytes=len(data) + 1)
            parse_s = perf_counter() - t0
            t1 = perf_counter()
            bare_iterparse(data)
            bare_s = perf_counter() - t1
            t2 = perf_counter()
            async with conn.transaction():
                result = await statements.import_file(conn, "system:bench", data, max_bytes=len(data) + 1)
            total_s = perf_counter() - t2
            in_transit = await conn.fetchval(
                "SELECT credits_posted - debits_posted FROM accounts WHERE code LIKE 'in_transit:%'"
            )
        finally:
            await conn.close()
    (s,) = result.statements
    return {
        "entries": len(parsed[0].entries),
        "batch_entries": batches,
        "payments": result.payments_booked,
        "bytes": len(data),
        "total_s": round(total_s, 3),
        "parse_s": round(parse_s, 3),
        "lxml_iterparse_s": round(bare_s, 3),
        "parse_ratio": round(parse_s / bare_s, 3),
        "matched": s.matched,
        "unmatched": s.unmatched,
        "balance_difference": s.balance_difference,
        "in_transit_after": in_transit,
        "runs_settled": len(result.runs_settled),
    }
