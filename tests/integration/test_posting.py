"""settlement.posting.post_all: a flow's postings are booked whole, or the flow fails."""

from __future__ import annotations

from typing import Any

import pytest

from settlement import db, posting
from settlement.errors import Conflict
from tests.ledger.helpers import entry, posted, setup_ledger


async def _entries(conn: Any, lid: int) -> int:
    n: int = await conn.fetchval("SELECT count(*) FROM journal_entries WHERE ledger_id = $1", lid)
    return n


async def test_books_every_entry_across_engine_batches(db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(posting, "MAX_BATCH_ENTRIES", 2)
    conn = await db.connect(db_dsn)
    try:
        lid, a = await setup_ledger(conn)
        batch = [entry(lid, posted(a["funding"], a["fund"], 100 + i)) for i in range(5)]
        async with conn.transaction():
            results = await posting.post_all(conn, batch, "a test posting")
        assert [r.result for r in results] == ["ok"] * 5
        assert [r.id for r in results] == [e.id for e in batch]
        assert await _entries(conn, lid) == 5
    finally:
        await conn.close()


async def test_a_refusal_in_a_later_batch_fails_the_flow_and_books_nothing(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(posting, "MAX_BATCH_ENTRIES", 2)
    conn = await db.connect(db_dsn)
    try:
        lid, a = await setup_ledger(conn)
        fine = [entry(lid, posted(a["funding"], a["fund"], 100)) for _ in range(3)]
        # the fund may not pay out more than it holds
        refused = entry(lid, posted(a["fund"], a["payable"], 10_000))
        with pytest.raises(Conflict) as err:
            async with conn.transaction():
                await posting.post_all(conn, [*fine, refused], "a test posting")
        assert err.value.code == "ledger_refused"
        assert "a test posting: exceeds_credits" in err.value.detail
        assert await _entries(conn, lid) == 0
    finally:
        await conn.close()
