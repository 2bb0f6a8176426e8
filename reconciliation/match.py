"""Match statement entries against what the books expect. Pure: the caller (the
database layer) passes in indexes, gets back one ``Decision`` per entry, and
records them; nothing here reads or writes anything.

The rules, tried in this order (DESIGN "Reconciliation"):

1. EndToEndId -> ``payment``. A DBIT entry with one transaction whose
   EndToEndId is a key of ``expected_payments``, with an equal amount (and,
   when both sides know it, the same creditor IBAN).
2. Batch PmtInfId + count + total -> ``batch``. A DBIT entry whose
   ``Btch/PmtInfId`` (MT940 ``/PREF/``) is a key of ``expected_blocks``, whose
   amount equals the block's total and whose ``NbOfTxs`` / ``TtlAmt`` (when
   given) equal the block's count and total. When the bank lists the
   transactions, each EndToEndId must belong to the block, each amount must
   equal its payment's, there must be one per payment, and their sum must
   equal the entry; the decision covers those payments. Without
   transactions it covers the block's payments.
3. Returns -> ``return``. A CRDT entry with a return reason (``RtrInf``,
   MT940 ``/RTRN/``), or a CRDT reversal, whose original EndToEndId(s) are
   expected payments; the amount must equal the payment's (per transaction
   when there are several, summing to the entry). The reason codes are kept.
4. Top-up references -> ``top_up``. A CRDT entry whose structured reference,
   or a reference token in its remittance / additional info, is a key of
   ``top_up_references``. References are compared normalised (upper case,
   no spaces, dots or dashes): ISO 11649 ``RF`` references (check digits
   verified before a free-text token counts) and 16-digit Dutch
   betalingskenmerken. Never a substring of free text: a token must be
   the whole reference. A zero amount (a bank's notice) is never a top-up.
5. Amount + date -> suggestions only. Everything else is ``unmatched`` with a
   ``reason`` saying which rule failed and why ("amount differs from payment
   X: expected 12500, got 12000", "no payment with EndToEndId ...", "batch
   PmtInfId ... count 3 != 4"). An unmatched DBIT entry also gets up to
   ``MAX_SUGGESTIONS`` ``suggestions``: open payments with the same amount
   whose execution date is within ``window_days`` of the booking date.
   A suggestion is for a person to confirm; it never matches by itself.

A payment matched (as ``payment`` or within a ``batch``) by an earlier entry of
the same input is not matched again: the later entry is unmatched with
reason "already matched: ...". The same holds for returns among themselves
(a payment may be booked once and returned once). Entries that are not
booked (camt.054 ``PDNG``) are unmatched. The result is deterministic: same
input, same decisions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Literal

import msgspec

from reconciliation.model import Entry, TxDetail

DecisionKind = Literal["payment", "batch", "return", "top_up", "unmatched"]
DEFAULT_WINDOW_DAYS = 3
MAX_SUGGESTIONS = 5
_NOT_PROVIDED = "NOTPROVIDED"  # the SEPA placeholder for "no EndToEndId"


class ExpectedPayment(msgspec.Struct, frozen=True, kw_only=True):
    """A payment sent to the bank and not yet booked, keyed by its EndToEndId."""

    payment_id: str
    end_to_end_id: str
    amount_cents: int
    creditor_iban: str | None = None
    pmt_inf_id: str | None = None


class ExpectedBlock(msgspec.Struct, frozen=True, kw_only=True):
    """A batch-booked payment block (pain.001 PmtInf), keyed by its PmtInfId."""

    block_id: str
    pmt_inf_id: str
    count: int
    total_cents: int
    end_to_end_ids: tuple[str, ...]


class TopUpTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where money carrying a top-up reference goes, keyed by the normalised reference."""

    fund_id: str | None = None
    funding_source_id: str | None = None


class OpenAmount(msgspec.Struct, frozen=True, kw_only=True):
    """An open payment, for suggestions only."""

    payment_id: str
    amount_cents: int
    execution_date: date


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    position: int  # index of the entry in the input sequence
    entry_index: int  # Entry.index (position within its statement)
    kind: DecisionKind
    payment_ids: tuple[str, ...] = ()
    block_id: str | None = None
    # For a return: one per payment_ids entry (None when the bank gave none, e.g. a plain reversal).
    return_reasons: tuple[str | None, ...] = ()
    top_up: TopUpTarget | None = None
    reference: str | None = None  # the normalised top-up reference that matched
    reason: str | None = None  # why unmatched
    suggestions: tuple[str, ...] = ()

    @property
    def matched(self) -> bool:
        return self.kind != "unmatched"


# ---------------------------------------------------------------- references

_SEPARATORS = re.compile(r"[\s.\-]+")
_RF_START = re.compile(r"(?<![A-Z0-9])RF[0-9]{2}")
_KENMERK = re.compile(r"(?<![0-9])[0-9](?:[ .]?[0-9]){15}(?![0-9])")
_RF_BODY_MAX = 21


def normalise_reference(text: str) -> str:
    """Upper case without blanks, dots or dashes: 'rf18 5390 0754 7034' -> 'RF18539007547034'."""
    return _SEPARATORS.sub("", text).upper()


def is_rf_reference(ref: str) -> bool:
    """ISO 11649: RF + two check digits + up to 21 alphanumerics, mod 97 == 1."""
    if not (5 <= len(ref) <= 25 and ref.startswith("RF") and ref[2:4].isdigit() and ref.isalnum() and ref.isascii()):
        return False
    rearranged = ref[4:] + ref[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def references_in(text: str) -> list[str]:
    """The candidate references in free text, normalised: valid RF references
    (written compact or in groups of four) and 16-digit betalingskenmerken.

    A token must end where a word ends: 'RF18 5390 0754 7034X' yields nothing
    from '...7034X' but may still yield a shorter valid reference ending at a
    blank. Longest first.
    """
    upper = text.upper()
    found: list[str] = []
    for m in _RF_START.finditer(upper):
        body: list[str] = []
        candidates = []
        i = m.end()
        while i < len(upper) and len(body) <= _RF_BODY_MAX:
            ch = upper[i]
            if ch.isascii() and ch.isalnum():
                body.append(ch)
                at_end = i + 1 == len(upper) or not (upper[i + 1].isascii() and upper[i + 1].isalnum())
                if at_end and len(body) <= _RF_BODY_MAX:
                    candidates.append(m.group(0) + "".join(body))
            elif ch != " ":
                break
            i += 1
        found.extend(c for c in reversed(candidates) if is_rf_reference(c))
    found.extend(normalise_reference(m.group(0)) for m in _KENMERK.finditer(upper))
    return found


# ---------------------------------------------------------------- matching


def _iban(text: str | None) -> str | None:
    return None if text is None else text.replace(" ", "").upper()


def _e2e(text: str | None) -> str | None:
    return None if text is None or text == _NOT_PROVIDED else text


class _Matcher:
    def __init__(
        self,
        payments: Mapping[str, ExpectedPayment],
        blocks: Mapping[str, ExpectedBlock],
        top_ups: Mapping[str, TopUpTarget],
        open_amounts: Iterable[OpenAmount],
        window_days: int,
    ) -> None:
        self.payments = payments
        self.blocks = blocks
        # Keys arrive normalised by contract; normalising again costs one pass over a small map.
        self.top_ups = {normalise_reference(k): v for k, v in top_ups.items()}
        self.by_amount: dict[int, list[OpenAmount]] = {}
        for o in open_amounts:
            self.by_amount.setdefault(o.amount_cents, []).append(o)
        self.window_days = window_days
        self.booked: dict[str, int] = {}  # payment id -> position that matched it
        self.returned: dict[str, int] = {}

    # -- outcomes

    def unmatched(self, pos: int, e: Entry, reason: str) -> Decision:
        return Decision(position=pos, entry_index=e.index, kind="unmatched", reason=reason, suggestions=self.suggest(e))

    def suggest(self, e: Entry) -> tuple[str, ...]:
        on = e.booking_date or e.value_date
        if e.credit_debit != "DBIT" or on is None or not e.is_booked:
            return ()
        near = [
            (abs((o.execution_date - on).days), o.payment_id)
            for o in self.by_amount.get(e.amount_cents, ())
            if o.payment_id not in self.booked and abs((o.execution_date - on).days) <= self.window_days
        ]
        near.sort()
        return tuple(pid for _, pid in near[:MAX_SUGGESTIONS])

    def already(self, ids: Iterable[str], done: dict[str, int], what: str) -> str | None:
        for pid in ids:
            if pid in done:
                return f"already matched: {what}payment {pid} by the entry at position {done[pid]}"
        return None

    # -- rules

    def decide(self, pos: int, e: Entry) -> Decision:
        if not e.is_booked:
            return Decision(
                position=pos, entry_index=e.index, kind="unmatched", reason=f"entry status {e.status}: not booked"
            )
        if e.credit_debit == "DBIT":
            return self.debit(pos, e)
        if e.reversal or any(d.return_reason for d in e.details):
            return self.returned_payment(pos, e)
        return self.top_up(pos, e)

    def debit(self, pos: int, e: Entry) -> Decision:
        if e.reversal:
            return self.unmatched(pos, e, "debit reversal (of an earlier credit): not matched automatically")
        batch_id = e.batch.pmt_inf_id if e.batch is not None else None
        single = len(e.details) <= 1 and (e.batch is None or e.batch.count in (None, 1))
        e2e = _e2e(e.details[0].end_to_end_id) if single and e.details else None
        if e2e is not None:
            payment = self.payments.get(e2e)
            if payment is not None:
                return self.single(pos, e, e.details[0], payment)
            if batch_id is None:
                return self.unmatched(pos, e, f"no payment with EndToEndId {e2e}")
            if batch_id not in self.blocks:
                return self.unmatched(pos, e, f"no payment with EndToEndId {e2e} and no batch with PmtInfId {batch_id}")
        if batch_id is not None:
            return self.batch(pos, e, batch_id)
        if len(e.details) > 1:
            return self.unmatched(pos, e, f"{len(e.details)} transactions but no PmtInfId to match a batch on")
        return self.unmatched(pos, e, "no EndToEndId or PmtInfId to match on")

    def single(self, pos: int, e: Entry, d: TxDetail, p: ExpectedPayment) -> Decision:
        if (why := self.already((p.payment_id,), self.booked, "")) is not None:
            return self.unmatched(pos, e, why)
        if p.amount_cents != e.amount_cents:
            return self.unmatched(
                pos, e, f"amount differs from payment {p.payment_id}: expected {p.amount_cents}, got {e.amount_cents}"
            )
        expected, got = _iban(p.creditor_iban), _iban(d.counterparty_iban)
        if expected and got and expected != got:
            return self.unmatched(
                pos, e, f"creditor IBAN differs from payment {p.payment_id}: expected {expected}, got {got}"
            )
        self.booked[p.payment_id] = pos
        return Decision(position=pos, entry_index=e.index, kind="payment", payment_ids=(p.payment_id,))

    def batch(self, pos: int, e: Entry, pmt_inf_id: str) -> Decision:
        block = self.blocks.get(pmt_inf_id)
        if block is None:
            return self.unmatched(pos, e, f"no batch with PmtInfId {pmt_inf_id}")
        what = f"batch PmtInfId {pmt_inf_id}"
        info = e.batch
        if info is not None and info.count is not None and info.count != block.count:
            return self.unmatched(pos, e, f"{what} count {info.count} != {block.count}")
        if e.amount_cents != block.total_cents:
            return self.unmatched(pos, e, f"{what} total {e.amount_cents} != {block.total_cents}")
        if info is not None and info.total_cents is not None and info.total_cents != block.total_cents:
            return self.unmatched(pos, e, f"{what} TtlAmt {info.total_cents} != {block.total_cents}")
        payments: list[ExpectedPayment] = []
        if e.details:
            if len(e.details) != block.count:
                return self.unmatched(
                    pos, e, f"{what} lists {len(e.details)} transactions, the batch has {block.count}"
                )
            members = set(block.end_to_end_ids)
            seen: set[str] = set()
            total = 0
            for n, d in enumerate(e.details):
                e2e = _e2e(d.end_to_end_id)
                if e2e is None:
                    return self.unmatched(pos, e, f"{what}: transaction {n} has no EndToEndId")
                if e2e in seen:
                    return self.unmatched(pos, e, f"{what}: EndToEndId {e2e} listed twice")
                seen.add(e2e)
                if e2e not in members:
                    return self.unmatched(pos, e, f"{what}: EndToEndId {e2e} is not in the batch")
                p = self.payments.get(e2e)
                if p is None:
                    return self.unmatched(pos, e, f"{what}: no payment with EndToEndId {e2e}")
                if d.amount_cents is not None and d.amount_cents != p.amount_cents:
                    return self.unmatched(
                        pos,
                        e,
                        f"{what}: amount differs from payment {p.payment_id}: expected {p.amount_cents},"
                        f" got {d.amount_cents}",
                    )
                total += p.amount_cents if d.amount_cents is None else d.amount_cents
                payments.append(p)
            if total != e.amount_cents:
                return self.unmatched(pos, e, f"{what}: transactions sum to {total}, the entry is {e.amount_cents}")
        else:
            for e2e in block.end_to_end_ids:
                p = self.payments.get(e2e)
                if p is None:
                    return self.unmatched(pos, e, f"{what}: no expected payment for its EndToEndId {e2e}")
                payments.append(p)
            if sum(p.amount_cents for p in payments) != block.total_cents:
                return self.unmatched(pos, e, f"{what}: its payments do not sum to its total {block.total_cents}")
        ids = tuple(p.payment_id for p in payments)
        if (why := self.already(ids, self.booked, "")) is not None:
            return self.unmatched(pos, e, why)
        for pid in ids:
            self.booked[pid] = pos
        return Decision(position=pos, entry_index=e.index, kind="batch", payment_ids=ids, block_id=block.block_id)

    def returned_payment(self, pos: int, e: Entry) -> Decision:
        with_reason = [d for d in e.details if d.return_reason]
        # A reversal without return information returns whatever it names.
        details = with_reason or [d for d in e.details if _e2e(d.original_end_to_end_id or d.end_to_end_id)]
        if not details:
            return self.unmatched(pos, e, "return without the original EndToEndId")
        payments: list[ExpectedPayment] = []
        total = 0
        for d in details:
            orig = _e2e(d.original_end_to_end_id or d.end_to_end_id)
            if orig is None:
                return self.unmatched(pos, e, "return without the original EndToEndId")
            p = self.payments.get(orig)
            if p is None:
                return self.unmatched(pos, e, f"no payment with EndToEndId {orig} to return")
            amount = e.amount_cents if len(details) == 1 else d.amount_cents
            if amount is not None and amount != p.amount_cents:
                return self.unmatched(
                    pos,
                    e,
                    f"return amount differs from payment {p.payment_id}: expected {p.amount_cents}, got {amount}",
                )
            total += p.amount_cents
            payments.append(p)
        if total != e.amount_cents:
            return self.unmatched(pos, e, f"returned payments sum to {total}, the entry is {e.amount_cents}")
        ids = tuple(p.payment_id for p in payments)
        if len(set(ids)) != len(ids):
            return self.unmatched(pos, e, "return names one payment twice")
        if (why := self.already(ids, self.returned, "return of ")) is not None:
            return self.unmatched(pos, e, why)
        for pid in ids:
            self.returned[pid] = pos
        return Decision(
            position=pos,
            entry_index=e.index,
            kind="return",
            payment_ids=ids,
            return_reasons=tuple(d.return_reason for d in details),
        )

    def top_up(self, pos: int, e: Entry) -> Decision:
        if e.amount_cents == 0:  # the ledger holds no transfer of 0
            return self.unmatched(pos, e, "a zero amount: nothing to book")
        structured = [normalise_reference(d.structured_reference) for d in e.details if d.structured_reference]
        texts = [d.remittance for d in e.details if d.remittance]
        if e.additional_info:
            texts.append(e.additional_info)
        candidates = structured + [ref for text in texts for ref in references_in(text)]
        hits: dict[str, TopUpTarget] = {}
        for ref in candidates:
            target = self.top_ups.get(ref)
            if target is not None:
                hits.setdefault(ref, target)
        if len(set(hits.values())) > 1:
            return self.unmatched(pos, e, f"names several top-up references: {', '.join(sorted(hits))}")
        if hits:
            ref, target = next(iter(hits.items()))
            return Decision(position=pos, entry_index=e.index, kind="top_up", top_up=target, reference=ref)
        if structured:
            return self.unmatched(pos, e, f"no top-up with reference {structured[0]}")
        return self.unmatched(pos, e, "no top-up reference in the remittance")


def match_entries(
    entries: Sequence[Entry],
    *,
    expected_payments: Mapping[str, ExpectedPayment],
    expected_blocks: Mapping[str, ExpectedBlock],
    top_up_references: Mapping[str, TopUpTarget],
    open_amounts: Iterable[OpenAmount] = (),
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> list[Decision]:
    """One ``Decision`` per entry, in input order (see the module docstring for the rules).

    ``entries`` may span several statements (``Decision.position`` is the
    index into ``entries``); a payment is matched at most once across them.
    """
    m = _Matcher(expected_payments, expected_blocks, top_up_references, open_amounts, window_days)
    return [m.decide(pos, e) for pos, e in enumerate(entries)]
