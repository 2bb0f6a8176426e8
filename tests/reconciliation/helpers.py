"""The cast of a payout day, shared by the reconciliation tests, so each test reads as a short scenario.

Gemeente Utrecht pays three suppliers in one batch-booked block and a
library in a single booking; the bank returns one of the batch payments
(AC04, account closed), the municipality tops up a fund by its RF
reference, and the bank books a charge nobody expected.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import msgspec
import pytest
from lxml import etree

from reconciliation.match import ExpectedBlock, ExpectedPayment, TopUpTarget
from reconciliation.model import BankTransactionCode, BatchInfo, Entry, Statement, TxDetail
from sepa.rules import creditor_reference
from tests.conftest import SHARED_BANK_FILES

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGEN = os.environ.get("RECON_REGEN_FIXTURES") == "1"

ACCOUNT = "NL91ABNA0417164300"  # the sponsor's payout account
DAY = date(2026, 11, 23)
CREATED = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)

BIKE_SHOP = ("Rijwielhandel Ørsted & Zonen", "NL35ABNA0001000000")
SPORTS_CLUB = ("Voetbalvereniging Één Doel", "NL20INGB0001234567")
CLOTHING_BANK = ("Kledingbank Noord", "NL44RABO0123456789")
LIBRARY = ("Bibliotheek Café-Lezen", "NL69INGB0123456789")

FUND_REF = creditor_reference("LEERGELD2026")  # an ISO 11649 RF reference
FUND = TopUpTarget(fund_id="fund-leergeld-2026", funding_source_id="gemeente-utrecht")

SCT_OUT = BankTransactionCode(domain="PMNT", family="ICDT", subfamily="ESCT", proprietary="NTRF")
SCT_IN = BankTransactionCode(domain="PMNT", family="RCDT", subfamily="ESCT", proprietary="NTRF")
SCT_RETURN = BankTransactionCode(domain="PMNT", family="ICDT", subfamily="RRTN", proprietary="NRTI")
CHARGES = BankTransactionCode(domain="ACMT", family="MDOP", subfamily="CHRG", proprietary="NCHG")


def e2e(seq: int) -> str:
    return f"P2026112201-{seq:06d}"


def payment(seq: int, amount: int, party: tuple[str, str], block: str = "P2026112201-B1") -> ExpectedPayment:
    return ExpectedPayment(
        payment_id=f"pay-{seq}", end_to_end_id=e2e(seq), amount_cents=amount, creditor_iban=party[1], pmt_inf_id=block
    )


PAYMENTS = {
    p.end_to_end_id: p
    for p in (
        payment(1, 12_500, BIKE_SHOP),
        payment(2, 4_000, SPORTS_CLUB),
        payment(3, 7_550, CLOTHING_BANK),
        payment(4, 2_999, LIBRARY, block="P2026112201-B2"),
    )
}
BLOCKS = {
    "P2026112201-B1": ExpectedBlock(
        block_id="block-1",
        pmt_inf_id="P2026112201-B1",
        count=3,
        total_cents=12_500 + 4_000 + 7_550,
        end_to_end_ids=(e2e(1), e2e(2), e2e(3)),
    ),
    "P2026112201-B2": ExpectedBlock(
        block_id="block-2", pmt_inf_id="P2026112201-B2", count=1, total_cents=2_999, end_to_end_ids=(e2e(4),)
    ),
}
TOP_UPS = {FUND_REF: FUND}


def detail(seq: int, party: tuple[str, str], *, amount: int | None = None, **kw: object) -> TxDetail:
    return TxDetail(
        end_to_end_id=e2e(seq),
        amount_cents=amount,
        counterparty_name=party[0],
        counterparty_iban=party[1],
        remittance=f"Uitbetaling P2026112201 RD-2026-{seq:07d}",
        **kw,  # type: ignore[arg-type]
    )


def payout_day_entries() -> tuple[Entry, ...]:
    return (
        Entry(  # the batch booking: one debit for block B1, with its three transactions
            index=0,
            amount_cents=24_050,
            credit_debit="DBIT",
            booking_date=DAY,
            value_date=DAY,
            bank_reference="ABN0000000000001",
            bank_transaction_code=SCT_OUT,
            batch=BatchInfo(msg_id="P2026112201", pmt_inf_id="P2026112201-B1", count=3, total_cents=24_050),
            details=(
                detail(1, BIKE_SHOP, amount=12_500),
                detail(2, SPORTS_CLUB, amount=4_000),
                detail(3, CLOTHING_BANK, amount=7_550),
            ),
        ),
        Entry(  # a single booking
            index=1,
            amount_cents=2_999,
            credit_debit="DBIT",
            booking_date=DAY,
            value_date=DAY,
            bank_reference="ABN0000000000002",
            bank_transaction_code=SCT_OUT,
            details=(detail(4, LIBRARY),),
        ),
        Entry(  # the sports club's account is closed: the bank returns payment 2
            index=2,
            amount_cents=4_000,
            credit_debit="CRDT",
            booking_date=DAY,
            value_date=DAY,
            bank_reference="ABN0000000000003",
            bank_transaction_code=SCT_RETURN,
            details=(
                TxDetail(
                    end_to_end_id=e2e(2),
                    counterparty_name=SPORTS_CLUB[0],
                    counterparty_iban=SPORTS_CLUB[1],
                    return_reason="AC04",
                    original_end_to_end_id=e2e(2),
                ),
            ),
        ),
        Entry(  # the municipality tops up the Leergeld fund by its RF reference
            index=3,
            amount_cents=5_000_000,
            credit_debit="CRDT",
            booking_date=DAY,
            value_date=DAY,
            bank_reference="ABN0000000000004",
            bank_transaction_code=SCT_IN,
            details=(
                TxDetail(
                    end_to_end_id="GEMUTR-2026-0042",
                    counterparty_name="Gemeente Utrecht",
                    counterparty_iban="NL86INGB0002445588",
                    structured_reference=FUND_REF,
                ),
            ),
        ),
        Entry(  # a charge nobody expected
            index=4,
            amount_cents=795,
            credit_debit="DBIT",
            booking_date=DAY,
            value_date=DAY,
            bank_reference="ABN0000000000005",
            bank_transaction_code=CHARGES,
            additional_info="Kosten gebruik betaalrekening",
        ),
    )


OPENING = 10_000_000


def payout_day(kind: str = "camt.053") -> Statement:
    entries = payout_day_entries()
    return Statement(
        kind=kind,  # type: ignore[arg-type]
        message_id="ABN-20261124-0001",
        statement_id="2026-11-23-NL91ABNA0417164300",
        electronic_sequence=327,
        account_iban=ACCOUNT,
        currency="EUR",
        created_at=CREATED,
        opening_balance_cents=OPENING,
        closing_balance_cents=OPENING + sum(e.signed_cents for e in entries),
        statement_date=DAY,
        entries=entries,
    )


def as_mt940(s: Statement) -> Statement:
    """What of ``s`` MT940 can carry: no ISO codes, batch by PmtInfId only, at most
    one detail, no detail amounts, no additional info, no creation time."""
    entries = []
    for e in s.entries:
        code = BankTransactionCode(proprietary=e.bank_transaction_code.proprietary) if e.bank_transaction_code else None
        details = e.details if len(e.details) == 1 else ()
        entries.append(
            msgspec.structs.replace(
                e,
                bank_transaction_code=code,
                batch=None if e.batch is None else BatchInfo(pmt_inf_id=e.batch.pmt_inf_id),
                details=tuple(msgspec.structs.replace(d, amount_cents=None) for d in details),
                additional_info=None,
            )
        )
    return msgspec.structs.replace(
        s, kind="mt940", statement_id="327", electronic_sequence=None, created_at=None, entries=tuple(entries)
    )


def pretty(data: bytes) -> bytes:
    """Re-indent a synthesised camt file so the fixture reads like a bank's."""
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    out: bytes = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return out


def fixture(name: str, data: bytes) -> bytes:
    """The committed fixture ``name``, checked to equal ``data`` (regenerate with RECON_REGEN_FIXTURES=1)."""
    path = FIXTURES / name
    if REGEN:
        FIXTURES.mkdir(exist_ok=True)
        path.write_bytes(data)
    assert path.exists(), f"missing fixture {path}; run with RECON_REGEN_FIXTURES=1"
    stored = path.read_bytes()
    assert stored == data, f"{name} changed; if intended, regenerate with RECON_REGEN_FIXTURES=1"
    return stored


def shared_xsd_validate(data: bytes, schema: str) -> None:
    """Validate against the third-party copy of the XSD, not our shipped one."""
    xsd_path = SHARED_BANK_FILES / "xsd" / f"{schema}.xsd"
    if not xsd_path.exists():
        pytest.skip(f"{xsd_path} absent (shared bank files are beside the repo in CI only)")
    schema_doc = etree.XMLSchema(etree.parse(str(xsd_path)))
    doc = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    assert schema_doc.validate(doc), str(schema_doc.error_log)
