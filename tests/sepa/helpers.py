"""Builders and paths shared by the SEPA tests, so each test reads as a short scenario."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from sepa.model import CreditTransferFile, Party, Payment, PaymentBlock

REPO_ROOT = Path(__file__).resolve().parents[2]
# In CI the repo is cloned with shared/ beside it; a fresh clone has none.
BANK_FILES = REPO_ROOT.parent / "shared" / "bank-files"
GOLDEN = Path(__file__).resolve().parent / "golden"

CET = timezone(timedelta(hours=1))
CREATED = datetime(2026, 11, 22, 10, 0, 0, tzinfo=CET)  # a Sunday
MONDAY = date(2026, 11, 23)

# Valid IBANs (checksums verified by schwifty) for the cast of a payout run.
SPONSOR = Party(name="Gemeente Utrecht", iban="NL91ABNA0417164300", bic="ABNANL2A")
BIKE_SHOP = Party(name="Rijwielhandel Ørsted & Zonen", iban="NL35ABNA0001000000", bic="ABNANL2A")
SPORTS_CLUB = Party(name="Voetbalvereniging Één Doel", iban="NL20INGB0001234567", bic=None)
LIBRARY = Party(name="Bibliotheek Café-Lezen", iban="NL44RABO0123456789", bic="RABONL2U")
IBAN_POOL = ("NL35ABNA0001000000", "NL20INGB0001234567", "NL44RABO0123456789", "DE89370400440532013000")


def payment(
    seq: int = 1,
    amount: int = 1250,
    creditor: Party = BIKE_SHOP,
    remittance: str = "Uitbetaling P2026112201 RD-2026-0000001",
    structured_ref: str | None = None,
) -> Payment:
    return Payment(
        end_to_end_id=f"P2026112201-{seq:06d}",
        amount_cents=amount,
        creditor=creditor,
        remittance=remittance,
        structured_ref=structured_ref,
    )


def block(
    *payments: Payment,
    pmt_inf_id: str = "P2026112201-B1",
    debtor: Party = SPONSOR,
    execution_date: date = MONDAY,
    instant: bool = False,
    batch_booking: bool = True,
    **profile: bool,
) -> PaymentBlock:
    return PaymentBlock(
        pmt_inf_id=pmt_inf_id,
        debtor=debtor,
        execution_date=execution_date,
        instant=instant,
        batch_booking=batch_booking,
        **profile,
        payments=payments if payments else (payment(),),
    )


def ctf(*blocks: PaymentBlock, version: str = "pain.001.001.09", msg_id: str = "P2026112201") -> CreditTransferFile:
    return CreditTransferFile(
        msg_id=msg_id,
        created_at=CREATED,
        initiating_party="Gemeente Utrecht",
        version=version,  # type: ignore[arg-type]
        blocks=blocks if blocks else (block(),),
    )


def shared_xsd_validate(data: bytes, schema: str) -> None:
    """Validate against the third-party copy of the XSD, not our shipped one."""
    xsd_path = BANK_FILES / "xsd" / f"{schema}.xsd"
    if not xsd_path.exists():
        pytest.skip(f"{xsd_path} absent (shared bank files are beside the repo in CI only)")
    schema_doc = etree.XMLSchema(etree.parse(str(xsd_path)))
    doc = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    assert schema_doc.validate(doc), str(schema_doc.error_log)


def bank_file(name: str) -> bytes:
    path = BANK_FILES / name
    if not path.exists():
        pytest.skip(f"{path} absent (shared bank files are beside the repo in CI only)")
    return path.read_bytes()
