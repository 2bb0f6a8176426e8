"""An API world: the demo seeded in a fresh database, and helpers to call it (fixture `world`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from settlement import db
from settlement.demo import seed

_keys = itertools.count()


@dataclass
class World:
    tokens: dict[str, str]
    ids: dict[str, int]

    def h(self, who: str, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        headers["Idempotency-Key"] = key or f"test-{next(_keys)}"
        return headers


@pytest.fixture
async def world(db_dsn: str) -> World:
    conn = await db.connect(db_dsn)
    try:
        async with conn.transaction():
            tokens = await seed(conn)
        rows = await conn.fetch("SELECT id, name FROM organisations")
        names = {r["name"]: r["id"] for r in rows}
        funds = {r["code"]: r["id"] for r in await conn.fetch("SELECT id, code FROM funds")}
    finally:
        await conn.close()
    return World(
        tokens=tokens,
        ids={
            "gemeente": names["Gemeente Westerkwartier"],
            "leergeld": names["Stichting Leergeld Westerkwartier"],
            "bike_shop": names["Rijwielhandel De Vries"],
            "sports_club": names["VV Leek Sport"],
            "clothing_bank": names["Kledingbank Zuidhorn"],
            "kindpakket": funds["KINDPAKKET"],
            "fiets": funds["FIETS"],
        },
    )


async def ledger_state(dsn: str) -> dict[str, Any]:
    """Counts and per-ledger sums, to prove a refused request changed nothing."""
    conn = await db.connect(dsn)
    try:
        return {
            "entries": await conn.fetchval("SELECT count(*) FROM journal_entries"),
            "transfers": await conn.fetchval("SELECT count(*) FROM transfers"),
            "balances": [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending "
                    "FROM accounts ORDER BY id"
                )
            ],
        }
    finally:
        await conn.close()


async def assert_ledgers_balanced(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT ledger_id, sum(debits_posted) AS dp, sum(credits_posted) AS cp, sum(debits_pending) AS dpe, "
            "sum(credits_pending) AS cpe FROM accounts GROUP BY ledger_id"
        )
        for r in rows:
            assert r["dp"] == r["cp"], f"ledger {r['ledger_id']} posted unbalanced"
            assert r["dpe"] == r["cpe"], f"ledger {r['ledger_id']} pending unbalanced"
        over = await conn.fetchval(
            "SELECT count(*) FROM accounts WHERE debits_must_not_exceed_credits "
            "AND debits_posted + debits_pending > credits_posted"
        )
        assert over == 0
    finally:
        await conn.close()
