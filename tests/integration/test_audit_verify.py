"""`settlement audit verify` passes on the demo and fails, naming the problem, on tampered books."""

from __future__ import annotations

from settlement import db
from tests.integration.test_cli import run
from tests.world import World


async def test_demo_books_verify(world: World, db_dsn: str) -> None:
    r = run("audit", "verify", env={"DATABASE_URL": db_dsn})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failed" in r.stdout


async def test_a_tampered_row_fails_the_chain(world: World, db_dsn: str) -> None:
    conn = await db.connect(db_dsn)
    try:
        # behind the append-only triggers' back, as someone with database access could
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE transfers SET amount = amount + 100 "
            "WHERE n = (SELECT min(n) FROM transfers WHERE code = 'redemption')"
        )
    finally:
        await conn.close()
    r = run("audit", "verify", env={"DATABASE_URL": db_dsn})
    assert r.returncode == 1
    assert "FAILED hash_chain" in r.stdout and "broken at seq" in r.stdout
    assert "FAILED account_totals" in r.stdout


async def test_an_unbalanced_ledger_fails(world: World, db_dsn: str) -> None:
    conn = await db.connect(db_dsn)
    try:
        await conn.execute(
            "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE code LIKE 'fund:%' "
            "AND id = (SELECT min(id) FROM accounts WHERE code LIKE 'fund:%')"
        )
    finally:
        await conn.close()
    r = run("audit", "verify", env={"DATABASE_URL": db_dsn})
    assert r.returncode == 1
    assert "FAILED ledger_balanced" in r.stdout
    assert "FAILED fund_overview" in r.stdout


async def test_verifying_a_sponsor_that_does_not_exist_is_no_pass(world: World, db_dsn: str) -> None:
    # a mistyped --sponsor checked nothing and still said "0 failed" with exit 0
    for org in (999_999, world.ids["bike_shop"]):
        r = run("audit", "verify", "--sponsor", str(org), env={"DATABASE_URL": db_dsn})
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"FAILED sponsor sponsor {org}" in r.stdout
    r = run("audit", "verify", "--sponsor", str(world.ids["leergeld"]), env={"DATABASE_URL": db_dsn})
    assert r.returncode == 0 and "0 failed" in r.stdout, r.stdout + r.stderr
