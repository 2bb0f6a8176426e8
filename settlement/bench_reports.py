"""``settlement bench reports``: a trial balance and a fund report over 10 million transfers.

A scratch database gets one sponsor ledger with a year of history written in
bulk by SQL (``generate_series``), not through the engine (its hash chain is
not computed: the ledger is a load, not books): two funds, 500 suppliers,
and per 20 transfers 1 voucher issue, 1 open reservation (pending), 6
redemptions, 6 payout exports and 6 bank bookings, one journal entry per 10
transfers; with the business rows the fund report reads (vouchers, shares,
redemptions, payable lines). Account totals are then set from the transfers.

Timed: the day roll-up over the whole year (``rollup_s``, the hourly job's
work done at once), the trial balance as of a date mid-year and as of
yesterday (``trial_balance_s`` is the slower), and the fund report over the
year (``fund_report_s``). The trial balance is checked: debits equal credits
and each account equals a direct sum of its transfers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

from ledger.rollup import balances_on, roll_up, start_of
from settlement import chart, db
from settlement.books.flows import fund_report_of, trial_balance_of
from settlement.scratch import scratch_database

SUPPLIERS = 500
PER_CYCLE = 20  # transfers per cycle: 1 issue, 1 hold, 6 redemptions, 6 exports, 6 bookings
PER_ENTRY = 10


async def _generate(conn: Any, transfers: int, first_day: date, days: int) -> dict[str, Any]:
    await conn.execute("SET synchronous_commit = off")
    lid = await conn.fetchval("INSERT INTO ledgers (name, currency) VALUES ('Bench gemeente', 'EUR') RETURNING id")
    org = await conn.fetchval(
        "INSERT INTO organisations (name, kinds) VALUES ('Bench gemeente', '{sponsor}') RETURNING id"
    )
    await conn.execute("INSERT INTO sponsors (organisation_id, ledger_id) VALUES ($1, $2)", org, lid)
    token = await conn.fetchval(
        "INSERT INTO api_tokens (organisation_id, role, name, token_hash, prefix) "
        "VALUES ($1, 'sponsor_finance', 'bench', sha256('bench'::bytea), 'bench') RETURNING id",
        org,
    )

    async def account(code: str) -> int:
        v: int = await conn.fetchval(
            "INSERT INTO accounts (ledger_id, code, name) VALUES ($1, $2, $2) RETURNING id", lid, code
        )
        return v

    bank, in_transit = await account("bank:NL91ABNA0417164300"), await account("in_transit:NL91ABNA0417164300")
    funds = []
    for code in ("KINDPAKKET", "SPORT"):
        acc = await account(f"fund:{code}")
        funds.append(
            await conn.fetchval(
                "INSERT INTO funds (sponsor_id, code, name, period_start, period_end, cap_per_voucher, "
                "top_up_reference, account_id) VALUES ($1, $2, $2, $3, $4, 100000000, 'RF00' || $2, $5) RETURNING id",
                org,
                code,
                first_day,
                first_day + timedelta(days=days),
                acc,
            )
        )
    fund_acc = [await conn.fetchval("SELECT account_id FROM funds WHERE id = $1", f) for f in funds]
    src = await account("funding:rijk")
    await conn.execute(
        "INSERT INTO funding_sources (sponsor_id, code, name, account_id) VALUES ($1, 'rijk', 'Rijk', $2)", org, src
    )
    sups = [
        r["id"]
        for r in await conn.fetch(
            "INSERT INTO organisations (name, kinds) SELECT 'Supplier ' || g, '{supplier}' "
            "FROM generate_series(1::bigint, $1) g RETURNING id",
            SUPPLIERS,
        )
    ]
    await conn.execute(
        "INSERT INTO suppliers (organisation_id, category) SELECT id, (ARRAY['bike_shop', 'sports_club', "
        "'clothing_bank', 'library'])[1 + id % 4] FROM unnest($1::bigint[]) id",
        sups,
    )
    await conn.execute(
        "INSERT INTO accounts (ledger_id, code, name) SELECT $1, 'payable:' || s, 'Payable ' || s "
        "FROM unnest($2::bigint[]) s",
        lid,
        sups,
    )
    pay_base = await conn.fetchval("SELECT min(id) FROM accounts WHERE ledger_id = $1 AND code LIKE 'payable:%'", lid)
    cycles = transfers // PER_CYCLE
    vouchers = cycles
    await conn.execute(
        "INSERT INTO accounts (ledger_id, code, name) SELECT $1, 'voucher:B' || g, 'Voucher B' || g "
        "FROM generate_series(1::bigint, $2) g",
        lid,
        vouchers,
    )
    v_base = await conn.fetchval("SELECT min(id) FROM accounts WHERE ledger_id = $1 AND code LIKE 'voucher:%'", lid)
    t0 = start_of(first_day)
    span = timedelta(days=days).total_seconds()
    entries = transfers // PER_ENTRY
    await conn.execute(
        "INSERT INTO journal_entries (id, ledger_id, seq, description, refs, value_date, created_at, content_hash, "
        "prev_hash, hash) SELECT md5('e' || g)::uuid, $1, g, 'bench', '{}', "
        "($2::timestamptz + (g::float8 / $3) * $4 * interval '1 second')::date, "
        "$2::timestamptz + (g::float8 / $3) * $4 * interval '1 second', '\\x00', '\\x00', '\\x00' "
        "FROM generate_series(1::bigint, $3) g",
        lid,
        t0,
        entries,
        span,
    )
    # a grant per fund first, then the cycles
    await conn.execute(
        "INSERT INTO transfers (id, entry_id, ledger_id, debit_account_id, credit_account_id, amount, kind, code, "
        "created_at) SELECT md5('g' || f)::uuid, md5('e1')::uuid, $1, $2, f, 1000000000000, 'posted', 'grant', $3 "
        "FROM unnest($4::bigint[]) f",
        lid,
        src,
        t0,
        fund_acc,
    )
    await conn.execute(
        """
        INSERT INTO transfers (id, entry_id, ledger_id, debit_account_id, credit_account_id, amount, kind, code,
                               created_at)
        SELECT md5('t' || g)::uuid, md5('e' || (1 + (g - 1) / $8))::uuid, $1,
               CASE WHEN k = 0 THEN $2 + (c % 2) WHEN k <= 7 THEN $3 + v WHEN k <= 13 THEN $4 + s ELSE $5 END,
               CASE WHEN k = 0 THEN $3 + c - 1 WHEN k <= 7 THEN $4 + s WHEN k <= 13 THEN $5 ELSE $6 END,
               500 + (g * 7919) % 30000,
               CASE WHEN k = 1 THEN 'pending' ELSE 'posted' END,
               CASE WHEN k = 0 THEN 'voucher_issued' WHEN k = 1 THEN 'reservation' WHEN k <= 7 THEN 'redemption'
                    WHEN k <= 13 THEN 'payout_exported' ELSE 'payment_booked' END,
               $9::timestamptz + (((1 + (g - 1) / $8)::float8 / $10) * $11) * interval '1 second'
        FROM (SELECT g, (g - 1) % 20 AS k, 1 + (g - 1) / 20 AS c, ((g * 31) % $12) AS v, ((g * 17) % $13) AS s
              FROM generate_series(1::bigint, $7) g) x
        """,
        lid,
        fund_acc[0],
        v_base,
        pay_base,
        in_transit,
        bank,
        cycles * PER_CYCLE,
        PER_ENTRY,
        t0,
        entries,
        span,
        vouchers,
        SUPPLIERS,
    )
    # account totals from the transfers
    await conn.execute(
        """
        WITH m AS (
            SELECT debit_account_id AS a, sum(amount) FILTER (WHERE kind = 'posted') AS dp,
                   sum(amount) FILTER (WHERE kind = 'pending') AS dpe, 0 AS cp, 0 AS cpe
            FROM transfers WHERE ledger_id = $1 GROUP BY 1
            UNION ALL
            SELECT credit_account_id, 0, 0, sum(amount) FILTER (WHERE kind = 'posted'),
                   sum(amount) FILTER (WHERE kind = 'pending')
            FROM transfers WHERE ledger_id = $1 GROUP BY 1
        ), t AS (SELECT a, coalesce(sum(dp), 0) dp, coalesce(sum(dpe), 0) dpe, coalesce(sum(cp), 0) cp,
                        coalesce(sum(cpe), 0) cpe FROM m GROUP BY a)
        UPDATE accounts SET debits_posted = t.dp, debits_pending = t.dpe, credits_posted = t.cp,
                            credits_pending = t.cpe FROM t WHERE accounts.id = t.a
        """,
        lid,
    )
    # business rows: vouchers and shares (one per issue), redemptions and payable lines (one per redemption)
    await conn.execute(
        "INSERT INTO vouchers (id, code, sponsor_id, beneficiary_ref, amount, valid_from, valid_until, issued_by_org, "
        "issued_by_token, created_at) SELECT md5('v' || g)::uuid, 'B' || g, $1, 'BR-' || (g % ($2 * 4 / 5)), "
        "35000, $3::date, $3::date + 365, $1, $4, $5::timestamptz + (g::float8 / $2) * $6 * interval '1 second' "
        "FROM generate_series(1::bigint, $2) g",
        org,
        vouchers,
        first_day,
        token,
        t0,
        span,
    )
    await conn.execute(
        "INSERT INTO voucher_shares (voucher_id, position, fund_id, sponsor_id, ledger_id, account_id, bp, amount, "
        "created_at, beneficiary_ref) SELECT v.id, 1, (ARRAY[$1::bigint, $2::bigint])[1 + g % 2], $3, $4, $5 + g - 1, "
        "10000, 35000, v.created_at, v.beneficiary_ref FROM generate_series(1::bigint, $6) g "
        "JOIN vouchers v ON v.id = md5('v' || g)::uuid",
        funds[0],
        funds[1],
        org,
        lid,
        v_base,
        vouchers,
    )
    redemptions = cycles * 6
    await conn.execute(
        "INSERT INTO redemptions (id, voucher_id, supplier_id, amount, reference, description, created_at) "
        "SELECT md5('r' || g)::uuid, md5('v' || (1 + g % $2))::uuid, ($3::bigint[])[1 + g % $4], "
        "500 + (g * 7919) % 30000, 'BON-' || g, 'bench', "
        "$5::timestamptz + (g::float8 / $1) * $6 * interval '1 second' FROM generate_series(1::bigint, $1) g",
        redemptions,
        vouchers,
        sups,
        SUPPLIERS,
        t0,
        span,
    )
    await conn.execute(
        "INSERT INTO payable_lines (sponsor_id, supplier_id, fund_id, redemption_id, amount, state, payable_from, "
        "created_at) SELECT $1, r.supplier_id, (ARRAY[$2::bigint, $3::bigint])[1 + (hashtext(r.id::text) & 1)], "
        "r.id, r.amount, (ARRAY['paid', 'paid', 'in_payout', 'open'])[1 + "
        "(hashtext(r.reference) & 3)], r.created_at, r.created_at FROM redemptions r",
        org,
        funds[0],
        funds[1],
    )
    # A year-old database has been vacuumed by autovacuum many times over: so is this one (untimed).
    await conn.execute("VACUUM (ANALYZE)")
    return {"ledger_id": lid, "sponsor_id": org, "transfers": await conn.fetchval("SELECT count(*) FROM transfers")}


async def _fund_report_equals_direct_sums(conn: Any, report: Any, first: date, end: date) -> bool:
    """The report's issued, redeemed, vouchers and beneficiaries, recomputed the plain way."""
    t0, t1 = start_of(first), start_of(end)
    for f in report.funds:
        direct = await conn.fetchrow(
            "SELECT (SELECT coalesce(sum(t.amount), 0) FROM transfers t JOIN funds x ON x.account_id = "
            "t.debit_account_id WHERE x.id = $1 AND t.code = 'voucher_issued' AND t.created_at >= $2 "
            "AND t.created_at < $3)::bigint AS issued, (SELECT coalesce(sum(amount), 0) FROM payable_lines "
            "WHERE fund_id = $1 AND created_at >= $2 AND created_at < $3)::bigint AS redeemed, "
            "(SELECT count(*) FROM vouchers v JOIN voucher_shares s ON s.voucher_id = v.id WHERE s.fund_id = $1 "
            "AND v.created_at >= $2 AND v.created_at < $3) AS vouchers, (SELECT count(DISTINCT v.beneficiary_ref) "
            "FROM vouchers v JOIN voucher_shares s ON s.voucher_id = v.id WHERE s.fund_id = $1 "
            "AND v.created_at >= $2 AND v.created_at < $3) AS beneficiaries",
            f.fund_id,
            t0,
            t1,
        )
        got = (f.issued, f.redeemed, f.vouchers, f.beneficiaries)
        if got != (direct["issued"], direct["redeemed"], direct["vouchers"], direct["beneficiaries"]):
            return False
    return True


async def bench_reports(
    dsn: str, migrations: Path, *, transfers: int = 10_000_000, keep: bool = False
) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=365)
    async with scratch_database(dsn, migrations, prefix="bench_reports", keep=keep) as target:
        conn = await db.connect(target, command_timeout=3600)
        try:
            g0 = perf_counter()
            made = await _generate(conn, transfers, first_day, 365)
            generate_s = perf_counter() - g0
            lid, sid = made["ledger_id"], made["sponsor_id"]

            r0 = perf_counter()
            await roll_up(conn, lid, groups=chart.SUBLEDGERS)
            rollup_s = perf_counter() - r0

            mid = first_day + timedelta(days=182)
            timings = []
            results = []
            for day in (mid, today - timedelta(days=1)):
                t = perf_counter()
                tb = await trial_balance_of(conn, lid, day)
                timings.append(perf_counter() - t)
                results.append(tb)
            f0 = perf_counter()
            report = await fund_report_of(conn, sid, first_day, today - timedelta(days=1))
            fund_report_s = perf_counter() - f0

            # checks: balanced, and equal to a direct sum of transfers for a few accounts
            direct = {
                r["code"]: r["net"]
                for r in await conn.fetch(
                    "SELECT a.code, (SELECT coalesce(sum(amount), 0) FROM transfers WHERE debit_account_id = a.id "
                    "AND kind = 'posted' AND created_at < $2) - (SELECT coalesce(sum(amount), 0) FROM transfers "
                    "WHERE credit_account_id = a.id AND kind = 'posted' AND created_at < $2) AS net FROM accounts a "
                    "WHERE a.ledger_id = $1 AND a.code NOT LIKE 'voucher:%'",
                    lid,
                    start_of(mid + timedelta(days=1)),
                )
            }
            got = {x.code: x.debit - x.credit for x in results[0].lines}
            checked = all(got.get(code, 0) == net for code, net in direct.items())
            ab = await balances_on(conn, lid, mid, groups=chart.SUBLEDGERS)
            report_checked = await _fund_report_equals_direct_sums(conn, report, first_day, today)
        finally:
            await conn.close()
    return {
        "transfers": made["transfers"],
        "accounts": len(ab),
        "generate_s": round(generate_s, 1),
        "rollup_s": round(rollup_s, 2),
        "trial_balance_s": round(max(timings), 3),
        "trial_balance_mid_year_s": round(timings[0], 3),
        "trial_balance_yesterday_s": round(timings[1], 3),
        "fund_report_s": round(fund_report_s, 3),
        "trial_balance_balanced": all(tb.balanced for tb in results),
        "trial_balance_equals_transfers": checked,
        "fund_report_equals_direct_sums": report_checked,
        "funds": len(report.funds),
        "redeemed_in_report": sum(f.redeemed for f in report.funds),
    }
