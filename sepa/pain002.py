"""pain.002 (payment status report) bytes into a ``StatusReport``, and back for tests.

A bank answers per group, per payment block and per transaction, and may
report only the rejections. ACTC / ACCP mean "accepted for processing",
never "paid": only the bank statement proves payment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Literal

import msgspec
from lxml import etree

from ledger.money import EUR, format_decimal, parse_decimal
from sepa.errors import MalformedXml, UnsupportedMessage
from sepa.model import CreditTransferFile
from sepa.rules import identifier_problems
from sepa.xsd import parse_untrusted, validate, validate_tree

Pain002Version = Literal["pain.002.001.03", "pain.002.001.10"]
PAIN002_VERSIONS: tuple[Pain002Version, ...] = ("pain.002.001.03", "pain.002.001.10")
_NS_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"

# A report on a full 10,000-payment file that echoes every original
# transaction runs to ~30 MB; twice that is the most we will read into memory.
MAX_STATUS_REPORT_BYTES = 64 * 1024 * 1024
MAX_ADDITIONAL_INFO = 105  # AddtlInf: Max105Text

# Statuses (ExternalPaymentTransactionStatus1Code) that mean the bank took the
# instruction on. None of them means the money arrived.
ACCEPTED_STATUSES = frozenset({"ACTC", "ACCP", "ACSP", "ACSC", "ACWC", "ACCC", "ACFC", "ACWP", "ACIS"})
# The money left the debtor's account (SCT Inst reports these per payment).
SETTLED_STATUSES = frozenset({"ACSC", "ACCC"})
REJECTED_STATUS = "RJCT"
PENDING_STATUSES = frozenset({"PDNG", "RCVD"})

# Reason codes (ExternalStatusReason1Code) that say the creditor's bank
# details are wrong: retrying cannot help, the supplier must fix them (and a
# person approve the change) before the payable goes out again.
#
# Only codes that can be about the creditor's account belong here. The
# generic ones (AC01, AC04, AC06, AG01, RC01) name "the account" or "the
# BIC" without saying whose: given for one transaction of a credit transfer
# that is the creditor's, but given for a payment block (PmtInf: one debtor
# account) or the whole group it is the debtor's, so a caller must only use
# this for a reason given at transaction level (``TransactionStatus``).
# Debtor-only codes (AC02, AC05, AC10, AC13, ...) are never the supplier's
# fault and are not here.
ACCOUNT_ERROR_CODES = frozenset(
    {
        "AC01",  # incorrect account number (IBAN invalid or missing)
        "AC03",  # invalid creditor account number
        "AC04",  # closed account
        "AC06",  # blocked account
        "AC07",  # closed creditor account number
        "AC11",  # invalid creditor account currency
        "AC14",  # invalid creditor account type
        "AG01",  # transaction forbidden on this type of account
        "BE01",  # name does not match the account holder
        "BE04",  # missing creditor address
        "MD07",  # end customer deceased
        "RC01",  # bank identifier (BIC) incorrect
    }
)


def is_account_error(reason_code: str | None) -> bool:
    """True when ``reason_code``, given for one transaction, means the creditor's
    bank details must be blocked (see ``ACCOUNT_ERROR_CODES``)."""
    return reason_code is not None and reason_code.strip().upper() in ACCOUNT_ERROR_CODES


# ---------------------------------------------------------------- records


class StatusReason(msgspec.Struct, frozen=True, kw_only=True):
    code: str | None = None
    proprietary: str | None = None
    additional_info: tuple[str, ...] = ()


class TransactionStatus(msgspec.Struct, frozen=True, kw_only=True):
    original_pmt_inf_id: str
    original_end_to_end_id: str | None
    original_instruction_id: str | None
    status: str | None
    reasons: tuple[StatusReason, ...] = ()
    original_amount_cents: int | None = None
    original_currency: str | None = None

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons if r.code is not None)

    @property
    def is_rejected(self) -> bool:
        return self.status == REJECTED_STATUS


class PaymentBlockStatus(msgspec.Struct, frozen=True, kw_only=True):
    original_pmt_inf_id: str
    status: str | None
    reasons: tuple[StatusReason, ...] = ()
    original_count: int | None = None
    original_ctrl_sum_cents: int | None = None
    transactions: tuple[TransactionStatus, ...] = ()


class StatusReport(msgspec.Struct, frozen=True, kw_only=True):
    version: Pain002Version
    msg_id: str
    created_at: datetime | None
    original_msg_id: str
    original_msg_name_id: str
    group_status: str | None  # absent when the bank reports per block/transaction only
    group_reasons: tuple[StatusReason, ...] = ()
    original_count: int | None = None
    original_ctrl_sum_cents: int | None = None
    blocks: tuple[PaymentBlockStatus, ...] = ()

    def transactions(self) -> Iterator[TransactionStatus]:
        for block in self.blocks:
            yield from block.transactions


# ---------------------------------------------------------------- parsing

# [0-9], not \d: \d also matches non-ASCII digits.
_AMOUNT = re.compile(r"[0-9]{1,18}(\.[0-9]{1,5})?")
_COUNT = re.compile(r"[0-9]{1,15}")


class _Reader:
    def __init__(self, ns: str) -> None:
        self.ns = {"p": ns}

    def text(self, el: etree._Element, path: str) -> str | None:
        found = el.find(path, self.ns)
        if found is None or found.text is None:
            return None
        return found.text.strip() or None

    def required(self, el: etree._Element, path: str) -> str:
        value = self.text(el, path)
        if value is None:
            raise MalformedXml(f"status report lacks required element {path.replace('p:', '')}")
        return value

    def all(self, el: etree._Element, path: str) -> list[etree._Element]:
        return el.findall(path, self.ns)

    def cents(self, el: etree._Element, path: str) -> int | None:
        text = self.text(el, path)
        if text is None:
            return None
        if _AMOUNT.fullmatch(text) is None:
            raise MalformedXml(f"{path.replace('p:', '')} is not an amount: {text[:40]!r}")
        whole, _, frac = text.partition(".")
        # ISO allows up to five decimals; euros have two, so the rest must be zeros.
        if len(frac) > 2 and frac[2:].strip("0"):
            raise MalformedXml(f"{path.replace('p:', '')} has fractions of a cent: {text!r}")
        try:
            return parse_decimal(f"{whole}.{frac[:2]}" if frac else whole)
        except ValueError:
            raise MalformedXml(f"{path.replace('p:', '')} is out of range: {text[:40]!r}") from None

    def count(self, el: etree._Element, path: str) -> int | None:
        text = self.text(el, path)
        if text is None:
            return None
        if _COUNT.fullmatch(text) is None:
            raise MalformedXml(f"{path.replace('p:', '')} is not a count: {text[:40]!r}")
        return int(text)

    def reasons(self, el: etree._Element) -> tuple[StatusReason, ...]:
        return tuple(
            StatusReason(
                code=self.text(r, "p:Rsn/p:Cd"),
                proprietary=self.text(r, "p:Rsn/p:Prtry"),
                additional_info=tuple(
                    a.text.strip() for a in self.all(r, "p:AddtlInf") if a.text is not None and a.text.strip()
                ),
            )
            for r in self.all(el, "p:StsRsnInf")
        )


def _version(root: etree._Element) -> Pain002Version:
    qname = etree.QName(root)
    for v in PAIN002_VERSIONS:
        if qname.namespace == _NS_PREFIX + v and qname.localname == "Document":
            return v
    found = qname.namespace or "no namespace"
    raise UnsupportedMessage(
        f"not a pain.002 status report we read ({', '.join(PAIN002_VERSIONS)}): root {qname.localname} in {found}"
    )


def _created_at(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise MalformedXml(f"CreDtTm is not a date-time: {text[:40]!r}") from None


def parse_pain002(data: bytes, *, strict: bool = False) -> StatusReport:
    """Read a pain.002.001.03 or .10 status report.

    Hostile input (too large, DTD / entities, not well-formed) raises
    ``MalformedXml``; another message type raises ``UnsupportedMessage``.
    ``strict`` also validates against the shipped XSD; off by default because
    banks' reports drift from the schema in harmless ways and we would rather
    read the statuses than refuse them.
    """
    if len(data) > MAX_STATUS_REPORT_BYTES:
        raise MalformedXml(f"status report is {len(data)} bytes, more than {MAX_STATUS_REPORT_BYTES}")
    root = parse_untrusted(data)
    version = _version(root)
    if strict:
        validate_tree(root, version)
    r = _Reader(_NS_PREFIX + version)
    rpt = root.find("p:CstmrPmtStsRpt", r.ns)
    if rpt is None:
        raise MalformedXml("status report lacks CstmrPmtStsRpt")
    grp = rpt.find("p:OrgnlGrpInfAndSts", r.ns)
    if grp is None:
        raise MalformedXml("status report lacks OrgnlGrpInfAndSts")
    created = r.text(rpt, "p:GrpHdr/p:CreDtTm")

    blocks: list[PaymentBlockStatus] = []
    for b in r.all(rpt, "p:OrgnlPmtInfAndSts"):
        pmt_inf_id = r.required(b, "p:OrgnlPmtInfId")
        txs = tuple(
            TransactionStatus(
                original_pmt_inf_id=pmt_inf_id,
                original_end_to_end_id=r.text(t, "p:OrgnlEndToEndId"),
                original_instruction_id=r.text(t, "p:OrgnlInstrId"),
                status=r.text(t, "p:TxSts"),
                reasons=r.reasons(t),
                original_amount_cents=r.cents(t, "p:OrgnlTxRef/p:Amt/p:InstdAmt"),
                original_currency=_currency(t, r),
            )
            for t in r.all(b, "p:TxInfAndSts")
        )
        blocks.append(
            PaymentBlockStatus(
                original_pmt_inf_id=pmt_inf_id,
                status=r.text(b, "p:PmtInfSts"),
                reasons=r.reasons(b),
                original_count=r.count(b, "p:OrgnlNbOfTxs"),
                original_ctrl_sum_cents=r.cents(b, "p:OrgnlCtrlSum"),
                transactions=txs,
            )
        )
    return StatusReport(
        version=version,
        msg_id=r.required(rpt, "p:GrpHdr/p:MsgId"),
        created_at=None if created is None else _created_at(created),
        original_msg_id=r.required(grp, "p:OrgnlMsgId"),
        original_msg_name_id=r.required(grp, "p:OrgnlMsgNmId"),
        group_status=r.text(grp, "p:GrpSts"),
        group_reasons=r.reasons(grp),
        original_count=r.count(grp, "p:OrgnlNbOfTxs"),
        original_ctrl_sum_cents=r.cents(grp, "p:OrgnlCtrlSum"),
        blocks=tuple(blocks),
    )


def _currency(tx: etree._Element, r: _Reader) -> str | None:
    amt = tx.find("p:OrgnlTxRef/p:Amt/p:InstdAmt", r.ns)
    return None if amt is None else amt.get("Ccy")


# ---------------------------------------------------------------- reading against the file it answers


class SentPayment(msgspec.Struct, frozen=True, kw_only=True):
    """One transaction of the pain.001 a report answers, as we sent it."""

    end_to_end_id: str
    amount_cents: int


class SentBlock(msgspec.Struct, frozen=True, kw_only=True):
    """One payment block (PmtInf) of the pain.001 a report answers, as we sent it."""

    pmt_inf_id: str
    payments: tuple[SentPayment, ...]


Outcome = Literal["rejected", "accepted", "pending"]


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """What a report says about one payment.

    ``reason_code`` is the reason to show: the transaction's own, else its
    block's, else the group's. ``own_reason_code`` is only the one given for
    the transaction itself: a reason given for a block (one debtor account)
    or the whole file is about the debtor side, so only this one may say the
    creditor's account is wrong (``is_account_error``).
    """

    outcome: Outcome
    status: str
    reason_code: str | None = None
    reason_info: str | None = None
    own_reason_code: str | None = None


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    # by EndToEndId; a payment the report says nothing about is not here
    verdicts: dict[str, Verdict]
    # why the report does not describe the file; when there is any, apply none of it
    mismatches: tuple[str, ...]


def first_reason(reasons: Iterable[StatusReason]) -> tuple[str | None, str | None]:
    """The first reason code (Cd, else Prtry) of any StsRsnInf, and all their texts.

    StsRsnInf repeats, and the first one need not carry the code: a bank may
    lead with a text-only one.
    """
    reasons = tuple(reasons)
    code = next((r.code or r.proprietary for r in reasons if r.code or r.proprietary), None)
    info = "; ".join(a for r in reasons for a in r.additional_info) or None
    return code, info


def _outcome(status: str | None) -> Outcome | None:
    """None: the status says nothing about the payment itself (absent, or a code we do not act on)."""
    if status == REJECTED_STATUS:
        return "rejected"
    if status in ACCEPTED_STATUSES or status == "PART":
        return "accepted"
    if status in PENDING_STATUSES:
        return "pending"
    return None


def read_against(report: StatusReport, blocks: Sequence[SentBlock]) -> Reading:
    """What ``report`` says about each payment of the file made of ``blocks``,
    and every way in which it does not fit that file.

    Group status applies to every payment of the file, a block status
    (PmtInfSts) to the payments of that block only, a transaction status to
    the one payment it names, looked up in the block the report puts it
    under. The more specific status wins, with two exceptions that make the
    report contradict itself (a mismatch): a transaction or block accepted or
    pending inside a group or block the same report rejects, and one payment
    given two different statuses. RJCT is final; PART at group or block level
    means "some rejected": the payments it does not list otherwise are
    accepted (banks often list only the rejections). PDNG/RCVD change nothing.

    Mismatches: the report's OrgnlNbOfTxs / OrgnlCtrlSum (group or block) are
    not the file's, a block or transaction is not in the file (or not in the
    block named), or a transaction's original amount or currency is not the
    one sent. A caller must refuse such a report as a whole: applying the part
    that fits would act on a report that is about something else.
    """
    mismatches: list[str] = []
    by_block = {b.pmt_inf_id: b for b in blocks}
    block_of = {p.end_to_end_id: b.pmt_inf_id for b in blocks for p in b.payments}
    all_payments = [p for b in blocks for p in b.payments]

    def check_totals(where: str, count: int | None, ctrl_sum: int | None, payments: Sequence[SentPayment]) -> None:
        if count is not None and count != len(payments):
            mismatches.append(f"{where}: OrgnlNbOfTxs is {count}, the file has {len(payments)}")
        if ctrl_sum is not None and ctrl_sum != sum(p.amount_cents for p in payments):
            mismatches.append(
                f"{where}: OrgnlCtrlSum is {format_decimal(ctrl_sum)}, the file has "
                f"{format_decimal(sum(p.amount_cents for p in payments))}"
            )

    check_totals("group", report.original_count, report.original_ctrl_sum_cents, all_payments)
    gcode, ginfo = first_reason(report.group_reasons)
    group_outcome = _outcome(report.group_status)

    # Most general first; each level may overwrite what the one above said.
    verdicts: dict[str, Verdict] = {}
    if group_outcome == "rejected":
        for p in all_payments:
            verdicts[p.end_to_end_id] = Verdict(
                outcome="rejected", status=REJECTED_STATUS, reason_code=gcode, reason_info=ginfo
            )
    explicit: dict[str, str] = {}  # EndToEndId -> the status a transaction entry gave it
    for bs in report.blocks:
        sent = by_block.get(bs.original_pmt_inf_id)
        where = f"block {bs.original_pmt_inf_id}"
        if sent is None:
            mismatches.append(f"{where} is not in the file")
            continue
        check_totals(where, bs.original_count, bs.original_ctrl_sum_cents, sent.payments)
        bcode, binfo = first_reason(bs.reasons)
        block_outcome = _outcome(bs.status)
        if group_outcome == "rejected" and bs.status is not None and block_outcome != "rejected":
            mismatches.append(f"{where} is {bs.status} in a file the report rejects as a whole (GrpSts RJCT)")
        if block_outcome == "rejected":
            for p in sent.payments:
                verdicts[p.end_to_end_id] = Verdict(
                    outcome="rejected",
                    status=REJECTED_STATUS,
                    reason_code=bcode or gcode,
                    reason_info=binfo or ginfo,
                )
        elif block_outcome == "accepted" and group_outcome != "rejected":
            for p in sent.payments:
                verdicts.setdefault(p.end_to_end_id, Verdict(outcome="accepted", status=str(bs.status)))
        members = {p.end_to_end_id: p for p in sent.payments}
        for tx in bs.transactions:
            named = tx.original_end_to_end_id or tx.original_instruction_id
            if named is None:
                mismatches.append(f"{where}: a transaction status names no EndToEndId or InstrId")
                continue
            payment = members.get(named)
            if payment is None:
                elsewhere = block_of.get(named)
                mismatches.append(
                    f"transaction {named} is not in {where}"
                    + (f" (it is in block {elsewhere})" if elsewhere else " nor anywhere in the file")
                )
                continue
            if tx.original_instruction_id is not None and tx.original_instruction_id != named:
                # we send InstrId = EndToEndId: two different ones name two payments
                mismatches.append(
                    f"transaction {named}: OrgnlInstrId {tx.original_instruction_id} names another payment"
                )
            if tx.original_amount_cents is not None and tx.original_amount_cents != payment.amount_cents:
                mismatches.append(
                    f"transaction {named}: original amount {format_decimal(tx.original_amount_cents)}, "
                    f"sent {format_decimal(payment.amount_cents)}"
                )
            if tx.original_currency is not None and tx.original_currency != EUR:
                mismatches.append(f"transaction {named}: original currency {tx.original_currency}, sent {EUR}")
            status = tx.status or ""
            earlier = explicit.setdefault(named, status)
            if earlier != status:
                shown = (earlier or "without status", status or "without status")
                mismatches.append(f"transaction {named} is both {shown[0]} and {shown[1]}")
            tx_outcome = _outcome(tx.status)
            if tx_outcome is None:
                continue
            if tx_outcome != "rejected" and (block_outcome == "rejected" or group_outcome == "rejected"):
                level = "block" if block_outcome == "rejected" else "file"
                mismatches.append(f"transaction {named} is {tx.status} in a {level} the report rejects")
                continue
            tcode, tinfo = first_reason(tx.reasons)
            if tx_outcome == "rejected":
                verdicts[named] = Verdict(
                    outcome="rejected",
                    status=REJECTED_STATUS,
                    reason_code=tcode or bcode or gcode,
                    reason_info=tinfo,
                    own_reason_code=tcode,
                )
            else:
                verdicts[named] = Verdict(outcome=tx_outcome, status=str(tx.status))
    if group_outcome == "accepted":
        for p in all_payments:
            verdicts.setdefault(p.end_to_end_id, Verdict(outcome="accepted", status=str(report.group_status)))
    return Reading(verdicts=verdicts, mismatches=tuple(mismatches))


# ---------------------------------------------------------------- writing (for tests and demos)


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    end_to_end_id: str
    reason_code: str
    additional_info: str | None = None


def _status(rejected: int, total: int, accepted_status: str) -> str:
    if rejected == 0:
        return accepted_status
    return REJECTED_STATUS if rejected == total else "PART"


def build_pain002(
    file: CreditTransferFile,
    *,
    msg_id: str,
    created_at: datetime,
    version: Pain002Version = "pain.002.001.10",
    rejections: Iterable[Rejection] = (),
    report_accepted: bool = False,
    accepted_status: str = "ACCP",
) -> bytes:
    """The report a bank would send for ``file``: everything accepted except
    ``rejections``. Like most banks, only rejected transactions are listed
    unless ``report_accepted``. Validated against the shipped XSD.
    """
    if version not in PAIN002_VERSIONS:
        raise ValueError(f"unsupported pain.002 version {version!r}")
    if identifier_problems(msg_id):
        raise ValueError(f"msg_id {msg_id!r} breaks {identifier_problems(msg_id)}")
    rejected = {r.end_to_end_id: r for r in rejections}
    known = {p.end_to_end_id for b in file.blocks for p in b.payments}
    unknown = sorted(set(rejected) - known)
    if unknown:
        raise ValueError(f"rejections for EndToEndIds not in the file: {unknown[:5]}")

    ns = _NS_PREFIX + version

    def sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        el = etree.SubElement(parent, f"{{{ns}}}{name}")
        if text is not None:
            el.text = text
        return el

    # lxml-stubs type nsmap keys as str; None (the default namespace) is valid lxml.
    nsmap = {None: ns}
    doc = etree.Element(f"{{{ns}}}Document", nsmap=nsmap)  # type: ignore[arg-type]
    rpt = sub(doc, "CstmrPmtStsRpt")
    hdr = sub(rpt, "GrpHdr")
    sub(hdr, "MsgId", msg_id)
    sub(hdr, "CreDtTm", created_at.replace(microsecond=0).isoformat())
    grp = sub(rpt, "OrgnlGrpInfAndSts")
    sub(grp, "OrgnlMsgId", file.msg_id)
    sub(grp, "OrgnlMsgNmId", file.version)
    sub(grp, "OrgnlCreDtTm", file.created_at.replace(microsecond=0).isoformat())
    sub(grp, "OrgnlNbOfTxs", str(file.payment_count))
    sub(grp, "OrgnlCtrlSum", format_decimal(sum(p.amount_cents for b in file.blocks for p in b.payments)))
    sub(grp, "GrpSts", _status(len(rejected), file.payment_count, accepted_status))

    for block in file.blocks:
        block_rejected = [p for p in block.payments if p.end_to_end_id in rejected]
        listed = block.payments if report_accepted else tuple(block_rejected)
        if not listed and not report_accepted:
            continue  # an all-accepted block is covered by the group status
        b = sub(rpt, "OrgnlPmtInfAndSts")
        sub(b, "OrgnlPmtInfId", block.pmt_inf_id)
        sub(b, "OrgnlNbOfTxs", str(len(block.payments)))
        sub(b, "OrgnlCtrlSum", format_decimal(sum(p.amount_cents for p in block.payments)))
        sub(b, "PmtInfSts", _status(len(block_rejected), len(block.payments), accepted_status))
        for p in listed:
            rej = rejected.get(p.end_to_end_id)
            tx = sub(b, "TxInfAndSts")
            sub(tx, "OrgnlInstrId", p.end_to_end_id)
            sub(tx, "OrgnlEndToEndId", p.end_to_end_id)
            sub(tx, "TxSts", accepted_status if rej is None else REJECTED_STATUS)
            if rej is not None:
                info = sub(tx, "StsRsnInf")
                sub(sub(info, "Rsn"), "Cd", rej.reason_code)
                if rej.additional_info:
                    sub(info, "AddtlInf", rej.additional_info[:MAX_ADDITIONAL_INFO])
            amt = sub(sub(sub(tx, "OrgnlTxRef"), "Amt"), "InstdAmt", format_decimal(p.amount_cents))
            amt.set("Ccy", EUR)
    data: bytes = etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    validate(data, version)
    return data
