"""`settlement bench api`: the real server under concurrent reserve-then-redeem load.

Starts `settlement serve` (uvicorn) on 127.0.0.1 against the configured
database, sets up its own sponsor, fund, supplier and vouchers (so it never
touches other data), and drives it with concurrent clients. Each client
reserves on a voucher and redeems the reservation; part of the clients also
fight over one shared voucher whose balance is smaller than their demand,
to prove it is never overspent. Then it times a bulk issue of 100,000 vouchers.
Request loops are bounded in count and time.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import date
from typing import Any

import httpx

from settlement import bench_http, db
from settlement.auth import load_actor
from settlement.orgs import flows as orgs
from settlement.sponsors import flows as sponsors
from settlement.suppliers import flows as suppliers
from settlement.vouchers import flows as vouchers

MAX_SECONDS = 120
# Rounds each client runs before the clock starts: every pooled connection has
# then prepared its statements and fetched its type codecs (30-45 ms apiece on
# first use), so the figures are the server's steady state.
WARMUP_ROUNDS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _setup(dsn: str, n_vouchers: int, bulk: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6].upper()
    conn = await db.connect(dsn)
    try:
        async with conn.transaction():
            sp = await orgs.create_organisation(conn, "system:bench", f"Bench sponsor {tag}", ["sponsor", "validator"])
            su = await orgs.create_organisation(
                conn, "system:bench", f"Bench shop {tag}", ["supplier"], supplier_category="bike_shop"
            )
            t_fin = await orgs.issue_token(conn, "system:bench", sp.id, "sponsor_finance", "bench finance")
            t_appr = await orgs.issue_token(conn, "system:bench", sp.id, "sponsor_approver", "bench approver")
            t_val = await orgs.issue_token(conn, "system:bench", sp.id, "validator", "bench validator")
            t_sup = await orgs.issue_token(conn, "system:bench", su.id, "supplier", "bench shop")
            fin, appr, val = [await load_actor(conn, t.id) for t in (t_fin, t_appr, t_val)]
            shop = await load_actor(conn, t_sup.id)
            year = date.today().year
            fund = await sponsors.create_fund(
                conn,
                fin,
                code=f"B{tag}",
                name="bench fund",
                period_start=date(year, 1, 1),
                period_end=date(year, 12, 31),
                cap_per_voucher=100_000,
                reservation_expiry_days=1,
                cancellation_window_days=0,
                categories=[],
                validators=[sp.id],
            )
            await sponsors.grant(conn, fin, fund.id, "bench", "bench source", 10**12, uuid.uuid4())
            req = await suppliers.request_bank_details(conn, shop, su.id, "NL02ABNA0123456789", None, "Bench shop")
            await suppliers.decide(conn, appr, req.id, True, None)
            issued = await vouchers.issue_vouchers(
                conn,
                val,
                [
                    vouchers.VoucherRequest(
                        amount=100_000, beneficiary_ref=f"BENCH-{i}", shares=[vouchers.ShareRequest(fund_id=fund.id)]
                    )
                    for i in range(n_vouchers)
                ],
            )
            shared = await vouchers.issue_vouchers(
                conn,
                val,
                [
                    vouchers.VoucherRequest(
                        amount=50_000, beneficiary_ref="BENCH-SHARED", shares=[vouchers.ShareRequest(fund_id=fund.id)]
                    )
                ],
            )
        return {
            "sponsor": sp.id,
            "fund": fund.id,
            "supplier": t_sup.token,
            "validator": t_val.token,
            "codes": [r.code for r in issued.results],
            "shared": shared.results[0].code,
            "bulk": bulk,
        }
    finally:
        await conn.close()


async def _overspent(dsn: str, sponsor_id: int) -> int:
    conn = await db.connect(dsn)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM voucher_shares s JOIN accounts a ON a.id = s.account_id WHERE s.sponsor_id = $1 "
            "AND a.debits_posted + a.debits_pending > a.credits_posted",
            sponsor_id,
        )
        return n
    finally:
        await conn.close()


async def bench_api(
    dsn: str, *, clients: int = 32, per_client: int = 40, workers: int = 1, bulk: int = 100_000
) -> dict[str, Any]:
    world = await _setup(dsn, clients * (per_client + WARMUP_ROUNDS), bulk)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "SETTLEMENT_LOG_LEVEL": "warning", "SETTLEMENT_POOL_MAX_SIZE": "20"}
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load; never waited on in the loop
        [sys.executable, "-m", "settlement", "serve", "--port", str(port), "--workers", str(workers), "--no-migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("bench server did not start")
                await asyncio.sleep(0.2)

        latencies: list[float] = []
        redeemed = 0
        refused = 0
        shared_ok = 0
        warmed = 0
        sup = {"Authorization": f"Bearer {world['supplier']}"}
        stop_at = time.monotonic() + MAX_SECONDS

        async def client(codes: list[str], warmup: list[str]) -> None:
            nonlocal redeemed, refused, shared_ok, warmed
            http = bench_http.Conn("127.0.0.1", port)
            try:
                for code in warmup:
                    _, body = await http.post(
                        "/v1/reservations",
                        {**sup, "Idempotency-Key": uuid.uuid4().hex},
                        {"voucher_code": code, "amount": 100, "description": "warm-up"},
                    )
                    await http.post(
                        f"/v1/reservations/{body['id']}/redeem",
                        {**sup, "Idempotency-Key": uuid.uuid4().hex},
                        {"amount": 100, "reference": "WARMUP"},
                    )
                warmed += 1
                if warmed == clients:
                    all_warm.set()
                await started.wait()
                for i, code in enumerate(codes):
                    if time.monotonic() > stop_at:
                        return
                    # every fourth round also fights over the shared voucher
                    target, amount = (world["shared"], 2_000) if i % 4 == 0 else (code, 10_000)
                    t = time.perf_counter()
                    status, body = await http.post(
                        "/v1/reservations",
                        {**sup, "Idempotency-Key": uuid.uuid4().hex},
                        {"voucher_code": target, "amount": amount, "description": "bench"},
                    )
                    latencies.append(time.perf_counter() - t)
                    if status != 201:
                        refused += 1
                        continue
                    t = time.perf_counter()
                    status, _ = await http.post(
                        f"/v1/reservations/{body['id']}/redeem",
                        {**sup, "Idempotency-Key": uuid.uuid4().hex},
                        {"amount": amount - 1, "reference": "BENCH"},
                    )
                    latencies.append(time.perf_counter() - t)
                    if status == 201:
                        redeemed += 1
                        shared_ok += target == world["shared"]
            finally:
                await http.close()

        codes: list[str] = world["codes"][: clients * per_client]
        spare: list[str] = world["codes"][clients * per_client :]
        started = asyncio.Event()
        all_warm = asyncio.Event()
        tasks = [
            asyncio.create_task(
                client(
                    codes[c * per_client : (c + 1) * per_client],
                    spare[c * WARMUP_ROUNDS : (c + 1) * WARMUP_ROUNDS],
                )
            )
            for c in range(clients)
        ]
        # every client warmed up (or one failed: gather below raises its error)
        warm = asyncio.create_task(all_warm.wait())
        await asyncio.wait([warm, *tasks], return_when=asyncio.FIRST_COMPLETED)
        warm.cancel()
        t0 = time.perf_counter()
        started.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0

        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            items = [{"fund_id": world["fund"], "amount": 1_000, "beneficiary_ref": f"BULK-{i}"} for i in range(bulk)]
            val = {"Authorization": f"Bearer {world['validator']}", "Idempotency-Key": uuid.uuid4().hex}
            t0 = time.perf_counter()
            r = await http.post("/v1/vouchers/bulk", json={"items": items}, headers=val, timeout=300)
            bulk_s = time.perf_counter() - t0
            bulk_ok = r.json().get("issued", 0) if r.status_code == 200 else 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    latencies.sort()
    return {
        "clients": clients,
        "workers": workers,
        "redemptions": redeemed,
        "refused_reservations": refused,
        "shared_voucher_redemptions": shared_ok,
        "shared_voucher_max": 50_000 // 2_000,
        "redemptions_per_s": round(redeemed / elapsed, 1),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 2),
        "overspent": await _overspent(dsn, world["sponsor"]),
        "bulk_issued": bulk_ok,
        "bulk_issue_100k_s": round(bulk_s, 2),
    }
