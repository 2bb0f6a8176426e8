"""``settlement bench sepa``: a payout run of 10,000 payables over 2,000 suppliers.

Two measurements in one command:

- ``build_validate_s``: building and XSD-validating the pain.001 file(s) for
  the run's payments, in memory (``sepa.bench``): the figure the issue budgets
  at under 1 s.
- ``run_build_s`` and ``export_s``: the same volume through the database: the
  run is built from payable lines (netting, bank details copied, remittance),
  approved by a second person, and exported (files built, validated, stored
  with their sha256, payable -> in_transit posted), each in one transaction.

The setup (suppliers, bank details, vouchers, redemptions, payable lines) is
written in bulk under a throw-away sponsor and is not timed.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import date, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

from schwifty import IBAN

from ledger.engine import apply_batch
from ledger.model import EntrySpec, TransferSpec, new_entry_id
from sepa.bench import bench_sepa
from settlement import chart, db
from settlement.auth import load_actor
from settlement.orgs import flows as orgs
from settlement.payouts import flows as payouts
from settlement.sponsors import flows as sponsors

_BANKS = ("ABNA", "INGB", "RABO", "SNSB", "TRIO")


async def _setup(conn: Any, payables: int, suppliers: int, seed: int) -> tuple[Any, Any, int]:
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    sponsor = await orgs.create_organisation(conn, "system:bench", f"Bench sponsor {tag}", ["sponsor"])
    fin = await load_actor(conn, (await orgs.issue_token(conn, "system:bench", sponsor.id, "sponsor_finance", "f")).id)
    appr = await load_actor(
        conn, (await orgs.issue_token(conn, "system:bench", sponsor.id, "sponsor_approver", "a")).id
    )
    own_iban = str(IBAN.generate("NL", bank_code="RABO", account_code=f"{rng.randrange(10**9):010d}").compact)
    debtor = await sponsors.add_debtor_account(
        conn, fin, own_iban, "Bench sponsor", None, "pain.001.001.09", False, True
    )
    fund = await sponsors.create_fund(
        conn,
        fin,
        code="BENCH",
        name="Bench fund",
        period_start=date.today() - timedelta(days=1),
        period_end=date.today() + timedelta(days=365),
        cap_per_voucher=10**9,
        reservation_expiry_days=30,
        cancellation_window_days=0,
        categories=[],
        validators=[],
    )
    ledger_id = sponsor.ledger_id
    assert ledger_id is not None
    # suppliers with approved bank details, in bulk
    names = [f"Bench supplier {tag} {i}" for i in range(suppliers)]
    sup_ids = [
        r["id"]
        for r in await conn.fetch(
            "INSERT INTO organisations (name, kinds) SELECT n, '{supplier}' FROM unnest($1::text[]) AS n RETURNING id",
            names,
        )
    ]
    await conn.execute(
        "INSERT INTO suppliers (organisation_id, category) SELECT id, 'bike_shop' FROM unnest($1::bigint[]) AS id",
        sup_ids,
    )
    ibans = [
        str(IBAN.generate("NL", bank_code=_BANKS[i % 5], account_code=f"{100_000_000 + i:010d}").compact)
        for i in range(suppliers)
    ]
    await conn.execute(
        "INSERT INTO supplier_bank_details (supplier_id, iban, holder_name, state, requested_by, decided_by, "
        "decided_at) SELECT s, i, n, 'active', $4, $5, now() FROM unnest($1::bigint[], $2::text[], $3::text[]) "
        "AS u(s, i, n)",
        sup_ids,
        ibans,
        names,
        fin.token_id,
        appr.token_id,
    )
    # payable accounts, credited from one source account (the ledger stays balanced)
    ids = await chart.ensure(
        conn, ledger_id, [("bench:source", "Bench source")] + [(chart.payable(s), f"Payable {s}") for s in sup_ids]
    )
    owners = sup_ids + [rng.choice(sup_ids) for _ in range(payables - suppliers)]
    amounts = [rng.randint(500, 25_000) for _ in owners]
    per: dict[int, int] = {}
    for s, a in zip(owners, amounts, strict=True):
        per[s] = per.get(s, 0) + a
    entries = [
        EntrySpec(
            id=new_entry_id(),
            ledger_id=ledger_id,
            description="bench payable",
            value_date=date.today(),
            transfers=(
                TransferSpec(debit_account_id=ids["bench:source"], credit_account_id=ids[chart.payable(s)], amount=a),
            ),
        )
        for s, a in per.items()
    ]
    for i in range(0, len(entries), 5_000):
        await apply_batch(conn, entries[i : i + 5_000])
    voucher_ids = [uuid.uuid4() for _ in owners]
    await conn.execute(
        "INSERT INTO vouchers (id, code, sponsor_id, beneficiary_ref, amount, valid_from, valid_until, issued_by_org, "
        "issued_by_token) SELECT v, 'B' || $6 || '-' || n, $2, 'bench', a, current_date, current_date + 30, $2, $3 "
        "FROM unnest($1::uuid[], $4::bigint[], $5::int[]) AS u(v, a, n)",
        voucher_ids,
        sponsor.id,
        fin.token_id,
        amounts,
        list(range(len(owners))),
        tag,
    )
    red_ids = [uuid.uuid4() for _ in owners]
    await conn.execute(
        "INSERT INTO redemptions (id, voucher_id, supplier_id, amount, reference, description) "
        "SELECT r, v, s, a, 'BON-' || n, 'bench' FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], "
        "$5::int[]) AS u(r, v, s, a, n)",
        red_ids,
        voucher_ids,
        owners,
        amounts,
        list(range(len(owners))),
    )
    await conn.execute(
        "INSERT INTO payable_lines (sponsor_id, supplier_id, fund_id, redemption_id, amount, payable_from) "
        "SELECT $1, s, $2, r, a, now() - interval '1 day' FROM unnest($3::bigint[], $4::uuid[], $5::bigint[]) "
        "AS u(s, r, a)",
        sponsor.id,
        fund.id,
        owners,
        red_ids,
        amounts,
    )
    return fin, appr, debtor.id


def _write(out_dir: Path, files: list[tuple[str, bytes]]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for msg_id, data in files:
        (out_dir / f"{msg_id}.xml").write_bytes(data)


async def bench_payout_run(
    dsn: str,
    *,
    payables: int = 10_000,
    suppliers: int = 2_000,
    max_per_file: int = 10_000,
    out_dir: Path | None = None,
    seed: int = 20261123,
) -> dict[str, Any]:
    pure = bench_sepa(payables, suppliers, max_per_file=max_per_file)
    conn = await db.connect(dsn)
    try:
        async with conn.transaction():
            fin, appr, debtor_id = await _setup(conn, payables, suppliers, seed)
        t0 = perf_counter()
        async with conn.transaction():
            run = await payouts.create_run(conn, fin, debtor_id)
        run_build_s = perf_counter() - t0
        async with conn.transaction():
            await payouts.approve(conn, appr, run.id)
        t1 = perf_counter()
        async with conn.transaction():
            run = await payouts.export(conn, fin, run.id, max_per_file=max_per_file)
        export_s = perf_counter() - t1
        in_transit = await conn.fetchval(
            "SELECT a.credits_posted - a.debits_posted FROM debtor_accounts d JOIN accounts a "
            "ON a.id = d.in_transit_account_id WHERE d.id = $1",
            debtor_id,
        )
        if out_dir is not None:
            files = [await payouts.download(conn, "system:bench", run.id, f.id) for f in run.files]
            await asyncio.to_thread(_write, out_dir, [(m, d) for m, d, _ in files])
    finally:
        await conn.close()
    return {
        "payables": payables,
        "suppliers": suppliers,
        "payments": run.payment_count,
        "files": len(run.files),
        "build_validate_s": pure["build_validate_s"],
        "bytes": pure["bytes"],
        "run_build_s": round(run_build_s, 4),
        "export_s": round(export_s, 4),
        "ctrl_sum_equals_in_transit": sum(f.ctrl_sum for f in run.files) == in_transit == run.total,
    }
