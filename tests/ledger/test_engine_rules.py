"""Every reachable result code of the engine, one short scenario each.

Accounts (tests.ledger.helpers.setup_ledger): funding (no limit), fund and
voucher (debits must not exceed credits), payable (no limit). Every scenario
ends by checking double entry over the whole ledger.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from msgspec.structs import replace

from ledger.accounts import create_ledger
from ledger.engine import apply_batch
from ledger.errors import BatchTooLarge, NotInTransaction
from ledger.holds import expire_holds, expiry_entry_id
from ledger.model import (
    MAX_BATCH_ENTRIES,
    MAX_BATCH_TRANSFERS,
    MAX_DESCRIPTION,
    MAX_HOLD_TIMEOUT_S,
    MAX_REF_LENGTH,
    MAX_REFS,
    MAX_TRANSFERS_PER_ENTRY,
    TransferSpec,
    transfer_id,
)
from ledger.money import MAX_AMOUNT
from ledger.verify import verify_ledger
from tests.ledger.helpers import (
    TODAY,
    add_accounts,
    apply,
    assert_balanced,
    bal,
    counts,
    entry,
    expire,
    force_expiry,
    pending,
    post,
    posted,
    setup_ledger,
    totals,
    void,
)

I64 = 2**63 - 1


async def funded(conn: Any, amount: int = 10_000) -> tuple[int, dict[str, int]]:
    """A ledger whose fund was granted ``amount`` and whose voucher holds it all."""
    lid, a = await setup_ledger(conn)
    rs = await apply(
        conn,
        entry(lid, posted(a["funding"], a["fund"], amount)),
        entry(lid, posted(a["fund"], a["voucher"], amount)),
    )
    assert [r.result for r in rs] == ["ok", "ok"]
    return lid, a


# --- ok and idempotency --------------------------------------------------------------


async def test_ok_records_the_entry_and_moves_the_balances(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    [r] = await apply(conn, entry(lid, posted(a["funding"], a["fund"], 10_000)))
    assert (r.result, r.transfer_results, r.seq) == ("ok", ("ok",), 1)
    assert r.created_at is not None
    assert await bal(conn, a["funding"]) == (10_000, 0, 0, 0)
    assert await bal(conn, a["fund"]) == (0, 10_000, 0, 0)
    assert await counts(conn, lid) == (1, 1)
    await assert_balanced(conn, lid)


async def test_replay_returns_the_original_result_and_changes_nothing(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    e = entry(lid, posted(a["funding"], a["fund"], 10_000), refs={"grant": "G-1"})
    [first] = await apply(conn, e)
    [second] = await apply(conn, entry(lid, posted(a["funding"], a["fund"], 1)))
    [again] = await apply(conn, e)
    assert (first.result, second.result, again.result) == ("ok", "ok", "exists")
    assert (again.seq, again.created_at) == (first.seq, first.created_at) == (1, first.created_at)
    assert await bal(conn, a["fund"]) == (0, 10_001, 0, 0)
    assert await counts(conn, lid) == (2, 2)
    await assert_balanced(conn, lid)


@pytest.mark.parametrize(
    ("what", "code"),
    [
        ("description", "exists_with_different_description"),
        ("refs", "exists_with_different_refs"),
        ("value_date", "exists_with_different_value_date"),
        ("transfers", "exists_with_different_transfers"),
        ("ledger", "exists_with_different_ledger"),
    ],
)
async def test_reused_id_with_different_content_is_refused(conn: Any, what: str, code: str) -> None:
    lid, a = await setup_ledger(conn)
    other, b = await setup_ledger(conn)
    e = entry(lid, posted(a["funding"], a["fund"], 10_000), desc="grant", refs={"grant": "G-1"})
    [r] = await apply(conn, e)
    assert r.result == "ok"
    reused = {
        "description": replace(e, description="another text"),
        "refs": replace(e, refs={"grant": "G-2"}),
        "value_date": replace(e, value_date=TODAY + timedelta(days=1)),
        "transfers": replace(e, transfers=(posted(a["funding"], a["fund"], 10_001),)),
        "ledger": replace(e, ledger_id=other, transfers=(posted(b["funding"], b["fund"], 10_000),)),
    }[what]
    [r2] = await apply(conn, reused)
    assert (r2.result, r2.seq) == (code, None)
    assert await bal(conn, a["fund"]) == (0, 10_000, 0, 0)
    assert await totals(conn, other) == (0, 0, 0, 0)
    assert await counts(conn, lid) == (1, 1)
    await assert_balanced(conn, lid)


async def test_repeat_of_an_id_inside_one_batch_applies_once(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    e = entry(lid, posted(a["funding"], a["fund"], 700))
    twin = entry(lid, posted(a["funding"], a["fund"], 700), eid=e.id, desc="other text")
    rs = await apply(conn, e, e, twin)
    assert [r.result for r in rs] == ["ok", "exists", "exists_with_different_description"]
    assert rs[1].seq == rs[0].seq == 1  # the repeat names the entry it repeats
    assert rs[1].created_at == rs[0].created_at
    assert await bal(conn, a["fund"]) == (0, 700, 0, 0)
    assert await counts(conn, lid) == (1, 1)
    # a repeat of a refused entry is refused the same way (nothing was stored)
    bad = entry(lid, posted(a["fund"], a["voucher"], 701))
    rs = await apply(conn, bad, bad)
    assert [(r.result, r.transfer_results) for r in rs] == [("exceeds_credits", ("exceeds_credits",))] * 2
    assert await counts(conn, lid) == (1, 1)
    await assert_balanced(conn, lid)


async def test_a_repeat_of_a_refused_entry_fails_its_own_link_group(conn: Any) -> None:
    """An in-batch repeat takes the refusal of the entry it repeats; in a link group,
    that refusal fails the group like any other member's."""
    lid, a = await funded(conn, 100)
    short = entry(lid, posted(a["voucher"], a["payable"], 101))  # refused: exceeds_credits
    too_long = entry(lid, posted(a["voucher"], a["payable"], 1), desc="x" * (MAX_DESCRIPTION + 1))
    for refused, code in [(short, "exceeds_credits"), (too_long, "description_too_long")]:
        grant = entry(lid, posted(a["funding"], a["fund"], 7), link=5)
        rs = await apply(conn, refused, replace(refused, link_group=5), grant)
        assert [r.result for r in rs] == [code, code, "linked_event_failed"]
        # the repeat as the group's last member: the members before it are rolled back
        grant = entry(lid, posted(a["funding"], a["fund"], 7), link=6)
        rs = await apply(conn, refused, grant, replace(refused, link_group=6))
        assert [r.result for r in rs] == [code, "linked_event_failed", code]
    assert await bal(conn, a["fund"]) == (100, 100, 0, 0)
    assert await bal(conn, a["voucher"]) == (0, 100, 0, 0)
    assert await counts(conn, lid) == (2, 2)
    await assert_balanced(conn, lid)


# --- rules on a single transfer ------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda a: posted(a["funding"], a["fund"], 0), "amount_must_be_positive"),
        (lambda a: posted(a["funding"], a["fund"], -5), "amount_must_be_positive"),
        (lambda a: pending(a["funding"], a["fund"], 0), "amount_must_be_positive"),
        (lambda a: TransferSpec(debit_account_id=a["funding"], credit_account_id=a["fund"]), "amount_must_be_positive"),
        (lambda a: posted(a["funding"], a["fund"], MAX_AMOUNT + 1), "amount_exceeds_maximum"),
        (lambda a: posted(a["fund"], a["fund"], 5), "accounts_must_be_different"),
        (lambda a: posted(999_999_999, a["fund"], 5), "debit_account_not_found"),
        (lambda a: posted(a["funding"], 999_999_999, 5), "credit_account_not_found"),
        (
            lambda a: TransferSpec(
                debit_account_id=a["funding"], credit_account_id=a["fund"], amount=5, pending_id=uuid.uuid4()
            ),
            "pending_id_must_be_null",
        ),
        (lambda a: TransferSpec(kind="post_pending"), "pending_id_must_not_be_null"),
        (lambda a: pending(a["funding"], a["fund"], 5, timeout_s=0), "timeout_out_of_range"),
        (lambda a: pending(a["funding"], a["fund"], 5, timeout_s=-1), "timeout_out_of_range"),
        (lambda a: pending(a["funding"], a["fund"], 5, timeout_s=MAX_HOLD_TIMEOUT_S + 1), "timeout_out_of_range"),
        (
            lambda a: TransferSpec(debit_account_id=a["funding"], credit_account_id=a["fund"], amount=5, timeout_s=60),
            "timeout_reserved_for_pending_transfer",
        ),
        (lambda a: post(uuid.uuid4()), "pending_transfer_not_found"),
        (lambda a: void(uuid.uuid4()), "pending_transfer_not_found"),
    ],
)
async def test_rule_refuses_and_writes_nothing(conn: Any, make: Any, code: str) -> None:
    lid, a = await setup_ledger(conn)
    [r] = await apply(conn, entry(lid, make(a)))
    assert (r.result, r.transfer_results, r.seq) == (code, (code,), None)
    assert await totals(conn, lid) == (0, 0, 0, 0)
    assert await counts(conn, lid) == (0, 0)


async def test_the_largest_amount_is_accepted(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    [r] = await apply(conn, entry(lid, posted(a["funding"], a["payable"], MAX_AMOUNT)))
    assert r.result == "ok"
    assert await bal(conn, a["payable"]) == (0, MAX_AMOUNT, 0, 0)
    await assert_balanced(conn, lid)


async def test_ledgers_must_match(conn: Any) -> None:
    l1, a = await setup_ledger(conn)
    l2, b = await setup_ledger(conn)
    rs = await apply(
        conn,
        entry(l1, posted(a["funding"], b["fund"], 5)),
        entry(l1, posted(b["funding"], a["fund"], 5)),
        entry(l1, posted(b["funding"], b["fund"], 5)),
    )
    assert [r.result for r in rs] == ["ledgers_must_match"] * 3
    assert await totals(conn, l1) == await totals(conn, l2) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda lid: entry(lid, posted(1, 2, 5), desc="x" * (MAX_DESCRIPTION + 1)), "description_too_long"),
        (lambda lid: entry(lid, posted(1, 2, 5), refs={str(i): "r" for i in range(MAX_REFS + 1)}), "too_many_refs"),
        (lambda lid: entry(lid, posted(1, 2, 5), refs={"k": "r" * (MAX_REF_LENGTH + 1)}), "ref_too_long"),
        (lambda lid: entry(lid), "transfers_must_not_be_empty"),
        (lambda lid: entry(lid, *[posted(1, 2, 1)] * (MAX_TRANSFERS_PER_ENTRY + 1)), "too_many_transfers"),
        (lambda lid: entry(999_999, posted(1, 2, 5)), "ledger_not_found"),
    ],
)
async def test_entry_shape_rules(conn: Any, make: Any, code: str) -> None:
    lid, a = await setup_ledger(conn)
    assert (a["funding"], a["fund"]) == (1, 2)  # fresh database: ids are predictable
    [r] = await apply(conn, make(lid))
    assert (r.result, r.seq) == (code, None)
    assert await totals(conn, lid) == (0, 0, 0, 0)
    assert await counts(conn, lid) == (0, 0)


# --- limits ---------------------------------------------------------------------------


async def test_exceeds_credits_on_a_debit_limited_account(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    await apply(conn, entry(lid, posted(a["funding"], a["fund"], 100)))
    [r] = await apply(conn, entry(lid, posted(a["fund"], a["voucher"], 101)))
    assert r.result == "exceeds_credits"
    assert await bal(conn, a["fund"]) == (0, 100, 0, 0)
    [r] = await apply(conn, entry(lid, posted(a["fund"], a["voucher"], 100)))  # exactly all of it
    assert r.result == "ok"
    [r] = await apply(conn, entry(lid, posted(a["fund"], a["voucher"], 1)))
    assert r.result == "exceeds_credits"
    assert await bal(conn, a["fund"]) == (100, 100, 0, 0)
    assert await bal(conn, a["voucher"]) == (0, 100, 0, 0)
    await assert_balanced(conn, lid)


async def test_exceeds_debits_on_a_credit_limited_account(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    c = await add_accounts(conn, lid, ("in_transit:NL01", "cr"))
    transit = c["in_transit:NL01"]
    [r] = await apply(conn, entry(lid, posted(a["payable"], transit, 1)))
    assert r.result == "exceeds_debits"
    await apply(conn, entry(lid, posted(transit, a["payable"], 500)))
    [r] = await apply(conn, entry(lid, posted(a["payable"], transit, 501)))
    assert r.result == "exceeds_debits"
    [r] = await apply(conn, entry(lid, pending(a["payable"], transit, 501)))
    assert r.result == "exceeds_debits"
    [r] = await apply(conn, entry(lid, pending(a["payable"], transit, 300)))
    assert r.result == "ok"
    [r] = await apply(conn, entry(lid, posted(a["payable"], transit, 201)))  # pending credits count too
    assert r.result == "exceeds_debits"
    [r] = await apply(conn, entry(lid, posted(a["payable"], transit, 200)))
    assert r.result == "ok"
    assert await bal(conn, transit) == (500, 200, 0, 300)
    await assert_balanced(conn, lid)


# --- two-phase transfers --------------------------------------------------------------


async def test_pending_then_post_in_full(conn: Any) -> None:
    lid, a = await funded(conn)
    h = entry(lid, pending(a["voucher"], a["payable"], 6_000, timeout_s=3600))
    [r] = await apply(conn, h)
    assert r.result == "ok"
    assert await bal(conn, a["voucher"]) == (0, 10_000, 6_000, 0)
    assert await bal(conn, a["payable"]) == (0, 0, 0, 6_000)
    [r] = await apply(conn, entry(lid, pending(a["voucher"], a["payable"], 4_001)))
    assert r.result == "exceeds_credits"  # the hold reserves: available is 4,000
    await assert_balanced(conn, lid)
    [r] = await apply(conn, entry(lid, post(transfer_id(h.id, 0))))
    assert r.result == "ok"
    assert await bal(conn, a["voucher"]) == (6_000, 10_000, 0, 0)
    assert await bal(conn, a["payable"]) == (0, 6_000, 0, 0)
    state = await conn.fetchrow("SELECT state, resolved_by FROM holds WHERE transfer_id = $1", transfer_id(h.id, 0))
    assert state["state"] == "posted"
    await assert_balanced(conn, lid)


async def test_partial_post_releases_the_rest(conn: Any) -> None:
    lid, a = await funded(conn)
    h = entry(lid, pending(a["voucher"], a["payable"], 6_000, timeout_s=3600))
    await apply(conn, h)
    pid = transfer_id(h.id, 0)
    [r] = await apply(conn, entry(lid, post(pid, 6_001)))
    assert r.result == "exceeds_pending_transfer_amount"
    [r] = await apply(conn, entry(lid, post(pid, 0)))
    assert r.result == "amount_must_be_positive"
    [r] = await apply(conn, entry(lid, post(pid, 2_500)))
    assert r.result == "ok"
    assert await bal(conn, a["voucher"]) == (2_500, 10_000, 0, 0)
    assert await bal(conn, a["payable"]) == (0, 2_500, 0, 0)
    assert await totals(conn, lid) == (22_500, 22_500, 0, 0)
    await assert_balanced(conn, lid)


async def test_void_releases_everything(conn: Any) -> None:
    lid, a = await funded(conn)
    h = entry(lid, pending(a["voucher"], a["payable"], 1_000))
    await apply(conn, h)
    pid = transfer_id(h.id, 0)
    [r] = await apply(conn, entry(lid, TransferSpec(kind="void_pending", pending_id=pid, amount=999)))
    assert r.result == "amount_must_equal_pending"
    [r] = await apply(conn, entry(lid, void(pid)))
    assert r.result == "ok"
    assert await bal(conn, a["voucher"]) == (0, 10_000, 0, 0)
    assert await bal(conn, a["payable"]) == (0, 0, 0, 0)
    await assert_balanced(conn, lid)


async def test_a_hold_resolves_once(conn: Any) -> None:
    lid, a = await funded(conn)
    h1 = entry(lid, pending(a["voucher"], a["payable"], 1_000))
    h2 = entry(lid, pending(a["voucher"], a["payable"], 2_000))
    await apply(conn, h1, h2)
    p1, p2 = transfer_id(h1.id, 0), transfer_id(h2.id, 0)
    assert [r.result for r in await apply(conn, entry(lid, post(p1)))] == ["ok"]
    assert [r.result for r in await apply(conn, entry(lid, post(p1)))] == ["pending_transfer_already_posted"]
    assert [r.result for r in await apply(conn, entry(lid, void(p1)))] == ["pending_transfer_already_posted"]
    assert [r.result for r in await apply(conn, entry(lid, void(p2)))] == ["ok"]
    assert [r.result for r in await apply(conn, entry(lid, post(p2)))] == ["pending_transfer_already_voided"]
    assert [r.result for r in await apply(conn, entry(lid, void(p2)))] == ["pending_transfer_already_voided"]
    # inside one batch: the second resolution sees the first
    h3 = entry(lid, pending(a["voucher"], a["payable"], 500))
    p3 = transfer_id(h3.id, 0)
    rs = await apply(conn, h3, entry(lid, post(p3, 100)), entry(lid, void(p3)))
    assert [r.result for r in rs] == ["ok", "ok", "pending_transfer_already_posted"]
    assert await bal(conn, a["voucher"]) == (1_100, 10_000, 0, 0)
    assert await bal(conn, a["payable"]) == (0, 1_100, 0, 0)
    await assert_balanced(conn, lid)


async def test_post_must_name_the_holds_accounts(conn: Any) -> None:
    lid, a = await funded(conn)
    h = entry(lid, pending(a["voucher"], a["payable"], 1_000))
    await apply(conn, h)
    pid = transfer_id(h.id, 0)
    [r] = await apply(conn, entry(lid, TransferSpec(kind="post_pending", pending_id=pid, debit_account_id=a["fund"])))
    assert r.result == "pending_transfer_has_different_debit_account"
    [r] = await apply(conn, entry(lid, TransferSpec(kind="post_pending", pending_id=pid, credit_account_id=a["fund"])))
    assert r.result == "pending_transfer_has_different_credit_account"
    [r] = await apply(conn, entry(lid, TransferSpec(kind="post_pending", pending_id=pid, timeout_s=5)))
    assert r.result == "timeout_reserved_for_pending_transfer"
    l2, _ = await setup_ledger(conn)
    [r] = await apply(conn, entry(l2, post(pid)))
    assert r.result == "ledgers_must_match"
    assert await bal(conn, a["voucher"]) == (0, 10_000, 1_000, 0)
    await assert_balanced(conn, lid)


async def test_expired_hold_cannot_be_posted_and_is_released_once(conn: Any) -> None:
    lid, a = await funded(conn)
    h = entry(lid, pending(a["voucher"], a["payable"], 3_000, timeout_s=3600))
    keep = entry(lid, pending(a["voucher"], a["payable"], 1_000, timeout_s=3600))
    await apply(conn, h, keep)
    pid = transfer_id(h.id, 0)
    [r] = await apply(conn, entry(lid, expire(pid)))
    assert r.result == "pending_transfer_not_expired"
    await force_expiry(conn, pid)
    assert [r.result for r in await apply(conn, entry(lid, post(pid)))] == ["pending_transfer_expired"]
    assert [r.result for r in await apply(conn, entry(lid, void(pid)))] == ["pending_transfer_expired"]
    assert await bal(conn, a["voucher"]) == (0, 10_000, 4_000, 0)  # still reserved until swept
    async with conn.transaction():
        assert await expire_holds(conn) == [pid]
    async with conn.transaction():
        assert await expire_holds(conn) == []
    assert await bal(conn, a["voucher"]) == (0, 10_000, 1_000, 0)
    assert await bal(conn, a["payable"]) == (0, 0, 0, 1_000)
    assert await conn.fetchval("SELECT state FROM holds WHERE transfer_id = $1", pid) == "expired"
    row = await conn.fetchrow(
        "SELECT e.id, e.refs, t.kind, t.amount FROM journal_entries e JOIN transfers t ON t.entry_id = e.id "
        "WHERE t.pending_id = $1",
        pid,
    )
    assert (row["id"], row["refs"], row["kind"], row["amount"]) == (
        expiry_entry_id(pid),
        {"hold": str(pid)},
        "expire_pending",
        3_000,
    )
    assert [r.result for r in await apply(conn, entry(lid, post(pid)))] == ["pending_transfer_expired"]
    await assert_balanced(conn, lid)
    assert (await verify_ledger(conn, lid)).ok


# --- entries and link groups ----------------------------------------------------------


async def test_a_failing_transfer_fails_its_whole_entry(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    [r] = await apply(
        conn,
        entry(
            lid,
            posted(a["funding"], a["fund"], 100),
            posted(a["fund"], a["voucher"], 101),
            posted(a["funding"], a["payable"], 5),
        ),
    )
    assert r.result == "exceeds_credits"
    assert r.transfer_results == ("linked_event_failed", "exceeds_credits", "linked_event_failed")
    assert await totals(conn, lid) == (0, 0, 0, 0)
    assert await counts(conn, lid) == (0, 0)
    # the same lines within the limit commit together
    [r] = await apply(conn, entry(lid, posted(a["funding"], a["fund"], 100), posted(a["fund"], a["voucher"], 100)))
    assert (r.result, r.transfer_results) == ("ok", ("ok", "ok"))
    assert await bal(conn, a["fund"]) == (100, 100, 0, 0)
    await assert_balanced(conn, lid)


async def test_a_hold_and_its_post_in_one_entry(conn: Any) -> None:
    lid, a = await funded(conn, 1_000)
    eid = uuid.uuid4()
    hid = transfer_id(eid, 0)  # a client can name the pending transfer before it exists
    [r] = await apply(conn, entry(lid, pending(a["voucher"], a["payable"], 800), post(hid, 300), eid=eid))
    assert (r.result, r.transfer_results) == ("ok", ("ok", "ok"))
    assert await bal(conn, a["voucher"]) == (300, 1_000, 0, 0)
    assert await conn.fetchval("SELECT state FROM holds WHERE transfer_id = $1", hid) == "posted"
    await assert_balanced(conn, lid)


async def co_funded(conn: Any) -> tuple[int, dict[str, int], int, dict[str, int]]:
    """Two sponsor ledgers; each sponsor's voucher share holds 700 and 300."""
    l1, a = await setup_ledger(conn)
    l2, b = await setup_ledger(conn)
    await apply(
        conn,
        entry(l1, posted(a["funding"], a["fund"], 700)),
        entry(l1, posted(a["fund"], a["voucher"], 700)),
        entry(l2, posted(b["funding"], b["fund"], 300)),
        entry(l2, posted(b["fund"], b["voucher"], 300)),
    )
    return l1, a, l2, b


async def test_linked_entries_across_two_ledgers_commit_together(conn: Any) -> None:
    l1, a, l2, b = await co_funded(conn)
    # a co-funded redemption of 1,001: the second sponsor's share is short by one
    bad = await apply(
        conn,
        entry(l1, posted(a["voucher"], a["payable"], 700), link=1),
        entry(l2, posted(b["voucher"], b["payable"], 301), link=1),
        entry(l2, posted(b["funding"], b["fund"], 1)),  # not linked: unaffected
    )
    assert [(r.result, r.transfer_results) for r in bad] == [
        ("linked_event_failed", ()),
        ("exceeds_credits", ("exceeds_credits",)),
        ("ok", ("ok",)),
    ]
    assert await bal(conn, a["voucher"]) == (0, 700, 0, 0)
    assert await bal(conn, b["voucher"]) == (0, 300, 0, 0)
    assert await counts(conn, l1) == (2, 2)
    # a failing first member fails the members after it too
    bad = await apply(
        conn,
        entry(l1, posted(a["voucher"], a["payable"], 701), link=7),
        entry(l2, posted(b["voucher"], b["payable"], 300), link=7),
    )
    assert [r.result for r in bad] == ["exceeds_credits", "linked_event_failed"]
    ok = await apply(
        conn,
        entry(l1, pending(a["voucher"], a["payable"], 700, timeout_s=600), link=2),
        entry(l2, pending(b["voucher"], b["payable"], 300, timeout_s=600), link=2),
    )
    assert [r.result for r in ok] == ["ok", "ok"]
    assert [r.seq for r in ok] == [3, 4]
    assert await bal(conn, a["voucher"]) == (0, 700, 700, 0)
    assert await bal(conn, b["voucher"]) == (0, 300, 300, 0)
    # posting both shares: all or nothing again (the second asks too much)
    p1, p2 = transfer_id(ok[0].id, 0), transfer_id(ok[1].id, 0)
    bad = await apply(conn, entry(l1, post(p1, 600), link=3), entry(l2, post(p2, 301), link=3))
    assert [r.result for r in bad] == ["linked_event_failed", "exceeds_pending_transfer_amount"]
    assert await bal(conn, a["voucher"]) == (0, 700, 700, 0)
    good = await apply(conn, entry(l1, post(p1, 600), link=3), entry(l2, post(p2, 257), link=3))
    assert [r.result for r in good] == ["ok", "ok"]
    assert await bal(conn, a["voucher"]) == (600, 700, 0, 0)
    assert await bal(conn, b["voucher"]) == (257, 300, 0, 0)
    for lid in (l1, l2):
        await assert_balanced(conn, lid)
        assert (await verify_ledger(conn, lid)).ok


async def test_a_link_group_fails_whole_when_a_member_is_refused_before_checking(conn: Any) -> None:
    l1, a, l2, b = await co_funded(conn)
    stored = entry(l1, posted(a["fund"], a["payable"], 1), desc="stored")
    await apply(conn, entry(l1, posted(a["funding"], a["fund"], 1)), stored)
    for second in [
        entry(l2, posted(b["voucher"], b["payable"], 300), desc="x" * (MAX_DESCRIPTION + 1)),
        entry(l2, posted(b["voucher"], b["payable"], 300), eid=stored.id),  # reuses an id
        entry(999_999, posted(b["voucher"], b["payable"], 300)),
    ]:
        rs = await apply(
            conn,
            entry(l1, posted(a["voucher"], a["payable"], 700), link=1),
            replace(second, link_group=1),
        )
        assert rs[0].result == "linked_event_failed", rs
        assert not rs[1].accepted
    assert await bal(conn, a["voucher"]) == (0, 700, 0, 0)
    assert await bal(conn, b["voucher"]) == (0, 300, 0, 0)
    await assert_balanced(conn, l1)
    await assert_balanced(conn, l2)


async def test_linked_entries_must_be_contiguous(conn: Any) -> None:
    l1, a, l2, b = await co_funded(conn)
    rs = await apply(
        conn,
        entry(l1, posted(a["voucher"], a["payable"], 100), link=1),
        entry(l2, posted(b["voucher"], b["payable"], 100), link=2),
        entry(l2, posted(b["voucher"], b["payable"], 50), link=1),
        entry(l1, posted(a["voucher"], a["payable"], 10)),
    )
    assert [r.result for r in rs] == [
        "linked_entries_must_be_contiguous",
        "ok",
        "linked_entries_must_be_contiguous",
        "ok",
    ]
    assert await bal(conn, a["voucher"]) == (10, 700, 0, 0)
    assert await bal(conn, b["voucher"]) == (100, 300, 0, 0)
    await assert_balanced(conn, l1)
    await assert_balanced(conn, l2)


# --- balances beyond bigint -------------------------------------------------------------


async def test_a_total_that_would_overflow_is_refused_not_raised(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    bank = (await add_accounts(conn, lid, ("bank:NL01", "")))["bank:NL01"]
    near = I64 - MAX_AMOUNT + 1
    # put both sides near the top of bigint, balanced, without the engine
    await conn.execute("UPDATE accounts SET debits_posted = $2 WHERE id = $1", a["funding"], near)
    await conn.execute("UPDATE accounts SET credits_posted = $2 WHERE id = $1", a["payable"], near)
    rs = await apply(
        conn,
        entry(lid, posted(a["funding"], a["fund"], MAX_AMOUNT)),
        entry(lid, posted(bank, a["payable"], MAX_AMOUNT)),
        entry(lid, pending(a["funding"], a["fund"], MAX_AMOUNT)),
        entry(lid, posted(a["funding"], a["fund"], MAX_AMOUNT - 1)),
    )
    assert [r.result for r in rs] == ["overflows_debits", "overflows_credits", "overflows_debits", "ok"]
    assert await bal(conn, a["funding"]) == (I64, 0, 0, 0)
    assert await bal(conn, a["payable"]) == (0, near, 0, 0)
    assert await bal(conn, bank) == (0, 0, 0, 0)
    await assert_balanced(conn, lid)


# --- the batch as a whole -------------------------------------------------------------


async def test_apply_batch_needs_the_callers_transaction(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    with pytest.raises(NotInTransaction):
        await apply_batch(conn, [entry(lid, posted(a["funding"], a["fund"], 1))])
    assert await counts(conn, lid) == (0, 0)


async def test_batch_limits(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    with pytest.raises(BatchTooLarge):
        async with conn.transaction():
            await apply_batch(conn, [entry(lid, posted(a["funding"], a["fund"], 1))] * (MAX_BATCH_ENTRIES + 1))
    three = entry(lid, *[posted(a["funding"], a["fund"], 1)] * 3)
    n = MAX_BATCH_TRANSFERS // 3 + 1
    assert n <= MAX_BATCH_ENTRIES
    with pytest.raises(BatchTooLarge):
        async with conn.transaction():
            await apply_batch(conn, [three] * n)
    assert await counts(conn, lid) == (0, 0)
    async with conn.transaction():
        assert await apply_batch(conn, []) == []
    # the largest batch allowed goes through
    rs = await apply(conn, *[entry(lid, posted(a["funding"], a["fund"], 1)) for _ in range(MAX_BATCH_ENTRIES)])
    assert {r.result for r in rs} == {"ok"}
    assert [r.seq for r in rs] == list(range(1, MAX_BATCH_ENTRIES + 1))
    assert await bal(conn, a["fund"]) == (0, MAX_BATCH_ENTRIES, 0, 0)
    await assert_balanced(conn, lid)


async def test_unknown_ledger_alone_in_a_batch(conn: Any) -> None:
    lid = await create_ledger(conn, "empty")
    [r] = await apply(conn, entry(lid + 1, posted(1, 2, 5)))
    assert r.result == "ledger_not_found"
