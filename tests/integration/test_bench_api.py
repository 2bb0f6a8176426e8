"""`settlement bench api` end to end at a tiny size: real server, the lean HTTP client, warm-up, figures."""

from __future__ import annotations

from settlement.bench_api import bench_api


async def test_bench_api_runs_and_never_overspends(db_dsn: str) -> None:
    r = await bench_api(db_dsn, clients=4, per_client=4, workers=1, bulk=20)
    # every fourth round of each client fights over the shared voucher (EUR 500, 20 a time)
    assert r["redemptions"] == 4 * 4
    assert r["refused_reservations"] == 0
    assert r["shared_voucher_redemptions"] == 4
    assert r["overspent"] == 0
    assert r["bulk_issued"] == 20
    assert r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"]
    assert {"redemptions_per_s", "p50_ms", "p99_ms", "overspent", "bulk_issue_100k_s"} <= r.keys()
