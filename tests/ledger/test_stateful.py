"""The engine against a plain Python model of the ledger's rules.

A hypothesis state machine sends random batches (posted and pending
transfers, posts full/partial/excess, voids, client expiries, replays, reused
ids with other content, repeats inside a batch, link groups, contiguous or
not), forces holds past their expiry and sweeps them. The model predicts every
entry's result, its per-transfer results and its sequence number, and every
account's four totals; the engine must agree exactly after every step.

The machine is synchronous and drives its own event loop and connection, so
hypothesis runs it as usual under pytest-asyncio's session loop. Each example
gets a fresh ledger in one database.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from msgspec.structs import replace

from ledger.accounts import create_ledger, ensure_accounts
from ledger.engine import apply_batch
from ledger.holds import expire_holds
from ledger.model import (
    MAX_DESCRIPTION,
    AccountSpec,
    EntryResult,
    EntrySpec,
    TransferKind,
    TransferSpec,
    transfer_id,
)
from ledger.verify import verify_ledger
from settlement import db
from tests.ledger.helpers import TODAY

# account slots: 0 funding (free), 1 fund (dr-limited), 2 voucher (dr-limited),
# 3 payable (free), 4 in transit (cr-limited); 5 is missing, 6 is another ledger's
LIMITS = ["", "dr", "dr", "", "cr"]
MISSING, FOREIGN = 5, 6
# (debit, credit) slots: mostly the posting rules' pairs, sometimes anything
PAIRS = [(0, 1), (0, 1), (1, 2), (1, 2), (2, 3), (2, 3), (3, 2), (2, 1), (4, 3), (3, 4)]
SLOT = st.integers(0, 6)


@dataclass
class Env:
    loop: asyncio.AbstractEventLoop
    conn: Any
    foreign: int = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


ENV: Env | None = None


@dataclass
class Hold:
    dr: int
    cr: int
    amount: int
    state: str = "pending"
    past_expiry: bool = False


@dataclass
class Model:
    """The rules, written out plainly. Accounts are slots 0..4."""

    slot: dict[int, int] = field(default_factory=dict)  # account id -> slot
    bal: list[list[int]] = field(default_factory=lambda: [[0, 0, 0, 0] for _ in LIMITS])
    holds: dict[uuid.UUID, Hold] = field(default_factory=dict)
    stored: dict[uuid.UUID, tuple[EntrySpec, int]] = field(default_factory=dict)  # id -> (entry, seq)
    head: int = 0

    def state(self) -> tuple[list[list[int]], dict[uuid.UUID, Hold]]:
        return copy.deepcopy(self.bal), copy.deepcopy(self.holds)

    def restore(self, saved: tuple[list[list[int]], dict[uuid.UUID, Hold]]) -> None:
        self.bal, self.holds = copy.deepcopy(saved)

    def breaks_limit(self, slot: int) -> str | None:
        dp, cp, dpe, cpe = self.bal[slot]
        if LIMITS[slot] == "dr" and dp + dpe > cp:
            return "exceeds_credits"
        if LIMITS[slot] == "cr" and cp + cpe > dp:
            return "exceeds_debits"
        return None

    def transfer(self, t: TransferSpec, tid: uuid.UUID) -> str:
        kind = t.kind
        if kind in ("posted", "pending"):
            dr, cr, amount = self.slot[t.debit_account_id], self.slot[t.credit_account_id], t.amount
            assert amount is not None
            if amount <= 0:
                return "amount_must_be_positive"
            if dr == cr:
                return "accounts_must_be_different"
            if dr == MISSING:
                return "debit_account_not_found"
            if cr == MISSING:
                return "credit_account_not_found"
            if FOREIGN in (dr, cr):
                return "ledgers_must_match"
            if kind == "posted" and t.timeout_s is not None:
                return "timeout_reserved_for_pending_transfer"
            if kind == "pending" and t.timeout_s is not None and t.timeout_s < 1:
                return "timeout_out_of_range"
            d, c = (0, 1) if kind == "posted" else (2, 3)
            self.bal[dr][d] += amount
            self.bal[cr][c] += amount
            problem = self.breaks_limit(dr) or self.breaks_limit(cr)
            if problem:
                self.bal[dr][d] -= amount
                self.bal[cr][c] -= amount
                return problem
            if kind == "pending":
                self.holds[tid] = Hold(dr, cr, amount)
            return "ok"
        assert t.pending_id is not None
        h = self.holds.get(t.pending_id)
        if h is None:
            return "pending_transfer_not_found"
        if h.state != "pending":
            return {
                "posted": "pending_transfer_already_posted",
                "voided": "pending_transfer_already_voided",
                "expired": "pending_transfer_expired",
            }[h.state]
        if kind == "expire_pending" and not h.past_expiry:
            return "pending_transfer_not_expired"
        if kind != "expire_pending" and h.past_expiry:
            return "pending_transfer_expired"
        posting = h.amount if t.amount is None else t.amount
        if kind == "post_pending":
            if posting <= 0:
                return "amount_must_be_positive"
            if posting > h.amount:
                return "exceeds_pending_transfer_amount"
        self.bal[h.dr][2] -= h.amount
        self.bal[h.cr][3] -= h.amount
        if kind == "post_pending":
            self.bal[h.dr][0] += posting
            self.bal[h.cr][1] += posting
        h.state = {"post_pending": "posted", "void_pending": "voided", "expire_pending": "expired"}[kind]
        return "ok"

    def entry(self, e: EntrySpec) -> tuple[str, tuple[str, ...]]:
        saved = self.state()
        codes: list[str] = []
        for idx, t in enumerate(e.transfers):
            codes.append(self.transfer(t, transfer_id(e.id, idx)))
            if codes[-1] != "ok":
                self.restore(saved)
                failed = codes[-1]
                codes = ["linked_event_failed" if c == "ok" else c for c in codes]
                codes += ["linked_event_failed"] * (len(e.transfers) - len(codes))
                return failed, tuple(codes)
        return "ok", tuple(codes)

    def batch(self, entries: list[EntrySpec]) -> list[tuple[str, tuple[str, ...], Any]]:
        """(result, transfer results, seq) for each entry of a batch."""
        n = len(entries)
        out: list[Any] = [None] * n
        first: dict[uuid.UUID, int] = {}
        for i, e in enumerate(entries):
            if e.id in self.stored:
                old, seq = self.stored[e.id]
                out[i] = ("exists", (), seq) if same(old, e) else (differs(old, e), (), None)
            elif e.id in first:
                old = entries[first[e.id]]
                out[i] = ("repeat", (), None) if same(old, e) else (differs(old, e), (), None)
            else:
                first[e.id] = i
                if len(e.description) > MAX_DESCRIPTION:
                    out[i] = ("description_too_long", (), None)
        groups: dict[int, list[int]] = {}
        for i, e in enumerate(entries):
            if e.link_group is not None:
                groups.setdefault(e.link_group, []).append(i)
        for members in groups.values():
            if members != list(range(members[0], members[-1] + 1)):
                for i in members:
                    if out[i] is None:
                        out[i] = ("linked_entries_must_be_contiguous", (), None)
        failed = {
            e.link_group
            for e, o in zip(entries, out, strict=True)
            if e.link_group is not None and o is not None and o[0] not in ("exists", "repeat")
        }
        accepted: list[int] = []
        before_group: dict[int, Any] = {}
        for i, e in enumerate(entries):
            g = e.link_group
            if out[i] is not None:
                # a repeat of a refused entry takes its refusal, which fails the repeat's group
                if out[i][0] != "repeat" or g is None or g in failed or out[first[e.id]][0] == "ok":
                    continue
                result = out[first[e.id]][0]
                out[i] = out[first[e.id]]
            elif g in failed:
                out[i] = ("linked_event_failed", (), None)
                continue
            else:
                if g is not None and g not in before_group:
                    before_group[g] = (self.state(), list(accepted))
                result, codes = self.entry(e)
                out[i] = (result, codes, None)
            if result == "ok":
                accepted.append(i)
            elif g is not None:
                failed.add(g)
                saved, accepted_before = before_group.get(g, (self.state(), list(accepted)))
                self.restore(saved)
                for m in accepted[len(accepted_before) :]:
                    out[m] = ("linked_event_failed", (), None)
                accepted = accepted_before
        for i in accepted:
            self.head += 1
            out[i] = ("ok", out[i][1], self.head)
            self.stored[entries[i].id] = (entries[i], self.head)
        for i, e in enumerate(entries):
            if out[i][0] == "repeat":
                o = out[first[e.id]]
                out[i] = ("exists", (), o[2]) if o[0] == "ok" else o
        return out


def same(a: EntrySpec, b: EntrySpec) -> bool:
    return (a.ledger_id, a.description, a.refs, a.value_date, a.transfers) == (
        b.ledger_id,
        b.description,
        b.refs,
        b.value_date,
        b.transfers,
    )


def differs(old: EntrySpec, new: EntrySpec) -> str:
    for name in ("ledger", "description", "refs", "value_date"):
        attr = "ledger_id" if name == "ledger" else name
        if getattr(old, attr) != getattr(new, attr):
            return f"exists_with_different_{name}"
    return "exists_with_different_transfers"


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert ENV is not None
        self.env = ENV
        self.model = Model()
        self.sent: list[EntrySpec] = []
        self.hold_ids: list[uuid.UUID] = []  # every pending transfer id ever asked for (stored or not)
        self.batch_holds: list[uuid.UUID] = []  # those asked for in the batch being built
        self.diverged = False

    @initialize()
    def fresh_ledger(self) -> None:
        async def make() -> tuple[int, list[int]]:
            conn = self.env.conn
            async with conn.transaction():
                lid = await create_ledger(conn, "model")
                accts = await ensure_accounts(
                    conn,
                    [
                        AccountSpec(
                            ledger_id=lid,
                            code=f"a{i}",
                            name=f"a{i}",
                            debits_must_not_exceed_credits=lim == "dr",
                            credits_must_not_exceed_debits=lim == "cr",
                        )
                        for i, lim in enumerate(LIMITS)
                    ],
                )
            return lid, [a.id for a in accts]

        self.lid, ids = self.env.run(make())
        self.ids = [*ids, 999_999_999, self.env.foreign]
        self.model.slot = {aid: i for i, aid in enumerate(self.ids)}
        # money to move: a grant to the fund, vouchers issued, a payout in transit
        seed = [
            EntrySpec(
                id=uuid.uuid4(),
                ledger_id=self.lid,
                description="seed",
                value_date=TODAY,
                transfers=(TransferSpec(debit_account_id=self.ids[dr], credit_account_id=self.ids[cr], amount=amount),),
            )
            for dr, cr, amount in [(0, 1, 1_000), (1, 2, 400), (4, 3, 300)]
        ]
        self.send(seed)

    # --- building entries ---------------------------------------------------------------

    def line(self, data: st.DataObject) -> TransferSpec:
        kinds: list[TransferKind] = ["posted", "posted", "pending", "pending", "pending"]
        kinds += ["post_pending", "post_pending", "void_pending", "expire_pending"]
        kind = data.draw(st.sampled_from(kinds))
        if kind in ("posted", "pending"):
            if data.draw(st.integers(0, 4)) > 0:
                dr, cr = data.draw(st.sampled_from(PAIRS))
            else:
                dr, cr = data.draw(SLOT), data.draw(SLOT)
            positive = data.draw(st.integers(0, 9)) > 0
            amount = data.draw(st.integers(1, 400)) if positive else data.draw(st.integers(-1, 0))
            if kind == "posted":
                timeout = data.draw(st.sampled_from([None, None, None, None, 60]))
            else:
                timeout = data.draw(st.sampled_from([None, 3600, 3600, 0]))
            return TransferSpec(
                kind=kind,
                debit_account_id=self.ids[dr],
                credit_account_id=self.ids[cr],
                amount=amount,
                timeout_s=timeout,
            )
        # mostly a hold the model thinks is open or one asked for earlier in this
        # batch, else any hold ever asked for, else none at all
        candidates = [h for h, m in self.model.holds.items() if m.state == "pending"] + self.batch_holds
        pool = data.draw(st.sampled_from(["open", "open", "open", "any", "none"]))
        if pool == "open" and candidates:
            pid = data.draw(st.sampled_from(candidates))
        elif pool in ("open", "any") and self.hold_ids:
            pid = data.draw(st.sampled_from(self.hold_ids))
        else:
            pid = uuid.uuid4()
        posting: int | None = None
        if kind == "post_pending":
            posting = data.draw(st.sampled_from([None, None, 0, 1, 50, 100, 200, 400, 401]))
        return TransferSpec(kind=kind, pending_id=pid, amount=posting)

    def new_entry(self, data: st.DataObject, link: int | None) -> EntrySpec:
        n = data.draw(st.sampled_from([1, 1, 1, 2, 3]))
        eid = uuid.uuid4()
        specs = []
        for idx in range(n):
            spec = self.line(data)
            specs.append(spec)
            if spec.kind == "pending":
                self.hold_ids.append(transfer_id(eid, idx))
                self.batch_holds.append(transfer_id(eid, idx))
        desc = data.draw(st.sampled_from(["entry"] * 9 + ["x" * (MAX_DESCRIPTION + 1)]))
        return EntrySpec(
            id=eid, ledger_id=self.lid, description=desc, value_date=TODAY, transfers=tuple(specs), link_group=link
        )

    def reuse(self, data: st.DataObject, old: EntrySpec, link: int | None) -> EntrySpec:
        """The same id with other content (or, sometimes, the same content)."""
        how = data.draw(st.sampled_from(["same", "description", "refs", "value_date", "transfers"]))
        if how == "same":
            return replace(old, link_group=link)
        if how == "description":
            return replace(old, description=old.description + "!", link_group=link)
        if how == "refs":
            return replace(old, refs={"changed": "yes"}, link_group=link)
        if how == "value_date":
            return replace(old, value_date=old.value_date + timedelta(days=1), link_group=link)
        extra = TransferSpec(kind="posted", debit_account_id=self.ids[0], credit_account_id=self.ids[3], amount=1)
        return replace(old, transfers=(*old.transfers, extra), link_group=link)

    # --- rules ----------------------------------------------------------------------------

    @rule(data=st.data())
    def submit_batch(self, data: st.DataObject) -> None:
        size = data.draw(st.integers(1, 4))
        links = data.draw(st.lists(st.sampled_from([None, None, 1, 2]), min_size=size, max_size=size))
        batch: list[EntrySpec] = []
        self.batch_holds = []
        for pos in range(size):
            choice = data.draw(st.sampled_from(["new", "new", "new", "earlier", "in_batch"]))
            if choice == "earlier" and self.sent:
                old = self.sent[-1 - data.draw(st.integers(0, len(self.sent) - 1))]
                e = self.reuse(data, old, links[pos])
            elif choice == "in_batch" and batch:
                e = self.reuse(data, data.draw(st.sampled_from(batch)), links[pos])
            else:
                e = self.new_entry(data, links[pos])
            batch.append(e)
        self.send(batch)

    def send(self, batch: list[EntrySpec]) -> None:
        expected = self.model.batch(batch)

        async def go() -> list[EntryResult]:
            async with self.env.conn.transaction():
                return await apply_batch(self.env.conn, batch)

        got = [(r.result, r.transfer_results, r.seq) for r in self.env.run(go())]
        self.diverged = got != expected  # (then teardown has nothing to add)
        assert got == expected, (batch, got, expected)
        self.sent.extend(batch)

    @rule(data=st.data())
    def force_expiry(self, data: st.DataObject) -> None:
        open_holds = [h for h in self.hold_ids if (m := self.model.holds.get(h)) and m.state == "pending"]
        if not open_holds:
            return
        hid = data.draw(st.sampled_from(open_holds))
        status = self.env.run(
            self.env.conn.execute(
                "UPDATE holds SET expires_at = clock_timestamp() - interval '1 second' WHERE transfer_id = $1", hid
            )
        )
        assert status == "UPDATE 1"
        self.model.holds[hid].past_expiry = True

    @rule()
    def sweep_expired_holds(self) -> None:
        async def go() -> list[uuid.UUID]:
            async with self.env.conn.transaction():
                return await expire_holds(self.env.conn)

        swept = {h for h in self.env.run(go()) if h in self.model.holds}
        due = {hid for hid, h in self.model.holds.items() if h.state == "pending" and h.past_expiry}
        assert swept == due
        for hid in due:
            h = self.model.holds[hid]
            self.model.bal[h.dr][2] -= h.amount
            self.model.bal[h.cr][3] -= h.amount
            h.state = "expired"
            self.model.head += 1

    # --- what must always hold --------------------------------------------------------------

    @invariant()
    def balances_match_the_model(self) -> None:
        if not hasattr(self, "lid"):
            return
        rows = self.env.run(
            self.env.conn.fetch(
                "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending FROM accounts "
                "WHERE id = ANY($1::bigint[])",
                [*self.ids[:5], self.env.foreign],
            )
        )
        got = {r["id"]: [r[1], r[2], r[3], r[4]] for r in rows}
        assert [got[i] for i in self.ids[:5]] == self.model.bal
        assert got[self.env.foreign] == [0, 0, 0, 0]
        assert sum(b[0] for b in self.model.bal) == sum(b[1] for b in self.model.bal)
        assert sum(b[2] for b in self.model.bal) == sum(b[3] for b in self.model.bal)

    def teardown(self) -> None:
        if not hasattr(self, "lid") or self.diverged:
            return
        report = self.env.run(verify_ledger(self.env.conn, self.lid))
        assert (report.ok, report.entries) == (True, self.model.head), report


def test_engine_matches_the_model(db_dsn: str) -> None:
    global ENV
    loop = asyncio.new_event_loop()
    try:
        conn = loop.run_until_complete(db.connect(db_dsn))
        env = Env(loop=loop, conn=conn)

        async def foreign() -> int:
            lid = await create_ledger(conn, "someone else")
            [a] = await ensure_accounts(conn, [AccountSpec(ledger_id=lid, code="x", name="x")])
            return a.id

        env.foreign = loop.run_until_complete(foreign())
        ENV = env
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=50,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                # shrinking a stateful run against a database takes minutes; the
                # failing program is reported as found (each step is small anyway)
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
            ),
        )
        loop.run_until_complete(conn.close())
    finally:
        ENV = None
        loop.close()
