"""Reading the ledger: balances now and as of an instant, history, trial balance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.holds import expire_holds
from ledger.model import Balance, transfer_id
from ledger.queries import balances, history, trial_balance
from tests.ledger.helpers import apply, assert_balanced, entry, force_expiry, pending, post, posted, setup_ledger, void

US = timedelta(microseconds=1)
FAR = datetime(2999, 1, 1, tzinfo=UTC)


def four(b: Balance) -> tuple[int, int, int, int]:
    return (b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending)


async def at(conn: Any, ids: list[int], when: datetime | None) -> list[tuple[int, int, int, int]]:
    got = await balances(conn, ids, as_of=when)
    return [four(got[i]) for i in ids]


async def test_balances_now_and_as_of_any_instant(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    ids = [a["fund"], a["voucher"]]
    [r1] = await apply(conn, entry(lid, posted(a["funding"], a["fund"], 1_000)))
    h = entry(lid, pending(a["fund"], a["voucher"], 300, timeout_s=3600))
    [r2] = await apply(conn, h)
    [r3] = await apply(conn, entry(lid, post(transfer_id(h.id, 0), 200)))
    h2 = entry(lid, pending(a["fund"], a["voucher"], 100))
    [r4] = await apply(conn, h2)
    [r5] = await apply(conn, entry(lid, void(transfer_id(h2.id, 0))))
    h3 = entry(lid, pending(a["fund"], a["voucher"], 50, timeout_s=3600))
    [r6] = await apply(conn, h3)
    await force_expiry(conn, transfer_id(h3.id, 0))
    async with conn.transaction():
        assert await expire_holds(conn) == [transfer_id(h3.id, 0)]
    times = [r.created_at for r in (r1, r2, r3, r4, r5, r6)]
    assert all(t is not None for t in times)
    t1, t2, t3, t4, t5, t6 = (t for t in times if t is not None)
    assert t1 < t2 < t3 < t4 < t5 < t6

    assert await at(conn, ids, t1 - US) == [(0, 0, 0, 0), (0, 0, 0, 0)]  # before anything
    assert await at(conn, ids, t1) == [(0, 1_000, 0, 0), (0, 0, 0, 0)]
    assert await at(conn, ids, t2 - US) == [(0, 1_000, 0, 0), (0, 0, 0, 0)]  # between grant and hold
    assert await at(conn, ids, t2) == [(0, 1_000, 300, 0), (0, 0, 0, 300)]  # held
    assert await at(conn, ids, t3 - US) == [(0, 1_000, 300, 0), (0, 0, 0, 300)]  # just before the post
    assert await at(conn, ids, t3) == [(200, 1_000, 0, 0), (0, 200, 0, 0)]  # posted 200, 100 released
    assert await at(conn, ids, t4) == [(200, 1_000, 100, 0), (0, 200, 0, 100)]
    assert await at(conn, ids, t5) == [(200, 1_000, 0, 0), (0, 200, 0, 0)]  # voided
    assert await at(conn, ids, t6) == [(200, 1_000, 50, 0), (0, 200, 0, 50)]
    now = await at(conn, ids, None)
    assert now == [(200, 1_000, 0, 0), (0, 200, 0, 0)]  # expired
    assert await at(conn, ids, FAR) == now
    # every account, as of the far future, equals its running totals
    every = list(a.values())
    assert await at(conn, every, FAR) == await at(conn, every, None)
    # an unknown account has zero balances rather than no answer
    assert await at(conn, [999_999], None) == [(0, 0, 0, 0)]
    assert await at(conn, [999_999], FAR) == [(0, 0, 0, 0)]
    await assert_balanced(conn, lid)


async def test_history_pages_with_a_cursor_and_a_running_balance(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    v = a["voucher"]
    await apply(conn, entry(lid, posted(a["funding"], a["fund"], 10_000)))
    await apply(conn, entry(lid, posted(a["fund"], v, 5_000), desc="issue"))  # +5,000
    await apply(conn, entry(lid, posted(v, a["payable"], 1_200), desc="redeem"))  # -1,200
    h = entry(lid, pending(v, a["payable"], 900), desc="reserve")  # not a posted movement
    await apply(conn, h)
    await apply(conn, entry(lid, post(transfer_id(h.id, 0), 700), desc="redeem reservation"))  # -700
    await apply(conn, entry(lid, posted(a["payable"], v, 300), desc="refund"))  # +300
    await apply(conn, entry(lid, posted(v, a["fund"], 3_400), desc="expired"))  # -3,400

    everything, cursor = await history(conn, v, limit=100)
    assert cursor is None
    assert [(x.description, x.kind, x.debit, x.credit, x.running_balance) for x in everything] == [
        ("issue", "posted", 0, 5_000, 5_000),
        ("redeem", "posted", 1_200, 0, 3_800),
        ("redeem reservation", "post_pending", 700, 0, 3_100),
        ("refund", "posted", 0, 300, 3_400),
        ("expired", "posted", 3_400, 0, 0),
    ]
    assert everything[0].value_date == "2026-11-23"
    assert [x.n for x in everything] == sorted(x.n for x in everything)

    pages: list[list[int]] = []
    running: list[int] = []
    cursor = None
    while True:
        page, cursor = await history(conn, v, after=cursor, limit=2)
        pages.append([x.n for x in page])
        running += [x.running_balance for x in page]
        if cursor is None:
            break
        assert cursor == page[-1].n
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [n for p in pages for n in p] == [x.n for x in everything]
    assert running == [5_000, 3_800, 3_100, 3_400, 0]  # the running balance carries across pages
    one, cursor = await history(conn, v, limit=0)  # clamped to at least one line
    assert len(one) == 1 and cursor == one[0].n
    assert await history(conn, 999_999) == ([], None)


async def test_trial_balance_now_and_as_of(conn: Any) -> None:
    lid, a = await setup_ledger(conn)
    [r1] = await apply(conn, entry(lid, posted(a["funding"], a["fund"], 10_000)))
    [r2] = await apply(conn, entry(lid, posted(a["fund"], a["voucher"], 4_000)))
    h = entry(lid, pending(a["voucher"], a["payable"], 1_500))
    [r3] = await apply(conn, h)
    [r4] = await apply(conn, entry(lid, post(transfer_id(h.id, 0), 1_000)))
    assert r1.created_at and r2.created_at and r3.created_at and r4.created_at

    def lines(tb: Any) -> dict[str, tuple[int, int]]:
        return {x.code: (x.debit, x.credit) for x in tb.lines}

    tb = await trial_balance(conn, lid)
    assert lines(tb) == {
        "funding:grant": (10_000, 0),
        "fund:F": (0, 6_000),
        "voucher:V": (0, 3_000),
        "payable:P": (0, 1_000),
    }
    assert (tb.total_debit, tb.total_credit, tb.balanced, tb.as_of) == (10_000, 10_000, True, None)

    before = await trial_balance(conn, lid, as_of=r1.created_at - US)
    assert (before.total_debit, before.total_credit, before.balanced) == (0, 0, True)
    assert set(lines(before).values()) == {(0, 0)}
    tb2 = await trial_balance(conn, lid, as_of=r2.created_at)
    assert lines(tb2) == {
        "funding:grant": (10_000, 0),
        "fund:F": (0, 6_000),
        "voucher:V": (0, 4_000),
        "payable:P": (0, 0),
    }
    tb3 = await trial_balance(conn, lid, as_of=r3.created_at)  # a hold is not a posted balance
    assert lines(tb3) == lines(tb2)
    tb4 = await trial_balance(conn, lid, as_of=r4.created_at)
    assert lines(tb4) == lines(tb)
    assert (tb4.total_debit, tb4.total_credit, tb4.balanced, tb4.as_of) == (10_000, 10_000, True, r4.created_at)
    # a second ledger's movements never show up in the first one's trial balance
    l2, b = await setup_ledger(conn)
    await apply(conn, entry(l2, posted(b["funding"], b["fund"], 77)))
    assert lines(await trial_balance(conn, lid)) == lines(tb)
    assert lines(await trial_balance(conn, lid, as_of=FAR)) == lines(tb)
    assert (await trial_balance(conn, l2, as_of=FAR)).total_debit == 77
