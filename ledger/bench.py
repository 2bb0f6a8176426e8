"""`settlement bench ledger`: throughput of the batch engine and the concurrent path.

(a) batches over 10,000 accounts, uniform; (b) batches where every transfer
credits one hot account; (c) one transfer per call from 16 concurrent clients
through the coalescer, with p50/p99 latency. Every account is debit-limited,
so every limit check runs. The same run measures a plain set-based SQL batch
(INSERT ... unnest of the transfers, then each account updated with its net
delta, no per-transfer checks) on the same server and batch size.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from datetime import date
from typing import Any

import asyncpg

from ledger import codecs
from ledger.accounts import create_ledger, ensure_accounts
from ledger.coalescer import Coalescer
from ledger.engine import apply_batch
from ledger.model import AccountSpec, EntrySpec, TransferSpec, new_entry_id
from ledger.verify import verify_ledger

VALUE_DATE = date(2026, 1, 1)
FUNDING_PER_ACCOUNT = 10**9


async def _connect(dsn: str) -> Any:
    conn = await asyncpg.connect(dsn)
    await codecs.init_connection(conn)
    return conn


async def _setup(conn: Any, accounts: int) -> tuple[int, list[int], int]:
    async with conn.transaction():
        lid = await create_ledger(conn, f"bench {uuid.uuid4().hex[:8]}")
        specs = [AccountSpec(ledger_id=lid, code="funding:bench", name="funding")]
        specs += [
            AccountSpec(ledger_id=lid, code=f"acct:{i}", name=f"account {i}", debits_must_not_exceed_credits=True)
            for i in range(accounts)
        ]
        specs.append(AccountSpec(ledger_id=lid, code="hot", name="hot account"))
        created = await ensure_accounts(conn, specs)
    funding = created[0].id
    ids = [a.id for a in created[1:-1]]
    hot = created[-1].id
    # fund every limited account so the uniform run mostly succeeds
    for start in range(0, len(ids), 5_000):
        chunk = ids[start : start + 5_000]
        async with conn.transaction():
            await apply_batch(
                conn,
                [
                    EntrySpec(
                        id=new_entry_id(),
                        ledger_id=lid,
                        description="funding",
                        value_date=VALUE_DATE,
                        transfers=(
                            TransferSpec(debit_account_id=funding, credit_account_id=a, amount=FUNDING_PER_ACCOUNT),
                        ),
                    )
                    for a in chunk
                ],
            )
    return lid, ids, hot


def _entries(lid: int, ids: list[int], hot: int | None, n: int, rng: random.Random) -> list[EntrySpec]:
    out = []
    for _ in range(n):
        dr = rng.choice(ids)
        if hot is None:
            cr = rng.choice(ids)
            while cr == dr:
                cr = rng.choice(ids)
        else:
            cr = hot
        out.append(
            EntrySpec(
                id=new_entry_id(),
                ledger_id=lid,
                description="bench",
                value_date=VALUE_DATE,
                transfers=(TransferSpec(debit_account_id=dr, credit_account_id=cr, amount=rng.randint(1, 10_000)),),
            )
        )
    return out


async def _run_batches(conn: Any, batches: list[list[EntrySpec]]) -> tuple[float, int]:
    ok = 0
    t0 = time.perf_counter()
    for batch in batches:
        async with conn.transaction():
            results = await apply_batch(conn, batch)
        ok += sum(1 for r in results if r.result == "ok")
    return time.perf_counter() - t0, ok


_REF_SETUP = """
CREATE TEMP TABLE ref_transfers (LIKE transfers INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TEMP TABLE ref_accounts (LIKE accounts INCLUDING ALL);
"""


async def _reference(conn: Any, ids: list[int], batches: list[list[EntrySpec]]) -> float:
    """The plain set-based batch: unnest insert, one net-delta update per account."""
    await conn.execute(_REF_SETUP)
    await conn.execute(
        "INSERT INTO ref_accounts (id, ledger_id, code, name) SELECT id, ledger_id, code, name FROM accounts "
        "WHERE id = ANY($1::bigint[])",
        ids + [b.transfers[0].credit_account_id for b in batches[0][:1]],
    )
    t0 = time.perf_counter()
    for batch in batches:
        async with conn.transaction():
            now = await conn.fetchval("SELECT clock_timestamp()")
            cols: list[list[Any]] = [[] for _ in range(6)]
            delta: dict[int, list[int]] = {}
            for e in batch:
                t = e.transfers[0]
                cols[0].append(uuid.uuid4())
                cols[1].append(e.id)
                cols[2].append(e.ledger_id)
                cols[3].append(t.debit_account_id)
                cols[4].append(t.credit_account_id)
                cols[5].append(t.amount)
                delta.setdefault(t.debit_account_id, [0, 0])[0] += t.amount or 0
                delta.setdefault(t.credit_account_id, [0, 0])[1] += t.amount or 0
            await conn.execute(
                "INSERT INTO ref_transfers (id, entry_id, ledger_id, debit_account_id, credit_account_id, amount, "
                "kind, created_at) SELECT i, e, l, d, c, a, 'posted', $7 FROM unnest($1::uuid[], $2::uuid[], "
                "$3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) AS x(i, e, l, d, c, a)",
                *cols,
                now,
            )
            await conn.execute(
                "UPDATE ref_accounts a SET debits_posted = a.debits_posted + d.dp, "
                "credits_posted = a.credits_posted + d.cp "
                "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS d(id, dp, cp) WHERE a.id = d.id",
                list(delta),
                [v[0] for v in delta.values()],
                [v[1] for v in delta.values()],
            )
    elapsed = time.perf_counter() - t0
    await conn.execute("DROP TABLE ref_transfers; DROP TABLE ref_accounts")
    return elapsed


async def invariants(conn: Any, lid: int) -> dict[str, bool]:
    totals = await conn.fetchrow(
        "SELECT sum(debits_posted) AS dp, sum(credits_posted) AS cp, sum(debits_pending) AS dpe, "
        "sum(credits_pending) AS cpe, count(*) FILTER (WHERE debits_must_not_exceed_credits "
        "AND debits_posted + debits_pending > credits_posted) AS over FROM accounts WHERE ledger_id = $1",
        lid,
    )
    mismatched = await conn.fetchval(
        """
        WITH m AS (
            SELECT debit_account_id AS a, amount AS d, 0 AS c FROM transfers
            WHERE ledger_id = $1 AND kind IN ('posted', 'post_pending')
            UNION ALL
            SELECT credit_account_id, 0, amount FROM transfers
            WHERE ledger_id = $1 AND kind IN ('posted', 'post_pending')
        ), s AS (SELECT a, sum(d) AS d, sum(c) AS c FROM m GROUP BY a)
        SELECT count(*) FROM accounts acc LEFT JOIN s ON s.a = acc.id
        WHERE acc.ledger_id = $1 AND (coalesce(s.d, 0) <> acc.debits_posted OR coalesce(s.c, 0) <> acc.credits_posted)
        """,
        lid,
    )
    chain = await verify_ledger(conn, lid)
    return {
        "debits_equal_credits": totals["dp"] == totals["cp"] and totals["dpe"] == totals["cpe"],
        "limits_respected": totals["over"] == 0,
        "balances_match_transfers": mismatched == 0,
        "hash_chain_ok": chain.ok,
    }


async def bench_ledger(
    dsn: str,
    *,
    accounts: int = 10_000,
    batch_size: int = 5_000,
    batches: int = 8,
    clients: int = 16,
    single_calls: int = 6_000,
    seed: int = 1,
) -> dict[str, Any]:
    rng = random.Random(seed)
    conn = await _connect(dsn)
    try:
        lid, ids, hot = await _setup(conn, accounts)
        uniform = [_entries(lid, ids, None, batch_size, rng) for _ in range(batches)]
        hot_batches = [_entries(lid, ids, hot, batch_size, rng) for _ in range(batches)]
        ref_batches = [_entries(lid, ids, None, batch_size, rng) for _ in range(batches)]

        ua_s, ua_ok = await _run_batches(conn, uniform)
        inv_a = await invariants(conn, lid)
        hb_s, hb_ok = await _run_batches(conn, hot_batches)
        inv_b = await invariants(conn, lid)
        ref_s = await _reference(conn, ids, ref_batches)
    finally:
        await conn.close()

    # (c) one transfer per call, 16 clients, through the coalescer
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4, init=codecs.init_connection)
    latencies: list[float] = []
    per_client = single_calls // clients
    singles = [_entries(lid, ids, None, per_client, random.Random(seed + c)) for c in range(clients)]
    try:
        async with Coalescer(pool) as co:

            async def client(entries: list[EntrySpec]) -> int:
                ok = 0
                for e in entries:
                    t = time.perf_counter()
                    r = await co.submit(e)
                    latencies.append(time.perf_counter() - t)
                    ok += r.result == "ok"
                return ok

            t0 = time.perf_counter()
            oks = await asyncio.gather(*(client(s) for s in singles))
            single_s = time.perf_counter() - t0
            coalesced_batches = co.batches
        async with pool.acquire() as c:
            inv_c = await invariants(c, lid)
    finally:
        await pool.close()

    latencies.sort()
    n_batch = batch_size * batches
    batch_uniform_tps = n_batch / ua_s
    batch_hot_tps = n_batch / hb_s
    reference_tps = n_batch / ref_s
    invariants_ok = all(inv_a.values()) and all(inv_b.values()) and all(inv_c.values())
    return {
        "accounts": accounts,
        "batch_size": batch_size,
        "transfers_per_run": n_batch,
        "batch_uniform_tps": round(batch_uniform_tps),
        "batch_uniform_accepted": ua_ok,
        "batch_hot_tps": round(batch_hot_tps),
        "batch_hot_accepted": hb_ok,
        "reference_batch_tps": round(reference_tps),
        "ratio_to_reference": round(min(batch_uniform_tps, batch_hot_tps) / reference_tps, 3),
        "single_clients": clients,
        "single_calls": per_client * clients,
        "single_accepted": sum(oks),
        "single_tps": round(per_client * clients / single_s),
        "single_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "single_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "single_batches": coalesced_batches,
        "invariants": {"uniform": inv_a, "hot": inv_b, "single": inv_c},
        "invariants_ok": invariants_ok,
    }
