"""Ledger rules, read like a ledger: short scenarios with concrete numbers."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from ledger.engine import apply_batch
from ledger.errors import BatchTooLarge, NotInTransaction
from ledger.holds import expire_holds
from ledger.model import MAX_BATCH_ENTRIES, transfer_id
from ledger.queries import balances, history, trial_balance
from ledger.verify import verify_ledger
from tests.ledger.helpers import apply, entry, pending, post, posted, setup_ledger, void


async def totals(conn: Any, ledger_id: int) -> tuple[int, int, int, int]:
    r = await conn.fetchrow(
        "SELECT sum(debits_posted), sum(credits_posted), sum(debits_pending), sum(credits_pending) FROM accounts "
        "WHERE ledger_id = $1",
        ledger_id,
    )
    return tuple(int(x) for x in r)  # type: ignore[return-value]


async def bal(conn: Any, account_id: int) -> tuple[int, int, int, int]:
    b = (await balances(conn, [account_id]))[account_id]
    return b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending


async def assert_balanced(conn: Any, ledger_id: int) -> None:
    dp, cp, dpe, cpe = await totals(conn, ledger_id)
    assert dp == cp
    assert dpe == cpe


async def test_posted_limits_and_idempotency(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    [r] = await apply(conn, entry(lid, posted(a["funding"], a["fund"], 10_000)))
    assert r.result == "ok" and r.seq == 1
    e = entry(lid, posted(a["fund"], a["voucher"], 6_000))
    [r1] = await apply(conn, e)
    [r2] = await apply(conn, e)
    assert (r1.result, r2.result, r2.seq) == ("ok", "exists", r1.seq)
    changed = entry(lid, posted(a["fund"], a["voucher"], 6_001), eid=e.id)
    [r3] = await apply(conn, changed)
    assert r3.result == "exists_with_different_transfers"
    [r4] = await apply(conn, entry(lid, posted(a["fund"], a["voucher"], 6_000), eid=e.id, desc="other"))
    assert r4.result == "exists_with_different_description"
    [r5] = await apply(conn, entry(lid, posted(a["fund"], a["voucher"], 4_001)))
    assert r5.result == "exceeds_credits"
    assert await bal(conn, a["fund"]) == (6_000, 10_000, 0, 0)
    await assert_balanced(conn, lid)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda a: posted(a["fund"], a["voucher"], 0), "amount_must_be_positive"),
        (lambda a: posted(a["fund"], a["voucher"], -5), "amount_must_be_positive"),
        (lambda a: posted(a["fund"], a["fund"], 5), "accounts_must_be_different"),
        (lambda a: posted(999_999, a["fund"], 5), "debit_account_not_found"),
        (lambda a: posted(a["fund"], 999_999, 5), "credit_account_not_found"),
        (lambda a: pending(a["voucher"], a["payable"], 5, timeout_s=0), "timeout_out_of_range"),
        (lambda a: post(uuid.uuid4()), "pending_transfer_not_found"),
    ],
)
async def test_rule_codes(conn: Any, make: Any, code: str) -> None:
    lid, a = await setup_ledger(conn)
    [r] = await apply(conn, entry(lid, make(a)))
    assert r.result == code
    assert await totals(conn, lid) == (0, 0, 0, 0)


async def test_ledgers_must_match_and_linked_entries(conn: Any) -> None:
    l1, a = await setup_ledger(conn)
    l2, b = await setup_ledger(conn)
    [r] = await apply(conn, entry(l1, posted(a["funding"], b["fund"], 5)))
    assert r.result == "ledgers_must_match"
    await apply(conn, entry(l1, posted(a["funding"], a["fund"], 700)), entry(l2, posted(b["funding"], b["fund"], 300)))
    # a co-funded spend: both ledgers or neither
    ok = await apply(
        conn,
        entry(l1, posted(a["fund"], a["voucher"], 700), link=1),
        entry(l2, posted(b["fund"], b["voucher"], 300), link=1),
    )
    assert [x.result for x in ok] == ["ok", "ok"]
    bad = await apply(
        conn,
        entry(l1, posted(a["voucher"], a["payable"], 700), link=2),
        entry(l2, posted(b["voucher"], b["payable"], 301), link=2),
    )
    assert [x.result for x in bad] == ["linked_event_failed", "exceeds_credits"]
    assert await bal(conn, a["voucher"]) == (0, 700, 0, 0)
    await assert_balanced(conn, l1)
    await assert_balanced(conn, l2)


async def test_failing_transfer_fails_its_whole_entry(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    [r] = await apply(conn, entry(lid, posted(a["funding"], a["fund"], 100), posted(a["fund"], a["voucher"], 101)))
    assert r.result == "exceeds_credits"
    assert r.transfer_results == ("linked_event_failed", "exceeds_credits")
    assert await totals(conn, lid) == (0, 0, 0, 0)


async def test_two_phase_post_partial_void_and_expiry(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    await apply(
        conn, entry(lid, posted(a["funding"], a["fund"], 10_000)), entry(lid, posted(a["fund"], a["voucher"], 10_000))
    )
    h1 = entry(lid, pending(a["voucher"], a["payable"], 6_000, timeout_s=3600))
    await apply(conn, h1)
    assert await bal(conn, a["voucher"]) == (0, 10_000, 6_000, 0)
    [r] = await apply(conn, entry(lid, pending(a["voucher"], a["payable"], 4_001)))
    assert r.result == "exceeds_credits"
    p1 = transfer_id(h1.id, 0)
    [r] = await apply(conn, entry(lid, post(p1, 6_001)))
    assert r.result == "exceeds_pending_transfer_amount"
    [r] = await apply(conn, entry(lid, post(p1, 5_500)))
    assert r.result == "ok"
    assert await bal(conn, a["voucher"]) == (5_500, 10_000, 0, 0)  # rest released
    [r] = await apply(conn, entry(lid, post(p1)))
    assert r.result == "pending_transfer_already_posted"
    h2 = entry(lid, pending(a["voucher"], a["payable"], 1_000, timeout_s=3600))
    await apply(conn, h2)
    [r] = await apply(conn, entry(lid, void(transfer_id(h2.id, 0))))
    assert r.result == "ok"
    [r] = await apply(conn, entry(lid, post(transfer_id(h2.id, 0))))
    assert r.result == "pending_transfer_already_voided"
    h3 = entry(lid, pending(a["voucher"], a["payable"], 2_000, timeout_s=3600))
    await apply(conn, h3)
    p3 = transfer_id(h3.id, 0)
    await conn.execute("UPDATE holds SET expires_at = now() - interval '1 second' WHERE transfer_id = $1", p3)
    [r] = await apply(conn, entry(lid, post(p3)))
    assert r.result == "pending_transfer_expired"
    async with conn.transaction():
        assert await expire_holds(conn) == [p3]
    async with conn.transaction():
        assert await expire_holds(conn) == []
    assert await bal(conn, a["voucher"]) == (5_500, 10_000, 0, 0)
    await assert_balanced(conn, lid)
    assert (await verify_ledger(conn, lid)).ok


async def test_batch_guards(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    with pytest.raises(NotInTransaction):
        await apply_batch(conn, [entry(lid, posted(a["funding"], a["fund"], 1))])
    with pytest.raises(BatchTooLarge):
        async with conn.transaction():
            await apply_batch(conn, [entry(lid, posted(a["funding"], a["fund"], 1))] * (MAX_BATCH_ENTRIES + 1))


async def test_append_only_and_database_limits(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    await apply(conn, entry(lid, posted(a["funding"], a["fund"], 100)))
    for sql in [
        "UPDATE transfers SET amount = 1",
        "DELETE FROM transfers",
        "UPDATE journal_entries SET description = ''",
        "DELETE FROM journal_entries",
        "TRUNCATE transfers",
        "TRUNCATE journal_entries CASCADE",
    ]:
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute(sql)
    # limits hold even for code that skips the engine
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE accounts SET debits_posted = 101 WHERE id = $1", a["fund"])


async def test_verify_names_the_first_broken_link(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    es = [entry(lid, posted(a["funding"], a["fund"], 100 + i)) for i in range(5)]
    for e in es:
        await apply(conn, e)
    assert (await verify_ledger(conn, lid)).ok
    await conn.execute("SET session_replication_role = replica")  # behind the triggers' back
    await conn.execute("UPDATE transfers SET amount = 999 WHERE entry_id = $1", es[2].id)
    await conn.execute("SET session_replication_role = DEFAULT")
    report = await verify_ledger(conn, lid)
    assert not report.ok
    assert report.first_broken_seq == 3
    assert report.first_broken_entry == str(es[2].id)


async def test_balances_as_of_history_and_trial_balance(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    [r1] = await apply(conn, entry(lid, posted(a["funding"], a["fund"], 1_000)))
    h = entry(lid, pending(a["fund"], a["voucher"], 300, timeout_s=3600))
    [r2] = await apply(conn, h)
    [r3] = await apply(conn, entry(lid, post(transfer_id(h.id, 0), 200)))
    assert r1.created_at and r2.created_at and r3.created_at
    at1 = (await balances(conn, [a["fund"]], as_of=r1.created_at))[a["fund"]]
    at2 = (await balances(conn, [a["fund"]], as_of=r2.created_at))[a["fund"]]
    now = (await balances(conn, [a["fund"]]))[a["fund"]]
    assert (at1.credits_posted, at1.debits_posted, at1.debits_pending) == (1_000, 0, 0)
    assert (at2.credits_posted, at2.debits_posted, at2.debits_pending) == (1_000, 0, 300)
    assert (now.credits_posted, now.debits_posted, now.debits_pending) == (1_000, 200, 0)
    lines, cursor = await history(conn, a["fund"], limit=1)
    assert [x.running_balance for x in lines] == [1_000] and cursor is not None
    lines, cursor = await history(conn, a["fund"], after=cursor, limit=10)
    assert [x.running_balance for x in lines] == [800] and cursor is None
    tb = await trial_balance(conn, lid)
    assert tb.balanced and tb.total_debit == 1_000
    tb1 = await trial_balance(conn, lid, as_of=r1.created_at)
    assert tb1.balanced and tb1.total_debit == 1_000
