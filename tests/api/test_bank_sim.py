"""`settlement payouts simulate-bank`: the bank's answers for an exported run, taken through the real imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec

from sepa import parse_pain002, read_pain001
from settlement import db
from settlement.config import REPO_ROOT
from tests.api.test_payouts_api import account_balance, approve, download, export, new_run
from tests.world import World, assert_ledgers_balanced


def simulate(
    db_dsn: str, run_id: int, out: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, bytes]]:
    """Run the command; return it and the files it wrote, by suffix."""
    r = subprocess.run(
        [sys.executable, "-m", "settlement", "payouts", "simulate-bank", str(run_id), "--out", str(out), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": db_dsn},
        cwd=REPO_ROOT,
        timeout=120,
    )
    files = {"".join(p.suffixes[-2:]): p.read_bytes() for p in out.glob("*.xml")} if out.exists() else {}
    return r, files


async def test_simulated_bank_files_reject_one_payment_and_book_the_rest(
    client: Any, world: World, db_dsn: str, tmp_path: Path
) -> None:
    run = await export(client, world, (await approve(client, world, (await new_run(client, world))["id"]))["id"])
    (pain001,) = await download(client, world, run)
    payments = [p for b in read_pain001(pain001).blocks for p in b.payments]
    assert len(payments) >= 2
    gone = payments[0]

    r, files = simulate(db_dsn, run["id"], tmp_path, "--reject", gone.end_to_end_id)
    assert r.returncode == 0, r.stderr
    assert sorted(files) == [".camt053.xml", ".pain002.xml"]

    def xml() -> dict[str, str]:
        return {**world.h("gemeente_finance"), "Content-Type": "application/xml"}  # a fresh Idempotency-Key

    s = await client.post("/v1/payment-status-reports", content=files[".pain002.xml"], headers=xml())
    assert s.status_code == 200, s.text
    assert [x["end_to_end_id"] for x in s.json()["rejected"]] == [gone.end_to_end_id]

    st = await client.post("/v1/statements", content=files[".camt053.xml"], headers=xml())
    assert st.status_code == 200, st.text
    body = st.json()
    (summary,) = body["statements"]
    assert summary["unmatched"] == 0 and summary["balance_difference"] == 0
    assert body["payments_booked"] == len(payments) - 1
    assert await account_balance(db_dsn, "in_transit:%", world.ids["gemeente"]) == 0
    await assert_ledgers_balanced(db_dsn)

    # an EndToEndId that is not in the run is refused, and nothing is written
    r, files = simulate(db_dsn, run["id"], tmp_path / "bad", "--reject", "P0000000000-999999")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "P0000000000-999999" in r.stderr
    assert files == {}
    # an unknown run is one clear line, no files
    r, files = simulate(db_dsn, 999_999, tmp_path / "none")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "no payout run 999999" in r.stderr
    assert files == {}


async def test_simulated_credit_without_reference_waits_in_the_queue(
    client: Any, world: World, db_dsn: str, tmp_path: Path
) -> None:
    # README step 12: the simulator's statement can carry money without a reference, for the queue
    run = await export(client, world, (await approve(client, world, (await new_run(client, world))["id"]))["id"])
    r, files = simulate(db_dsn, run["id"], tmp_path, "--credit", "500000")
    assert r.returncode == 0, r.stderr
    assert "500000 cents received without a reference" in r.stdout

    def xml() -> dict[str, str]:
        return {**world.h("gemeente_finance"), "Content-Type": "application/xml"}

    assert (await client.post("/v1/payment-status-reports", content=files[".pain002.xml"], headers=xml())).is_success
    st = await client.post("/v1/statements", content=files[".camt053.xml"], headers=xml())
    assert st.status_code == 200, st.text
    (summary,) = st.json()["statements"]
    assert (summary["unmatched"], summary["balance_difference"]) == (1, 500000), summary
    assert st.json()["runs_settled"] == [run["code"]]
    (q,) = (await client.get("/v1/statement-entries?state=unmatched", headers=world.h("gemeente_finance"))).json()
    assert (q["amount"], q["credit_debit"], q["structured_reference"]) == (500000, "CRDT", None)
    r2 = await client.post(
        f"/v1/statement-entries/{q['id']}/resolve",
        json={"action": "match_top_up", "fund_id": world.ids["kindpakket"], "reason": "Rijksbijdrage, see letter"},
        headers=world.h("gemeente_approver"),
    )
    assert r2.status_code == 200, r2.text
    again = await client.get(f"/v1/statements/{summary['id']}", headers=world.h("gemeente_finance"))
    assert again.json()["balance_difference"] == 0, again.text
    await assert_ledgers_balanced(db_dsn)

    r, _ = simulate(db_dsn, run["id"], tmp_path / "neg", "--credit", "-1")
    assert r.returncode != 0 and "Traceback" not in r.stderr


async def test_simulated_report_speaks_the_version_of_the_file(
    client: Any, world: World, db_dsn: str, tmp_path: Path
) -> None:
    # A bank that takes pain.001.001.03 answers with pain.002.001.03, not .10.
    conn = await db.connect(db_dsn)
    try:
        await conn.execute(
            "UPDATE debtor_accounts SET pain_version = 'pain.001.001.03' WHERE sponsor_id = $1", world.ids["gemeente"]
        )
    finally:
        await conn.close()
    run = await export(client, world, (await approve(client, world, (await new_run(client, world))["id"]))["id"])
    (pain001,) = await download(client, world, run)
    file = read_pain001(pain001)
    assert file.version == "pain.001.001.03"
    gone = file.blocks[0].payments[0]
    r, files = simulate(db_dsn, run["id"], tmp_path, "--reject", gone.end_to_end_id)
    assert r.returncode == 0, r.stderr
    report = parse_pain002(files[".pain002.xml"], strict=True)
    assert (report.version, report.original_msg_name_id) == ("pain.002.001.03", "pain.001.001.03")
    s = await client.post(
        "/v1/payment-status-reports",
        content=files[".pain002.xml"],
        headers={**world.h("gemeente_finance"), "Content-Type": "application/xml"},
    )
    assert s.status_code == 200, s.text
    assert [x["end_to_end_id"] for x in s.json()["rejected"]] == [gone.end_to_end_id]


def test_simulated_statement_books_instant_payments_on_their_own_day() -> None:
    # SCT Inst settles the day it is sent (a Sunday too); a regular block on its execution day.
    from sepa.model import CreditTransferFile, PaymentBlock
    from settlement.bank_sim import _entries
    from tests.sepa.helpers import CREATED, MONDAY, SPONSOR, payment

    sunday = CREATED.date()
    file = CreditTransferFile(
        msg_id="P2026112201-1",
        created_at=CREATED,
        initiating_party="Gemeente Utrecht",
        blocks=(
            PaymentBlock(
                pmt_inf_id="P2026112201-1I", debtor=SPONSOR, execution_date=sunday, instant=True, payments=(payment(1),)
            ),
            PaymentBlock(pmt_inf_id="P2026112201-1R", debtor=SPONSOR, execution_date=MONDAY, payments=(payment(2),)),
        ),
    )
    for batch in (True, False):
        f = msgspec.structs.replace(
            file, blocks=tuple(msgspec.structs.replace(b, batch_booking=batch) for b in file.blocks)
        )
        booked = [(e.booking_date, e.value_date) for e in _entries([f], set(), MONDAY)]
        assert booked == [(sunday, sunday), (MONDAY, MONDAY)], batch
