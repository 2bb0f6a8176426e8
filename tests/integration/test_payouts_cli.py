"""`settlement payouts run|export|import-status` against a real database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sepa import Rejection, build_pain002, read_pain001
from settlement import db
from settlement.auth import load_actor
from settlement.payouts import flows
from tests.api.conftest import World, assert_ledgers_balanced
from tests.integration.test_cli import run


async def test_run_export_import_status(world: World, db_dsn: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_dsn}
    conn = await db.connect(db_dsn)
    try:
        acct = await conn.fetchval("SELECT id FROM debtor_accounts WHERE sponsor_id = $1", world.ids["gemeente"])
        approver = await conn.fetchval(
            "SELECT id FROM api_tokens WHERE organisation_id = $1 AND role = 'sponsor_approver'", world.ids["gemeente"]
        )
        r = run("payouts", "run", "--debtor-account", str(acct), env=env)
        assert r.returncode == 0, r.stderr
        assert "draft, 3 payment(s), 50715 cents" in r.stdout
        run_id = await conn.fetchval("SELECT max(id) FROM payout_runs")

        # export before approval: one line naming the rule, exit 1
        r = run("payouts", "export", str(run_id), env=env)
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert "payout_run_not_approved" in r.stderr and len(r.stderr.strip().splitlines()) == 1

        async with conn.transaction():
            await flows.approve(conn, await load_actor(conn, approver), run_id)
        r = run("payouts", "export", str(run_id), "--out", str(tmp_path), env=env)
        assert r.returncode == 0, r.stderr
        (path,) = tmp_path.glob("*.xml")  # noqa: ASYNC240 - the test waits on its own subprocess anyway
        assert "sha256" in r.stdout and str(path) in r.stdout
        file = read_pain001(path.read_bytes())
        # exporting again writes the same stored file, and posts nothing twice
        r = run("payouts", "export", str(run_id), "--out", str(tmp_path / "again"), env=env)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes()

        e2e = file.blocks[0].payments[0].end_to_end_id
        report = tmp_path / "pain002.xml"
        report.write_bytes(
            build_pain002(
                file,
                msg_id="CLI-STS-1",
                created_at=datetime(2026, 11, 24, tzinfo=UTC),
                rejections=[Rejection(end_to_end_id=e2e, reason_code="AM04")],
            )
        )
        r = run("payouts", "import-status", str(report), env=env)
        assert r.returncode == 0, r.stderr
        assert "2 accepted, 1 rejected" in r.stdout and f"rejected {e2e}" in r.stdout
        assert "bank details blocked" not in r.stdout  # AM04 is the debtor's side, not the supplier's account
        r = run("payouts", "import-status", str(report), env=env)
        assert r.returncode == 0 and "already imported: nothing changed" in r.stdout
        assert await conn.fetchval("SELECT count(*) FROM payments WHERE state = 'rejected'") == 1
    finally:
        await conn.close()
    await assert_ledgers_balanced(db_dsn)
