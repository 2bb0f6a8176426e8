"""Bank statements as small immutable records, the same for camt.053, camt.054 and MT940.

Amounts are int cents. An entry's ``amount_cents`` is never negative; its
direction is ``credit_debit`` (CRDT adds to the account, DBIT takes from it).
Balances are signed (a DBIT balance is negative). Nothing here reads XML or
text: the parsers build these, ``synth`` writes them back out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Literal

import msgspec
from schwifty import exceptions as iban_errors
from schwifty import registry

StatementKind = Literal["camt.053", "camt.054", "mt940"]
CreditDebit = Literal["CRDT", "DBIT"]
CREDIT: CreditDebit = "CRDT"
DEBIT: CreditDebit = "DBIT"
BOOKED = "BOOK"

# The largest amount a statement may carry, in cents: 10^15 is far beyond any
# sponsor's account and far inside bigint (the same bound as ledger.money).
MAX_AMOUNT_CENTS = 10**15


class BankTransactionCode(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """ISO domain / family / sub-family (e.g. PMNT / ICDT / ESCT) and the bank's own code.

    MT940 has only the bank's code: the ``:61:`` transaction type (``NTRF``, ``N541``).
    """

    domain: str | None = None
    family: str | None = None
    subfamily: str | None = None
    proprietary: str | None = None


class BatchInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """``NtryDtls/Btch``: the payment block a batch-booked entry stands for.

    MT940 carries only the PmtInfId (``/PREF/``).
    """

    msg_id: str | None = None
    pmt_inf_id: str | None = None
    count: int | None = None
    total_cents: int | None = None


class TxDetail(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One transaction inside an entry (``TxDtls``; for MT940 the ``:86:`` line)."""

    end_to_end_id: str | None = None
    instruction_id: str | None = None
    amount_cents: int | None = None
    # The other side: the creditor of a debit, the debtor of a credit.
    counterparty_name: str | None = None
    counterparty_iban: str | None = None
    remittance: str | None = None
    # ISO 11649 (RF...) or a Dutch betalingskenmerk, exactly as the bank wrote it.
    structured_reference: str | None = None
    # ISO return reason (AC04, MD07, MS03, ...) from RtrInf/Rsn or MT940 /RTRN/.
    return_reason: str | None = None
    # A SEPA return repeats the original EndToEndId; the parsers copy it here
    # when the detail carries a return reason, so the matcher reads one field.
    original_end_to_end_id: str | None = None


class Entry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    index: int  # position within its statement, from 0
    amount_cents: int  # >= 0; the direction is credit_debit
    credit_debit: CreditDebit
    reversal: bool = False
    status: str = BOOKED  # BOOK; camt.054 may also report PDNG / INFO
    booking_date: date | None = None
    value_date: date | None = None
    bank_reference: str | None = None  # AcctSvcrRef; MT940: the reference after "//"
    entry_reference: str | None = None  # NtryRef; MT940: the account owner's reference (not NONREF)
    bank_transaction_code: BankTransactionCode | None = None
    batch: BatchInfo | None = None
    details: tuple[TxDetail, ...] = ()
    additional_info: str | None = None  # AddtlNtryInf

    @property
    def signed_cents(self) -> int:
        """What the entry did to the balance: positive for CRDT, negative for DBIT.

        ``RvslInd`` does not flip it: ISO (and MT940's RC/RD marks) already
        give a reversal the direction in which it was booked.
        """
        return self.amount_cents if self.credit_debit == CREDIT else -self.amount_cents

    @property
    def end_to_end_ids(self) -> tuple[str, ...]:
        return tuple(d.end_to_end_id for d in self.details if d.end_to_end_id)

    @property
    def is_booked(self) -> bool:
        return self.status == BOOKED

    def fingerprint(self, account_iban: str, *, occurrence: int = 0) -> str:
        """A stable key (sha256 hex) for "this booking on this account", used by the
        importer as a unique key so an entry that arrives in two statements (a
        camt.054 notification and the day's camt.053, or two overlapping
        exports) is booked once.

        It covers what the bank cannot change between two reports of the same
        booking: the account IBAN, booking and value date, the signed amount,
        the bank's reference (AcctSvcrRef / the MT940 "//" reference) and the
        first EndToEndId. It leaves out everything that differs between
        reports: the statement id, the message id, the position in the file,
        free texts (banks shorten them differently per format).

        Without a bank reference two genuinely distinct bookings can agree on
        all of that (two EUR 5.00 charges on one day). Then ``occurrence``
        tells them apart: it is the number of earlier entries *of the same
        statement* with the same key (``Statement.fingerprints`` computes it).
        That was chosen over the entry's position in the statement, which
        would give the same booking a different key in every statement that
        contains it, defeating the purpose; with ``occurrence`` the same
        booking seen in an overlapping statement gets the same key, and a
        second identical booking gets a new one. For an entry with a bank
        reference the first occurrence keeps the key it always had (the
        reference is meant to be the bank's unique id); a repeat of the same
        reference in one statement (``NOTPROVIDED`` on two equal charges)
        gets a numbered key, like an entry without one.
        """
        return self._fingerprint_of(self._fingerprint_base(account_iban), occurrence)

    def _fingerprint_of(self, base: str, occurrence: int) -> str:
        tail = "" if self.bank_reference and occurrence == 0 else str(occurrence)
        return hashlib.sha256(f"{base}\x1f{tail}".encode()).hexdigest()

    def _fingerprint_base(self, account_iban: str) -> str:
        return "\x1f".join(
            (
                "v1",
                account_iban,
                "" if self.booking_date is None else self.booking_date.isoformat(),
                "" if self.value_date is None else self.value_date.isoformat(),
                str(self.signed_cents),
                self.bank_reference or "",
                next(iter(self.end_to_end_ids), ""),
            )
        )


class Statement(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    kind: StatementKind
    message_id: str  # GrpHdr/MsgId; MT940 :20:
    statement_id: str  # Stmt/Id or Ntfctn/Id; MT940 :28C:
    electronic_sequence: int | None = None  # ElctrncSeqNb
    legal_sequence: int | None = None  # LglSeqNb (MT940's :28C: stays in statement_id)
    account_iban: str
    currency: str
    created_at: datetime | None = None  # Stmt (else GrpHdr) CreDtTm; MT940 has none
    # Signed cents. OPBD (or PRCD) / CLBD; MT940 :60F:/:60M: and :62F:/:62M:.
    # camt.054 has no balances.
    opening_balance_cents: int | None = None
    closing_balance_cents: int | None = None
    # The closing balance's date, else the end of FrToDt, else the creation date.
    statement_date: date
    entries: tuple[Entry, ...] = ()

    @property
    def entries_total_cents(self) -> int:
        return sum(e.signed_cents for e in self.entries if e.is_booked)

    def balance_problem(self) -> str | None:
        """None when opening + booked entries == closing (or a balance is absent), else why not."""
        if self.opening_balance_cents is None or self.closing_balance_cents is None:
            return None
        computed = self.opening_balance_cents + self.entries_total_cents
        if computed == self.closing_balance_cents:
            return None
        return (
            f"statement {self.statement_id} of {self.account_iban}: opening balance {self.opening_balance_cents}"
            f" + entries {self.entries_total_cents} = {computed}, but the closing balance is"
            f" {self.closing_balance_cents} (difference {self.closing_balance_cents - computed} cents)"
        )

    def fingerprints(self) -> tuple[str, ...]:
        """``Entry.fingerprint`` for every entry, in order, with ``occurrence`` filled in."""
        seen: dict[str, int] = {}
        out = []
        for e in self.entries:
            key = e._fingerprint_base(self.account_iban)
            if e.bank_reference and key not in seen:
                seen[key] = 1
                out.append(e._fingerprint_of(key, 0))
                continue
            n = seen.get(key, 0)
            seen[key] = n + 1
            out.append(e._fingerprint_of(key, n))
        return tuple(out)

    def details(self) -> Iterator[tuple[Entry, TxDetail]]:
        for e in self.entries:
            for d in e.details:
                yield e, d


# ---------------------------------------------------------------- amounts


def cents(text: str, *, decimal_mark: str = ".") -> int:
    """Decimal text to int cents by string arithmetic, never float.

    '12.5' -> 1250, '0.05' -> 5, '100.' (MT940 allows an empty fraction) -> 10000.
    More than two fraction digits is refused unless the extra digits are
    zeros (ISO allows five, '12.500' is exactly 1250 cents): a fraction of a
    cent is never rounded. Only ASCII digits: ``str.isdigit`` alone would let
    '١٢' through. Raises ValueError with the text.
    """
    # Fast path for the usual "1234.56": a statement has one or two per entry.
    if len(text) > 3 and text[-3] == decimal_mark and text.isascii():
        whole, frac = text[:-3], text[-2:]
        if whole.isdigit() and frac.isdigit() and len(whole) <= 13:
            return int(whole) * 100 + int(frac)
    whole, _, frac = text.partition(decimal_mark)
    if (
        not whole
        or len(whole) > 15
        or not (whole.isascii() and whole.isdigit())
        or (frac and not (frac.isascii() and frac.isdigit()))
    ):
        raise ValueError(f"not a decimal amount: {text[:40]!r}")
    if len(frac) > 2:
        if frac[2:].strip("0"):
            raise ValueError(f"more than two decimals (a fraction of a cent): {text[:40]!r}")
        frac = frac[:2]
    value = int(whole) * 100 + (int(frac.ljust(2, "0")) if frac else 0)
    if value > MAX_AMOUNT_CENTS:
        raise ValueError(f"amount out of range: {text[:40]!r}")
    return value


# ---------------------------------------------------------------- account IBANs

_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")


def normalise_account_iban(text: str) -> str:
    """The statement account's IBAN, compact and upper case; ValueError unless it has
    an IBAN's shape for its country (length and BBAN pattern from schwifty's registry).

    The check digits are deliberately not verified here: the importer must
    find the IBAN among the sponsor's known accounts anyway, which refuses a
    mistyped one, and real exports carry IBANs whose check digits fail (the
    ING sample in shared/bank-files does) that we must still be able to read.
    """
    iban = text.replace(" ", "").upper()
    if _IBAN_SHAPE.fullmatch(iban) is None:
        raise ValueError(f"{text[:40]!r} is not an IBAN")
    try:
        spec = registry.get_iban_spec(iban[:2])
    except iban_errors.SchwiftyException:
        raise ValueError(f"{text[:40]!r} is not an IBAN: unknown country {iban[:2]!r}") from None
    if len(iban) != spec.iban_length or spec.regex.match(iban[4:]) is None:
        raise ValueError(f"{text[:40]!r} is not a {iban[:2]} IBAN ({spec.iban_length} characters, {spec.iban_spec})")
    return iban


def iban_length(country: str) -> int | None:
    """The IBAN length of ``country`` (18 for NL), None for an unknown country."""
    try:
        return int(registry.get_iban_spec(country.upper()).iban_length)
    except iban_errors.SchwiftyException:
        return None
