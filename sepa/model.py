"""Payment instructions as small immutable records.

These are what ``settlement/`` hands to ``build_pain001``: the IBAN, BIC and
name are the ones copied into the payment when the run was built, never
looked up again here. Amounts are int cents.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import msgspec

Pain001Version = Literal["pain.001.001.09", "pain.001.001.03"]
PAIN001_VERSIONS: tuple[Pain001Version, ...] = ("pain.001.001.09", "pain.001.001.03")
# .09 is the default; .03 only for banks that still want it (DESIGN "SEPA and banks").
DEFAULT_PAIN001_VERSION: Pain001Version = "pain.001.001.09"


class Party(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    iban: str
    # None when unknown: SEPA has been IBAN-only inside the EEA since 2016, the file
    # then says NOTPROVIDED for the debtor agent (both XSDs require one) and leaves
    # the creditor agent out (both make it optional).
    bic: str | None = None


class Payment(msgspec.Struct, frozen=True, kw_only=True):
    end_to_end_id: str
    amount_cents: int
    creditor: Party
    # Unstructured remittance (Ustrd), at most 140 characters after EPC reduction.
    remittance: str = ""
    # A Dutch CUR betalingskenmerk (digits) or an ISO 11649 RF creditor
    # reference. When set it replaces the unstructured text: EPC allows one or
    # the other, and the creditor's bank matches on the structured one.
    structured_ref: str | None = None


class PaymentBlock(msgspec.Struct, frozen=True, kw_only=True):
    pmt_inf_id: str
    debtor: Party
    execution_date: date
    instant: bool = False
    # True: the sponsor sees one debit line per block on its statement, which
    # reconciliation matches by PmtInfId + count + total.
    batch_booking: bool = True
    # True: the debtor's bank prefers IBAN-only files. Inside the EEA a SEPA credit
    # transfer needs no BIC since 2016; the creditor agent is then left out even when
    # the BIC is known (rules.needs_creditor_bic: not for SEPA countries outside it).
    iban_only: bool = False
    payments: tuple[Payment, ...] = ()


class CreditTransferFile(msgspec.Struct, frozen=True, kw_only=True):
    msg_id: str
    created_at: datetime  # timezone-aware
    initiating_party: str
    version: Pain001Version = DEFAULT_PAIN001_VERSION
    blocks: tuple[PaymentBlock, ...] = ()

    @property
    def payment_count(self) -> int:
        return sum(len(b.payments) for b in self.blocks)
