"""Exactness under concurrency: many connections, one limited account.

Each attempt runs on its own pooled connection in its own transaction, so the
only thing keeping the account from being overdrawn is the engine's locking
(and, behind it, the database's CHECK constraints).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ledger.coalescer import Coalescer
from ledger.engine import apply_batch
from ledger.model import EntryResult, EntrySpec, transfer_id
from ledger.verify import verify_ledger
from tests.ledger.helpers import apply, assert_balanced, bal, counts, entry, pending, post, posted, setup_ledger

K = 40  # holds the fund can carry
PRICE = 250
ATTEMPTS = 100


async def one(pool: Any, e: EntrySpec) -> EntryResult:
    async with pool.acquire() as conn, conn.transaction():
        [r] = await apply_batch(conn, [e])
        return r


async def test_100_concurrent_holds_accept_exactly_what_is_funded(pool: Any) -> None:
    async with pool.acquire() as conn:
        lid, a = await setup_ledger(conn)
        await apply(conn, entry(lid, posted(a["funding"], a["fund"], K * PRICE)))
    holds = [entry(lid, pending(a["fund"], a["voucher"], PRICE, timeout_s=600)) for _ in range(ATTEMPTS)]
    results = await asyncio.gather(*(one(pool, h) for h in holds))
    assert sorted({r.result for r in results}) == ["exceeds_credits", "ok"]
    assert sum(r.result == "ok" for r in results) == K
    assert sum(r.result == "exceeds_credits" for r in results) == ATTEMPTS - K
    assert sorted(r.seq for r in results if r.seq) == list(range(2, K + 2))  # no gaps, no repeats
    async with pool.acquire() as conn:
        assert await bal(conn, a["fund"]) == (0, K * PRICE, K * PRICE, 0)
        assert await bal(conn, a["voucher"]) == (0, 0, 0, K * PRICE)
        assert await conn.fetchval("SELECT count(*) FROM holds WHERE ledger_id = $1", lid) == K
        assert await counts(conn, lid) == (K + 1, K + 1)
        await assert_balanced(conn, lid)
        assert (await verify_ledger(conn, lid)).ok


async def test_concurrent_posts_of_one_hold_post_once(pool: Any) -> None:
    async with pool.acquire() as conn:
        lid, a = await setup_ledger(conn)
        await apply(conn, entry(lid, posted(a["funding"], a["fund"], 1_000)))
        h = entry(lid, pending(a["fund"], a["voucher"], 1_000, timeout_s=600))
        await apply(conn, h)
    pid = transfer_id(h.id, 0)
    results = await asyncio.gather(*(one(pool, entry(lid, post(pid, 100 + i))) for i in range(20)))
    assert sorted(r.result for r in results) == ["ok"] + ["pending_transfer_already_posted"] * 19
    [winner] = [i for i, r in enumerate(results) if r.result == "ok"]
    async with pool.acquire() as conn:
        assert await bal(conn, a["fund"]) == (100 + winner, 1_000, 0, 0)
        assert await bal(conn, a["voucher"]) == (0, 100 + winner, 0, 0)
        await assert_balanced(conn, lid)
        assert (await verify_ledger(conn, lid)).ok


async def test_concurrent_retries_of_one_entry_apply_it_once(pool: Any) -> None:
    """A client that retries while its first attempt is still in flight gets
    `exists`, never an error (and never a second booking)."""
    async with pool.acquire() as conn:
        lid, a = await setup_ledger(conn)
    e = entry(lid, posted(a["funding"], a["fund"], 500))
    results = await asyncio.gather(*(one(pool, e) for _ in range(20)))
    assert sorted(r.result for r in results) == ["exists"] * 19 + ["ok"]
    assert {r.seq for r in results} == {1}
    async with pool.acquire() as conn:
        assert await bal(conn, a["fund"]) == (0, 500, 0, 0)
        assert await counts(conn, lid) == (1, 1)
        await assert_balanced(conn, lid)


async def test_the_coalescer_is_exact_too(pool: Any) -> None:
    async with pool.acquire() as conn:
        lid, a = await setup_ledger(conn)
        await apply(conn, entry(lid, posted(a["funding"], a["fund"], K * PRICE)))
    holds = [entry(lid, pending(a["fund"], a["voucher"], PRICE, timeout_s=600)) for _ in range(ATTEMPTS)]
    spends = [entry(lid, posted(a["fund"], a["voucher"], PRICE)) for _ in range(ATTEMPTS)]
    async with Coalescer(pool, max_batch=16) as co:
        results = await asyncio.gather(*(co.submit(e) for pair in zip(holds, spends, strict=True) for e in pair))
        again = await asyncio.gather(*(co.submit(e) for e in holds[:10]))
    assert sum(r.result == "ok" for r in results) == K
    assert sum(r.result == "exceeds_credits" for r in results) == 2 * ATTEMPTS - K
    assert [r.id for r in results] == [e.id for pair in zip(holds, spends, strict=True) for e in pair]
    assert co.batches < 2 * ATTEMPTS  # calls really were coalesced
    # replays: a stored hold is `exists`; a refused one is checked afresh (still no money)
    assert [r.result for r in again] == ["exists" if r.accepted else "exceeds_credits" for r in results[0:20:2]]
    async with pool.acquire() as conn:
        ok_holds = sum(r.result == "ok" for r in results[0::2])
        ok_spends = sum(r.result == "ok" for r in results[1::2])
        assert ok_holds + ok_spends == K
        assert await bal(conn, a["fund"]) == (ok_spends * PRICE, K * PRICE, ok_holds * PRICE, 0)
        await assert_balanced(conn, lid)
        assert (await verify_ledger(conn, lid)).ok
