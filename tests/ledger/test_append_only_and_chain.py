"""History cannot be rewritten through the front door, and rewriting it
through the back door (behind the triggers) is found by verify."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from ledger.model import EntrySpec, transfer_id
from ledger.verify import verify_ledger
from tests.ledger.helpers import apply, bal, counts, entry, pending, posted, setup_ledger


async def five_entries(conn: Any) -> tuple[int, dict[str, int], list[EntrySpec]]:
    lid, a = await setup_ledger(conn)
    es = [
        entry(lid, posted(a["funding"], a["fund"], 1_000), refs={"grant": "G-1"}),
        entry(lid, posted(a["fund"], a["voucher"], 400)),
        entry(lid, pending(a["voucher"], a["payable"], 150, timeout_s=3600), posted(a["fund"], a["voucher"], 100)),
        entry(lid, posted(a["fund"], a["voucher"], 200)),
        entry(lid, posted(a["voucher"], a["payable"], 50)),
    ]
    for e in es:
        await apply(conn, e)
    return lid, a, es


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE journal_entries SET description = 'rewritten'",
        "UPDATE journal_entries SET refs = '{}'",
        "DELETE FROM journal_entries",
        "TRUNCATE journal_entries",
        "TRUNCATE journal_entries CASCADE",
        "UPDATE transfers SET amount = amount + 1",
        "UPDATE transfers SET code = 'x'",
        "DELETE FROM transfers",
        "TRUNCATE transfers",
    ],
)
async def test_entries_and_transfers_are_append_only(conn: Any, sql: str) -> None:
    lid, _, _ = await five_entries(conn)
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await conn.execute(sql)
    assert await counts(conn, lid) == (5, 6)
    assert await conn.fetchval("SELECT sum(amount) FROM transfers WHERE ledger_id = $1", lid) == 1_900
    assert (await verify_ledger(conn, lid)).ok


async def test_the_database_refuses_an_overdraw_written_directly(conn: Any) -> None:
    lid, a, _ = await five_entries(conn)
    # fund: credited 1,000, debited 700; voucher: credited 700, debited 50, 150 held
    assert await bal(conn, a["fund"]) == (700, 1_000, 0, 0)
    assert await bal(conn, a["voucher"]) == (50, 700, 150, 0)
    for sql, args in [
        ("UPDATE accounts SET debits_posted = 1001 WHERE id = $1", (a["fund"],)),
        ("UPDATE accounts SET debits_pending = 301 WHERE id = $1", (a["fund"],)),
        ("UPDATE accounts SET credits_posted = 699 WHERE id = $1", (a["fund"],)),
        ("UPDATE accounts SET debits_pending = 651 WHERE id = $1", (a["voucher"],)),
    ]:
        with pytest.raises(asyncpg.CheckViolationError, match="exceeds_credits"):
            await conn.execute(sql, *args)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE accounts SET debits_posted = -1 WHERE id = $1", a["payable"])
    with pytest.raises(asyncpg.CheckViolationError, match="flags_are_mutually_exclusive"):
        await conn.execute(
            "INSERT INTO accounts (ledger_id, code, name, debits_must_not_exceed_credits, "
            "credits_must_not_exceed_debits) VALUES ($1, 'both', 'both', true, true)",
            lid,
        )
    transit = await conn.fetchval(
        "INSERT INTO accounts (ledger_id, code, name, credits_must_not_exceed_debits) "
        "VALUES ($1, 'in_transit:x', 'x', true) RETURNING id",
        lid,
    )
    with pytest.raises(asyncpg.CheckViolationError, match="exceeds_debits"):
        await conn.execute("UPDATE accounts SET credits_posted = 1 WHERE id = $1", transit)
    # the exact limit is allowed
    await conn.execute("UPDATE accounts SET debits_pending = 650 WHERE id = $1", a["voucher"])
    assert await bal(conn, a["voucher"]) == (50, 700, 650, 0)


async def test_verify_is_ok_on_a_good_ledger(conn: Any) -> None:
    lid, _, _ = await five_entries(conn)
    report = await verify_ledger(conn, lid)
    assert (report.ok, report.entries, report.first_broken_seq, report.problem) == (True, 5, None, None)
    empty, _ = await setup_ledger(conn)
    assert (await verify_ledger(conn, empty)).ok
    missing = await verify_ledger(conn, 999_999)
    assert (missing.ok, missing.problem) == (False, "ledger_not_found")


async def tamper(conn: Any, sql: str, *args: Any) -> None:
    """Write behind the append-only triggers' back, as a superuser could."""
    await conn.execute("SET session_replication_role = replica")
    try:
        status = await conn.execute(sql, *args)
        assert not status.endswith(" 0"), status
    finally:
        await conn.execute("SET session_replication_role = DEFAULT")


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("UPDATE transfers SET amount = amount + 1 WHERE entry_id = $1", "changed"),
        (
            "UPDATE transfers SET debit_account_id = credit_account_id, credit_account_id = debit_account_id "
            "WHERE entry_id = $1",
            "changed",
        ),
        ("UPDATE journal_entries SET description = 'rewritten' WHERE id = $1", "changed"),
        ('UPDATE journal_entries SET refs = \'{"k": "v"}\' WHERE id = $1', "changed"),
        ("UPDATE journal_entries SET value_date = value_date + 1 WHERE id = $1", "changed"),
        ("UPDATE journal_entries SET created_at = created_at + interval '1 microsecond' WHERE id = $1", "changed"),
        ("DELETE FROM transfers WHERE n = (SELECT max(n) FROM transfers WHERE entry_id = $1)", "changed"),
        ("UPDATE journal_entries SET prev_hash = hash WHERE id = $1", "prev_hash"),
        ("DELETE FROM journal_entries WHERE id = $1", "entry 3 is missing"),
    ],
)
async def test_tampering_with_the_third_of_five_entries_names_seq_3(conn: Any, sql: str, problem: str) -> None:
    lid, _, es = await five_entries(conn)
    await tamper(conn, sql, es[2].id)
    report = await verify_ledger(conn, lid)
    assert (report.ok, report.first_broken_seq, report.entries) == (False, 3, 2)
    assert problem in (report.problem or "")
    # the entry named is the broken one, or (if it is gone) the one found in its place
    named = es[3] if "missing" in problem else es[2]
    assert report.first_broken_entry == str(named.id)


async def test_an_added_transfer_or_a_dropped_last_entry_is_found(conn: Any) -> None:
    lid, a, es = await five_entries(conn)
    await tamper(
        conn,
        "INSERT INTO transfers (id, entry_id, ledger_id, debit_account_id, credit_account_id, amount, kind, "
        "created_at) SELECT $2, id, ledger_id, $3, $4, 1, 'posted', created_at FROM journal_entries WHERE id = $1",
        es[1].id,
        transfer_id(es[1].id, 5),
        a["funding"],
        a["payable"],
    )
    report = await verify_ledger(conn, lid)
    assert (report.ok, report.first_broken_seq, report.first_broken_entry) == (False, 2, str(es[1].id))

    lid2, _, es2 = await five_entries(conn)
    await tamper(conn, "DELETE FROM journal_entries WHERE id = $1", es2[4].id)
    report = await verify_ledger(conn, lid2)
    assert (report.ok, report.entries, report.first_broken_seq) == (False, 4, 5)
    assert "head says 5" in (report.problem or "")


async def test_a_transfer_moved_to_another_day_or_ledger_is_found(conn: Any) -> None:
    # The trial balance, its day roll-ups and the fund report date a transfer by its own created_at
    # and place it by its own ledger_id: copies of the entry's, which the hash does not cover itself.
    lid, _, es = await five_entries(conn)
    await tamper(conn, "UPDATE transfers SET created_at = created_at - interval '1 day' WHERE entry_id = $1", es[2].id)
    report = await verify_ledger(conn, lid)
    assert (report.ok, report.first_broken_seq, report.first_broken_entry) == (False, 3, str(es[2].id))

    lid2, _, es2 = await five_entries(conn)
    other, _ = await setup_ledger(conn)
    await tamper(conn, "UPDATE transfers SET ledger_id = $2 WHERE entry_id = $1", es2[3].id, other)
    report = await verify_ledger(conn, lid2)
    assert (report.ok, report.first_broken_seq, report.first_broken_entry) == (False, 4, str(es2[3].id))


async def test_a_transfer_outside_the_chain_is_found(conn: Any) -> None:
    # A transfer of the ledger whose entry is not in the chain still moves the ledger's balances
    # (trial balance, roll-ups): verify must not call such a ledger intact.
    lid, a, _ = await five_entries(conn)
    await tamper(
        conn,
        "INSERT INTO transfers (id, entry_id, ledger_id, debit_account_id, credit_account_id, amount, kind, "
        "created_at) VALUES ($1, $1, $2, $3, $4, 1, 'posted', now())",
        uuid.uuid4(),
        lid,
        a["funding"],
        a["payable"],
    )
    report = await verify_ledger(conn, lid)
    assert not report.ok
    assert "outside the chain" in (report.problem or "")


async def test_verify_reads_one_snapshot_while_entries_are_written(conn: Any, db_dsn: str) -> None:
    # `ledger verify` on a live system: an entry committed after verify read the ledger's head and
    # while it walks the chain must not make an intact ledger look broken.
    lid, a, _ = await five_entries(conn)
    writer = await asyncpg.connect(db_dsn)
    from ledger import codecs

    await codecs.init_connection(writer)

    class WritesDuringTheWalk:
        """The verifying connection; its first chain read lets another session commit an entry first."""

        def __init__(self) -> None:
            self.wrote = False

        def __getattr__(self, name: str) -> Any:
            return getattr(conn, name)

        async def fetch(self, sql: str, *args: Any) -> Any:
            if not self.wrote and "FROM journal_entries" in sql:
                self.wrote = True
                await apply(writer, entry(lid, posted(a["fund"], a["voucher"], 7)))
            return await conn.fetch(sql, *args)

    try:
        proxy = WritesDuringTheWalk()
        report = await verify_ledger(proxy, lid)
        assert proxy.wrote
        assert (report.ok, report.entries, report.problem) == (True, 5, None)
        assert (await verify_ledger(conn, lid)).entries == 6
    finally:
        await writer.close()
