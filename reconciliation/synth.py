"""Statement records back into bank files: camt.053 / camt.054 (.02 and .08) and MT940.

For tests (round trips, fixtures, hostile variants) and the benchmark, the
way ``sepa.build_pain002`` is for pain.002. The camt writers produce files
valid against the shipped XSDs (checked when ``validate``; the benchmark
turns that off for its 100,000-entry file) and ``parse(build(s)) == s`` for
every field the format carries:

- camt.053 carries all of ``Statement`` / ``Entry`` / ``TxDetail`` except that
  ``original_end_to_end_id`` is written as the EndToEndId (the parsers copy
  it back for a detail with a return reason), and needs ``created_at`` and at
  least one balance.
- camt.054 has no balances: ``opening/closing_balance_cents`` are not written,
  ``statement_date`` travels as the end of ``FrToDt``.
- MT940 carries per statement the message id (``:20:``), statement id
  (``:28C:``, ``n[/n]``), IBAN, currency, both balances and the date; per
  entry the dates, mark, amount, type (``bank_transaction_code.proprietary``
  if it is an MT940 type, else ``NTRF``), both references and the batch
  PmtInfId; per entry at most one detail: EndToEndId, InstrId, counterparty,
  remittance or structured reference, return reason. Not: ``created_at``,
  ``electronic_sequence``, ``legal_sequence`` (its number is in ``:28C:``),
  ISO transaction codes, batch count / total / MsgId, detail amounts,
  ``additional_info``, status (always BOOK).

Text is XML-escaped; values are not shortened: one that breaks the XSD
(an EndToEndId over 35 characters) is a ``SchemaInvalid`` on validation.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal
from xml.sax.saxutils import escape

from reconciliation.model import BankTransactionCode, Entry, Statement, TxDetail
from reconciliation.xsd import validate as xsd_validate

Camt053Version = Literal["camt.053.001.02", "camt.053.001.08"]
Camt054Version = Literal["camt.054.001.02", "camt.054.001.08"]

_NS_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
_MT940_LINE = 65  # SWIFT x-character lines
_MT940_TYPE = re.compile(r"[NSF][A-Z0-9]{3}")
_RETURN_CODE = re.compile(r"[A-Z0-9]{1,4}")
# MT940 names a reversal after what it reverses: RD (reversal of a debit) is booked as a credit.
_MARKS = {("CRDT", False): "C", ("DBIT", False): "D", ("CRDT", True): "RD", ("DBIT", True): "RC"}


def _dec(c: int) -> str:
    if c < 0:
        raise ValueError(f"amounts in camt are unsigned, got {c}")
    return f"{c // 100}.{c % 100:02d}"


def _e(text: str) -> str:
    return escape(text)


def _bank_code(code: BankTransactionCode | None) -> str:
    if code is None:
        return "<BkTxCd/>"
    parts = []
    if code.domain or code.family or code.subfamily:
        if not (code.domain and code.family and code.subfamily):
            raise ValueError(f"an ISO bank transaction code needs domain, family and sub-family: {code}")
        parts.append(
            f"<Domn><Cd>{_e(code.domain)}</Cd><Fmly><Cd>{_e(code.family)}</Cd>"
            f"<SubFmlyCd>{_e(code.subfamily)}</SubFmlyCd></Fmly></Domn>"
        )
    if code.proprietary:
        parts.append(f"<Prtry><Cd>{_e(code.proprietary)}</Cd></Prtry>")
    return f"<BkTxCd>{''.join(parts)}</BkTxCd>"


def _detail(d: TxDetail, entry: Entry, ccy: str, v08: bool) -> str:
    out = ["<TxDtls>"]
    e2e = d.end_to_end_id or d.original_end_to_end_id
    if d.instruction_id or e2e:
        out.append("<Refs>")
        if d.instruction_id:
            out.append(f"<InstrId>{_e(d.instruction_id)}</InstrId>")
        if e2e:
            out.append(f"<EndToEndId>{_e(e2e)}</EndToEndId>")
        out.append("</Refs>")
    if d.amount_cents is not None:
        if v08:
            out.append(f'<Amt Ccy="{ccy}">{_dec(d.amount_cents)}</Amt><CdtDbtInd>{entry.credit_debit}</CdtDbtInd>')
        else:
            out.append(f'<AmtDtls><TxAmt><Amt Ccy="{ccy}">{_dec(d.amount_cents)}</Amt></TxAmt></AmtDtls>')
    if d.counterparty_name or d.counterparty_iban:
        party, acct = ("Cdtr", "CdtrAcct") if entry.credit_debit == "DBIT" else ("Dbtr", "DbtrAcct")
        out.append("<RltdPties>")
        if d.counterparty_name:
            name = f"<Nm>{_e(d.counterparty_name)}</Nm>"
            out.append(f"<{party}><Pty>{name}</Pty></{party}>" if v08 else f"<{party}>{name}</{party}>")
        if d.counterparty_iban:
            out.append(f"<{acct}><Id><IBAN>{_e(d.counterparty_iban)}</IBAN></Id></{acct}>")
        out.append("</RltdPties>")
    if d.remittance or d.structured_reference:
        out.append("<RmtInf>")
        if d.remittance:
            out.append(f"<Ustrd>{_e(d.remittance)}</Ustrd>")
        if d.structured_reference:
            issuer = "ISO" if d.structured_reference.upper().startswith("RF") else "CUR"
            out.append(
                "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry>"
                f"<Issr>{issuer}</Issr></Tp><Ref>{_e(d.structured_reference)}</Ref></CdtrRefInf></Strd>"
            )
        out.append("</RmtInf>")
    if d.return_reason:
        tag = "Cd" if _RETURN_CODE.fullmatch(d.return_reason) else "Prtry"
        out.append(f"<RtrInf><Rsn><{tag}>{_e(d.return_reason)}</{tag}></Rsn></RtrInf>")
    out.append("</TxDtls>")
    return "".join(out)


def _entry(e: Entry, ccy: str, v08: bool) -> str:
    out = ["<Ntry>"]
    if e.entry_reference:
        out.append(f"<NtryRef>{_e(e.entry_reference)}</NtryRef>")
    out.append(f'<Amt Ccy="{ccy}">{_dec(e.amount_cents)}</Amt><CdtDbtInd>{e.credit_debit}</CdtDbtInd>')
    if e.reversal:
        out.append("<RvslInd>true</RvslInd>")
    out.append(f"<Sts><Cd>{_e(e.status)}</Cd></Sts>" if v08 else f"<Sts>{_e(e.status)}</Sts>")
    if e.booking_date:
        out.append(f"<BookgDt><Dt>{e.booking_date.isoformat()}</Dt></BookgDt>")
    if e.value_date:
        out.append(f"<ValDt><Dt>{e.value_date.isoformat()}</Dt></ValDt>")
    if e.bank_reference:
        out.append(f"<AcctSvcrRef>{_e(e.bank_reference)}</AcctSvcrRef>")
    out.append(_bank_code(e.bank_transaction_code))
    if e.batch is not None or e.details:
        out.append("<NtryDtls>")
        if e.batch is not None:
            b = e.batch
            out.append("<Btch>")
            if b.msg_id:
                out.append(f"<MsgId>{_e(b.msg_id)}</MsgId>")
            if b.pmt_inf_id:
                out.append(f"<PmtInfId>{_e(b.pmt_inf_id)}</PmtInfId>")
            if b.count is not None:
                out.append(f"<NbOfTxs>{b.count}</NbOfTxs>")
            if b.total_cents is not None:
                out.append(f'<TtlAmt Ccy="{ccy}">{_dec(b.total_cents)}</TtlAmt><CdtDbtInd>{e.credit_debit}</CdtDbtInd>')
            out.append("</Btch>")
        out.extend(_detail(d, e, ccy, v08) for d in e.details)
        out.append("</NtryDtls>")
    if e.additional_info:
        out.append(f"<AddtlNtryInf>{_e(e.additional_info)}</AddtlNtryInf>")
    out.append("</Ntry>\n")
    return "".join(out)


def _balance(code: str, signed: int, ccy: str, on: date) -> str:
    cdi = "CRDT" if signed >= 0 else "DBIT"
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="{ccy}">{_dec(abs(signed))}</Amt><CdtDbtInd>{cdi}</CdtDbtInd>'
        f"<Dt><Dt>{on.isoformat()}</Dt></Dt></Bal>\n"
    )


def _build_camt(s: Statement, version: str, *, statement: bool, validate: bool) -> bytes:
    if s.created_at is None:
        raise ValueError("a camt message needs created_at (GrpHdr/CreDtTm)")
    v08 = version.endswith(".08")
    ccy = s.currency
    created = s.created_at.isoformat()
    message, element = ("BkToCstmrStmt", "Stmt") if statement else ("BkToCstmrDbtCdtNtfctn", "Ntfctn")
    out = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{_NS_PREFIX}{version}"><{message}>\n',
        f"<GrpHdr><MsgId>{_e(s.message_id)}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>\n",
        f"<{element}><Id>{_e(s.statement_id)}</Id>",
    ]
    if s.electronic_sequence is not None:
        out.append(f"<ElctrncSeqNb>{s.electronic_sequence}</ElctrncSeqNb>")
    if s.legal_sequence is not None:
        out.append(f"<LglSeqNb>{s.legal_sequence}</LglSeqNb>")
    day = s.statement_date.isoformat()
    out.append(
        f"<CreDtTm>{created}</CreDtTm><FrToDt><FrDtTm>{day}T00:00:00</FrDtTm><ToDtTm>{day}T23:59:59</ToDtTm></FrToDt>"
        f"<Acct><Id><IBAN>{_e(s.account_iban)}</IBAN></Id><Ccy>{_e(ccy)}</Ccy></Acct>\n"
    )
    if statement:
        if s.opening_balance_cents is None and s.closing_balance_cents is None:
            raise ValueError("a camt.053 statement needs at least one balance")
        if s.opening_balance_cents is not None:
            out.append(_balance("OPBD", s.opening_balance_cents, ccy, s.statement_date))
        if s.closing_balance_cents is not None:
            out.append(_balance("CLBD", s.closing_balance_cents, ccy, s.statement_date))
    out.extend(_entry(e, ccy, v08) for e in s.entries)
    out.append(f"</{element}></{message}></Document>\n")
    data = "".join(out).encode("utf-8")
    if validate:
        xsd_validate(data, version)
    return data


def build_camt053(statement: Statement, version: Camt053Version = "camt.053.001.02", *, validate: bool = True) -> bytes:
    """``statement`` as a camt.053 day statement (XSD-validated unless ``validate=False``)."""
    if version not in ("camt.053.001.02", "camt.053.001.08"):
        raise ValueError(f"unsupported camt.053 version {version!r}")
    return _build_camt(statement, version, statement=True, validate=validate)


def build_camt054(statement: Statement, version: Camt054Version = "camt.054.001.02", *, validate: bool = True) -> bytes:
    """``statement`` as a camt.054 notification; balances are not carried."""
    if version not in ("camt.054.001.02", "camt.054.001.08"):
        raise ValueError(f"unsupported camt.054 version {version!r}")
    return _build_camt(statement, version, statement=False, validate=validate)


# ---------------------------------------------------------------- MT940


def _swift_amount(c: int) -> str:
    return f"{c // 100},{c % 100:02d}"


def _yymmdd(d: date) -> str:
    return d.strftime("%y%m%d")


def _wrap(text: str) -> list[str]:
    """Cut at 65 characters, never so that a line starts with ':' or '-' (SWIFT forbids it)."""
    lines = []
    while len(text) > _MT940_LINE:
        cut = _MT940_LINE
        while cut > 1 and text[cut] in ":-":
            cut -= 1
        lines.append(text[:cut])
        text = text[cut:]
    lines.append(text)
    return lines


def _mt940_value(text: str, what: str) -> str:
    # A "/" would be read as a subfield or tag separator.
    if "/" in text or "\n" in text:
        raise ValueError(f"{what} cannot be written in MT940 :86: (contains '/' or a newline): {text!r}")
    return text


def _info(e: Entry) -> str | None:
    if len(e.details) > 1:
        raise ValueError(f"entry {e.index}: MT940 carries at most one transaction detail per entry")
    parts = []
    d = e.details[0] if e.details else None
    if d is not None:
        if d.return_reason:
            parts.append(f"/RTRN/{_mt940_value(d.return_reason, 'return reason')}/")
        e2e = d.end_to_end_id or d.original_end_to_end_id
        if e2e:
            parts.append(f"/EREF/{_mt940_value(e2e, 'EndToEndId')}/")
        if d.instruction_id:
            parts.append(f"/IREF/{_mt940_value(d.instruction_id, 'InstrId')}/")
    if e.batch is not None and e.batch.pmt_inf_id:
        parts.append(f"/PREF/{_mt940_value(e.batch.pmt_inf_id, 'PmtInfId')}/")
    if d is not None:
        if d.counterparty_iban or d.counterparty_name:
            iban = _mt940_value(d.counterparty_iban or "", "counterparty IBAN")
            name = _mt940_value(d.counterparty_name or "", "counterparty name")
            parts.append(f"/CNTP/{iban}//{name}//")
        if d.remittance and d.structured_reference:
            raise ValueError(f"entry {e.index}: MT940 /REMI/ is either unstructured or structured, not both")
        if d.remittance:
            if "/" in d.remittance and any(f"/{t}/" in d.remittance for t in ("EREF", "REMI", "CNTP", "RTRN", "PREF")):
                raise ValueError(f"entry {e.index}: remittance would be read as :86: tags: {d.remittance!r}")
            parts.append(f"/REMI/USTD//{d.remittance}/")
        elif d.structured_reference:
            issuer = "ISO" if d.structured_reference.upper().startswith("RF") else "CUR"
            parts.append(f"/REMI/STRD/{issuer}/{_mt940_value(d.structured_reference, 'structured reference')}/")
    return "".join(parts) or None


def build_mt940(statement: Statement) -> bytes:
    """``statement`` as one MT940 message (ING's layout: ``:25:`` IBAN + currency,
    structured ``:86:``), UTF-8, CRLF line ends."""
    s = statement
    if s.opening_balance_cents is None or s.closing_balance_cents is None:
        raise ValueError("MT940 needs both balances (:60F: and :62F:)")
    if not re.fullmatch(r"\d{1,5}(/\d{1,5})?", s.statement_id):
        raise ValueError(f"MT940 :28C: is n[/n] (at most 5 digits each), not {s.statement_id!r}")
    lines = [f":20:{s.message_id}", f":25:{s.account_iban}{s.currency}", f":28C:{s.statement_id}"]

    def balance(tag: str, signed: int) -> str:
        mark = "C" if signed >= 0 else "D"
        return f":{tag}:{mark}{_yymmdd(s.statement_date)}{s.currency}{_swift_amount(abs(signed))}"

    lines.append(balance("60F", s.opening_balance_cents))
    for e in s.entries:
        if e.status != "BOOK":
            raise ValueError(f"entry {e.index}: MT940 has booked entries only, not {e.status}")
        value = e.value_date or e.booking_date
        if value is None:
            raise ValueError(f"entry {e.index}: MT940 needs a value date")
        mark = _MARKS[(e.credit_debit, e.reversal)]
        proprietary = e.bank_transaction_code.proprietary if e.bank_transaction_code else None
        type_code = proprietary if proprietary and _MT940_TYPE.fullmatch(proprietary) else "NTRF"
        ref = e.entry_reference or "NONREF"
        line = f":61:{_yymmdd(value)}{e.booking_date.strftime('%m%d') if e.booking_date else ''}{mark}"
        line += f"{_swift_amount(e.amount_cents)}{type_code}{ref}"
        if e.bank_reference:
            line += f"//{e.bank_reference}"
        lines.append(line)
        info = _info(e)
        if info is not None:
            first, *rest = _wrap(":86:" + info)
            lines.append(first)
            lines.extend(rest)
    lines.append(balance("62F", s.closing_balance_cents))
    lines.append("-")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
