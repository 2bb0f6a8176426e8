"""The matcher, rule by rule and reason by reason, then a property: a statement
synthesised from any set of expected payments matches completely, and the same
way twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciliation import parse_camt
from reconciliation.match import (
    MAX_SUGGESTIONS,
    Decision,
    ExpectedBlock,
    ExpectedPayment,
    OpenAmount,
    TopUpTarget,
    is_rf_reference,
    match_entries,
    normalise_reference,
    references_in,
)
from reconciliation.model import BatchInfo, Entry, Statement, TxDetail
from reconciliation.synth import build_camt053
from sepa.rules import creditor_reference
from tests.reconciliation.helpers import (
    BIKE_SHOP,
    BLOCKS,
    DAY,
    FUND,
    FUND_REF,
    LIBRARY,
    PAYMENTS,
    SPORTS_CLUB,
    TOP_UPS,
    detail,
    e2e,
    payout_day,
    payout_day_entries,
)


def _match(*entries: Entry, open_amounts: tuple[OpenAmount, ...] = (), **index: object) -> list[Decision]:
    return match_entries(
        entries,
        expected_payments=index.get("payments", PAYMENTS),  # type: ignore[arg-type]
        expected_blocks=index.get("blocks", BLOCKS),  # type: ignore[arg-type]
        top_up_references=index.get("top_ups", TOP_UPS),  # type: ignore[arg-type]
        open_amounts=open_amounts,
    )


def debit(amount: int, *details: TxDetail, batch: BatchInfo | None = None, **kw: Any) -> Entry:
    return Entry(
        index=0,
        amount_cents=amount,
        credit_debit="DBIT",
        booking_date=DAY,
        value_date=DAY,
        batch=batch,
        details=details,
        **kw,
    )


def credit(amount: int, *details: TxDetail, **kw: Any) -> Entry:
    return Entry(
        index=0, amount_cents=amount, credit_debit="CRDT", booking_date=DAY, value_date=DAY, details=details, **kw
    )


BATCH, SINGLE, RETURN, TOP_UP, CHARGE = payout_day_entries()

# ---------------------------------------------------------------- 1. EndToEndId


def test_a_single_booking_matches_its_payment_by_end_to_end_id() -> None:
    [d] = _match(SINGLE)
    assert (d.kind, d.payment_ids, d.reason, d.matched) == ("payment", ("pay-4",), None, True)


def test_amount_differs() -> None:
    [d] = _match(debit(2_998, detail(4, LIBRARY)))
    assert (d.kind, d.reason) == ("unmatched", "amount differs from payment pay-4: expected 2999, got 2998")


def test_unknown_end_to_end_id() -> None:
    [d] = _match(debit(2_999, TxDetail(end_to_end_id="P2026112201-999999")))
    assert d.reason == "no payment with EndToEndId P2026112201-999999"


def test_creditor_iban_differs() -> None:
    [d] = _match(debit(2_999, detail(4, BIKE_SHOP)))
    assert d.reason == (f"creditor IBAN differs from payment pay-4: expected {LIBRARY[1]}, got {BIKE_SHOP[1]}")


def test_a_payment_is_matched_once_even_when_the_entry_comes_twice() -> None:
    first, second = _match(SINGLE, SINGLE)
    assert first.kind == "payment"
    assert (second.kind, second.reason) == ("unmatched", "already matched: payment pay-4 by the entry at position 0")


def test_notprovided_is_no_end_to_end_id() -> None:
    [d] = _match(debit(2_999, TxDetail(end_to_end_id="NOTPROVIDED")))
    assert d.reason == "no EndToEndId or PmtInfId to match on"


# ---------------------------------------------------------------- 2. batch PmtInfId + count + total


def test_a_batch_booking_with_transactions_covers_its_payments() -> None:
    [d] = _match(BATCH)
    assert (d.kind, d.payment_ids, d.block_id) == ("batch", ("pay-1", "pay-2", "pay-3"), "block-1")


def test_a_batch_booking_without_transactions_covers_the_block() -> None:
    [d] = _match(msgspec.structs.replace(BATCH, details=()))
    assert (d.kind, d.payment_ids) == ("batch", ("pay-1", "pay-2", "pay-3"))


def test_a_one_payment_block_booked_by_pmtinfid_only() -> None:
    [d] = _match(debit(2_999, batch=BatchInfo(pmt_inf_id="P2026112201-B2")))
    assert (d.kind, d.payment_ids, d.block_id) == ("batch", ("pay-4",), "block-2")


def _batch(**kw: object) -> Entry:
    return msgspec.structs.replace(BATCH, **kw)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (_batch(batch=BatchInfo(pmt_inf_id="P2026112201-B9", count=3)), "no batch with PmtInfId P2026112201-B9"),
        (
            _batch(batch=BatchInfo(pmt_inf_id="P2026112201-B1", count=4, total_cents=24_050)),
            "batch PmtInfId P2026112201-B1 count 4 != 3",
        ),
        (_batch(amount_cents=24_000), "batch PmtInfId P2026112201-B1 total 24000 != 24050"),
        (
            _batch(batch=BatchInfo(pmt_inf_id="P2026112201-B1", count=3, total_cents=1)),
            "batch PmtInfId P2026112201-B1 TtlAmt 1 != 24050",
        ),
        (_batch(details=BATCH.details[:2]), "batch PmtInfId P2026112201-B1 lists 2 transactions, the batch has 3"),
        (
            _batch(details=(*BATCH.details[:2], detail(4, LIBRARY))),
            "batch PmtInfId P2026112201-B1: EndToEndId P2026112201-000004 is not in the batch",
        ),
        (
            _batch(details=(*BATCH.details[:2], BATCH.details[0])),
            "batch PmtInfId P2026112201-B1: EndToEndId P2026112201-000001 listed twice",
        ),
        (
            _batch(details=(*BATCH.details[:2], msgspec.structs.replace(BATCH.details[2], amount_cents=7_551))),
            "batch PmtInfId P2026112201-B1: amount differs from payment pay-3: expected 7550, got 7551",
        ),
        (
            _batch(details=(*BATCH.details[:2], msgspec.structs.replace(BATCH.details[2], end_to_end_id=None))),
            "batch PmtInfId P2026112201-B1: transaction 2 has no EndToEndId",
        ),
        (
            debit(100, TxDetail(end_to_end_id="A"), TxDetail(end_to_end_id="B")),
            "2 transactions but no PmtInfId to match a batch on",
        ),
    ],
)
def test_batch_reasons(entry: Entry, reason: str) -> None:
    [d] = _match(entry)
    assert (d.kind, d.reason) == ("unmatched", reason)


def test_batch_transactions_must_sum_to_the_entry() -> None:
    block = ExpectedBlock(block_id="b", pmt_inf_id="X", count=2, total_cents=300, end_to_end_ids=("A", "B"))
    payments = {
        "A": ExpectedPayment(payment_id="a", end_to_end_id="A", amount_cents=100),
        "B": ExpectedPayment(payment_id="b", end_to_end_id="B", amount_cents=100),  # the index is off by 100
    }
    entry = debit(300, TxDetail(end_to_end_id="A"), TxDetail(end_to_end_id="B"), batch=BatchInfo(pmt_inf_id="X"))
    [d] = _match(entry, payments=payments, blocks={"X": block})
    assert d.reason == "batch PmtInfId X: transactions sum to 200, the entry is 300"


def test_a_payment_in_a_batch_and_again_alone_is_matched_once() -> None:
    batch, single = _match(BATCH, debit(4_000, detail(2, SPORTS_CLUB)))
    assert batch.kind == "batch"
    assert single.reason == "already matched: payment pay-2 by the entry at position 0"


# ---------------------------------------------------------------- 3. returns


def test_a_return_names_its_payment_and_keeps_the_reason() -> None:
    [d] = _match(RETURN)
    assert (d.kind, d.payment_ids, d.return_reasons) == ("return", ("pay-2",), ("AC04",))


def test_booked_then_returned_in_one_statement() -> None:
    decisions = _match(*payout_day_entries())
    assert [d.kind for d in decisions] == ["batch", "payment", "return", "top_up", "unmatched"]


def test_a_credit_reversal_without_a_reason_is_a_return() -> None:
    [d] = _match(credit(2_999, TxDetail(end_to_end_id=e2e(4)), reversal=True))
    assert (d.kind, d.payment_ids, d.return_reasons) == ("return", ("pay-4",), (None,))


def test_a_batch_return_with_several_transactions() -> None:
    entry = credit(
        16_500,
        TxDetail(end_to_end_id=e2e(1), amount_cents=12_500, return_reason="AC04"),
        TxDetail(end_to_end_id=e2e(2), amount_cents=4_000, return_reason="MD07"),
    )
    [d] = _match(entry)
    assert (d.kind, d.payment_ids, d.return_reasons) == ("return", ("pay-1", "pay-2"), ("AC04", "MD07"))


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (credit(4_000, TxDetail(return_reason="AC04")), "return without the original EndToEndId"),
        (
            credit(4_000, TxDetail(end_to_end_id="X-1", return_reason="AC04")),
            "no payment with EndToEndId X-1 to return",
        ),
        (
            credit(3_999, TxDetail(end_to_end_id=e2e(2), return_reason="AC04")),
            "return amount differs from payment pay-2: expected 4000, got 3999",
        ),
    ],
)
def test_return_reasons(entry: Entry, reason: str) -> None:
    [d] = _match(entry)
    assert (d.kind, d.reason) == ("unmatched", reason)


def test_a_payment_is_returned_once() -> None:
    first, second = _match(RETURN, RETURN)
    assert first.kind == "return"
    assert second.reason == "already matched: return of payment pay-2 by the entry at position 0"


def test_a_debit_reversal_is_not_matched() -> None:
    [d] = _match(debit(2_999, detail(4, LIBRARY), reversal=True))
    assert d.reason == "debit reversal (of an earlier credit): not matched automatically"


# ---------------------------------------------------------------- 4. top-up references


def test_a_top_up_by_structured_reference() -> None:
    [d] = _match(TOP_UP)
    assert (d.kind, d.top_up, d.reference) == ("top_up", FUND, FUND_REF)


def test_a_zero_amount_with_a_top_up_reference_is_not_a_top_up() -> None:
    """The ledger refuses a transfer of 0: a 0.00 line (a bank's notice) would fail the whole import."""
    [d] = _match(msgspec.structs.replace(TOP_UP, amount_cents=0))
    assert d.kind == "unmatched" and d.reason is not None and "zero" in d.reason


@pytest.mark.parametrize(
    "remittance",
    [
        f"Aanvulling budget {FUND_REF}",
        f"aanvulling {FUND_REF.lower()} 2026",
        " ".join(FUND_REF[i : i + 4] for i in range(0, len(FUND_REF), 4)) + " Leergeld",
    ],
    ids=["compact", "lower-case", "groups-of-four"],
)
def test_a_top_up_by_a_reference_in_the_remittance(remittance: str) -> None:
    [d] = _match(credit(100, TxDetail(remittance=remittance)))
    assert (d.kind, d.top_up) == ("top_up", FUND)


def test_a_dutch_betalingskenmerk() -> None:
    kenmerk = "5000 0012 3456 7890"
    top_ups = {normalise_reference(kenmerk): FUND}
    [by_structured] = _match(credit(100, TxDetail(structured_reference="5000001234567890")), top_ups=top_ups)
    [by_text] = _match(credit(100, TxDetail(remittance=f"betalingskenmerk {kenmerk}")), top_ups=top_ups)
    assert by_structured.kind == by_text.kind == "top_up"


def test_a_reference_is_never_a_substring_of_free_text() -> None:
    [d] = _match(credit(100, TxDetail(remittance=f"X{FUND_REF}Y")))
    assert (d.kind, d.reason) == ("unmatched", "no top-up reference in the remittance")


def test_two_different_funds_in_one_remittance() -> None:
    other = creditor_reference("JEUGDFONDS2026")
    top_ups = {**TOP_UPS, other: TopUpTarget(fund_id="fund-jeugdfonds")}
    [d] = _match(credit(100, TxDetail(remittance=f"{FUND_REF} en {other}")), top_ups=top_ups)
    assert d.reason == f"names several top-up references: {', '.join(sorted([FUND_REF, other]))}"


def test_unknown_structured_reference() -> None:
    unknown = creditor_reference("ONBEKEND")
    [d] = _match(credit(100, TxDetail(structured_reference=unknown)))
    assert d.reason == f"no top-up with reference {unknown}"


def test_rf_check_digits_agree_with_sepa() -> None:
    for body in ("LEERGELD2026", "1", "ABCDEFGHIJKLMNOPQRSTU"):
        assert is_rf_reference(creditor_reference(body))
    assert not is_rf_reference("RF00LEERGELD2026")
    assert references_in("betaling RF18 5390 0754 7034 dank") == ["RF18539007547034"]


# ---------------------------------------------------------------- 5. suggestions only


def test_unmatched_debits_get_suggestions_by_amount_and_date_never_a_match() -> None:
    opens = (
        OpenAmount(payment_id="far", amount_cents=795, execution_date=DAY - timedelta(days=10)),
        OpenAmount(payment_id="near", amount_cents=795, execution_date=DAY - timedelta(days=1)),
        OpenAmount(payment_id="same-day", amount_cents=795, execution_date=DAY),
        OpenAmount(payment_id="other-amount", amount_cents=796, execution_date=DAY),
    )
    [d] = _match(CHARGE, open_amounts=opens)
    assert (d.kind, d.suggestions) == ("unmatched", ("same-day", "near"))


def test_suggestions_are_bounded_and_skip_payments_already_matched() -> None:
    opens = tuple(OpenAmount(payment_id=f"p{n}", amount_cents=2_999, execution_date=DAY) for n in range(10))
    opens += (OpenAmount(payment_id="pay-4", amount_cents=2_999, execution_date=DAY),)
    matched, unmatched = _match(SINGLE, debit(2_999), open_amounts=opens)
    assert matched.kind == "payment"
    assert len(unmatched.suggestions) == MAX_SUGGESTIONS
    assert "pay-4" not in unmatched.suggestions


def test_pending_entries_are_not_matched() -> None:
    [d] = _match(msgspec.structs.replace(SINGLE, status="PDNG"))
    assert (d.kind, d.reason) == ("unmatched", "entry status PDNG: not booked")


# ---------------------------------------------------------------- the property


@st.composite
def _payout(draw: st.DrawFn) -> tuple[Statement, dict[str, ExpectedPayment], dict[str, ExpectedBlock]]:
    n_blocks = draw(st.integers(1, 6))
    payments: dict[str, ExpectedPayment] = {}
    blocks: dict[str, ExpectedBlock] = {}
    entries: list[Entry] = []
    seq = 0
    for b in range(n_blocks):
        pmt_inf_id = f"P2026112201-B{b + 1}"
        amounts = draw(st.lists(st.integers(1, 10**9), min_size=1, max_size=8))
        members = []
        for amount in amounts:
            seq += 1
            p = ExpectedPayment(
                payment_id=f"pay-{seq}",
                end_to_end_id=e2e(seq),
                amount_cents=amount,
                creditor_iban="NL35ABNA0001000000",
                pmt_inf_id=pmt_inf_id,
            )
            payments[p.end_to_end_id] = p
            members.append(p)
        blocks[pmt_inf_id] = ExpectedBlock(
            block_id=f"block-{b}",
            pmt_inf_id=pmt_inf_id,
            count=len(members),
            total_cents=sum(amounts),
            end_to_end_ids=tuple(p.end_to_end_id for p in members),
        )
        booking = draw(st.sampled_from(["batch", "batch-with-details", "single"]))
        if booking == "single":
            for p in members:
                entries.append(
                    debit(p.amount_cents, TxDetail(end_to_end_id=p.end_to_end_id, counterparty_iban=p.creditor_iban))
                )
        else:
            with_amounts = draw(st.booleans())
            details = (
                tuple(
                    TxDetail(end_to_end_id=p.end_to_end_id, amount_cents=p.amount_cents if with_amounts else None)
                    for p in members
                )
                if booking == "batch-with-details"
                else ()
            )
            count = draw(st.sampled_from([len(members), None]))
            entries.append(
                debit(
                    sum(amounts),
                    *details,
                    batch=BatchInfo(pmt_inf_id=pmt_inf_id, count=count, total_cents=sum(amounts)),
                )
            )
    order = draw(st.permutations(range(len(entries))))
    shuffled = tuple(msgspec.structs.replace(entries[k], index=i) for i, k in enumerate(order))
    statement = msgspec.structs.replace(
        payout_day(),
        entries=shuffled,
        closing_balance_cents=payout_day().opening_balance_cents - sum(e.amount_cents for e in shuffled),  # type: ignore[operator]
    )
    return statement, payments, blocks


@given(payout=_payout(), version=st.sampled_from(["camt.053.001.02", "camt.053.001.08"]))
@settings(max_examples=80, deadline=None)
def test_a_statement_of_expected_payments_matches_completely_and_deterministically(
    payout: tuple[Statement, dict[str, ExpectedPayment], dict[str, ExpectedBlock]], version: str
) -> None:
    statement, payments, blocks = payout
    # Through the bank file and back, as the importer would see it.
    [parsed] = parse_camt(build_camt053(statement, version, validate=False))  # type: ignore[arg-type]
    assert parsed == statement
    decisions = match_entries(parsed.entries, expected_payments=payments, expected_blocks=blocks, top_up_references={})
    assert [d for d in decisions if not d.matched] == []
    matched = [pid for d in decisions for pid in d.payment_ids]
    assert sorted(matched) == sorted(p.payment_id for p in payments.values())  # each exactly once
    again = match_entries(parsed.entries, expected_payments=payments, expected_blocks=blocks, top_up_references={})
    assert again == decisions
