"""SWIFT MT940 bytes (with the Dutch structured ``:86:``) into ``Statement``s.

Fields read: ``:20:`` (message id), ``:25:`` (account), ``:28C:`` / ``:28:``
(statement number), ``:60F:`` / ``:60M:`` (opening), ``:61:`` (entry) with its
``:86:`` (details), ``:62F:`` / ``:62M:`` (closing). ``:64:``, ``:65:``,
``:NS:``, a statement-level ``:86:`` and unknown fields are skipped.

The Dutch banks' variants, all accepted:

- Envelopes: SWIFT blocks (``{1:F01INGBNL2A...}{2:...}{4:`` ... ``-}``, ING),
  a ``:940:`` line (Rabobank), three lines ``ABNANL2A`` / ``940`` /
  ``ABNANL2A`` before each message (ABN AMRO); several messages per file.
- ``:25:``: an IBAN (``NL34RABO0142623393``), an IBAN glued to or spaced from
  its currency (``NL69INGB0123456789EUR``, ``NL34RABO0142623393 EUR``), a BIC
  and account (``RABONL2U/0123456789``), or a pre-IBAN Dutch account number
  (``123212321``, ABN AMRO) which is converted with the bank code of the
  BIC in the envelope; a bare number with no known bank is refused.
- ``:61:``: value date, optional entry date (the year follows the value
  date across new year), mark C / D / RC (reversal of a credit: a debit) /
  RD, optional funds code, amount with a decimal comma (``5,1`` and ``10,``
  are valid), type (``NTRF``, ``N541``), the account owner's reference
  (``NONREF`` = none) and after ``//`` the bank's reference, which ING may
  break over two lines; a second line is supplementary detail (ING
  ``/TRCD/...``, Rabobank the counterparty IBAN).
- ``:86:`` structured (``/TAG/value/...``, lines joined without a
  separator, since SWIFT cuts at 65 characters mid-word): ``/EREF/`` ->
  EndToEndId, ``/IREF/`` -> InstrId, ``/CNTP/iban/bic/name/city/`` or
  ``/IBAN/`` ``/NAME/`` (also under ``/ORDP/`` and ``/BENM/``) ->
  counterparty, ``/REMI/`` -> remittance, with ``/REMI/USTD//text/``
  (unstructured) and ``/REMI/STRD/CUR/ref/`` or Rabobank's ``/CDTRREF/``
  (structured reference), ``/RTRN/`` -> return reason, ``/PREF/`` -> the
  batch's PmtInfId. ``/TRTP/ /MARF/ /CSID/ /BIC/ /ADDR/ /ISDT/ /ULTC/
  /ULTD/ /PURP/ /SVCL/`` are recognised (so their values do not leak into
  others) and dropped.
- ``:86:`` free text (ABN AMRO's older exports): ``IBAN:``, ``NAAM:``,
  ``OMSCHRIJVING:``, ``KENMERK:`` (the EndToEndId) and ``BETALINGSKENM.:``
  (the Dutch payment reference) are picked out; anything else is kept as
  the remittance text with its column padding collapsed.

Encoding: UTF-8, else latin-1 (every byte is valid latin-1, so reading never
fails on encoding; a wrong guess garbles a name, never an amount).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import msgspec
from schwifty import IBAN
from schwifty import exceptions as iban_errors

from reconciliation.errors import InvalidStatement, StatementTooLarge, UnsupportedStatement
from reconciliation.model import (
    BankTransactionCode,
    BatchInfo,
    CreditDebit,
    Entry,
    Statement,
    TxDetail,
    cents,
    iban_length,
    normalise_account_iban,
)

# The same bound as camt (MAX_STATEMENT_BYTES there; not imported so either
# module can change its own): an MT940 line is ~80 bytes, 50 MiB is ~300,000 entries.
MAX_STATEMENT_BYTES = 50 * 1024 * 1024
MAX_LINES = 2_000_000  # a file of blank lines is still bounded

_FIELD = re.compile(r":(\d{2}[A-Z]?|NS):")
_BIC = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_BLOCK1_BIC = re.compile(r"\{1:F\d{2}([A-Z]{6}[A-Z0-9]{2})")
_BALANCE = re.compile(r"([CD])(\d{6})([A-Z]{3})([0-9]{1,15},[0-9]*)")
_LINE61 = re.compile(
    r"(?P<vdate>\d{6})(?P<edate>\d{4})?(?P<mark>RC|RD|C|D)(?P<funds>[A-Z](?=[0-9]))?"
    r"(?P<amount>[0-9]{1,15},[0-9]*)(?P<type>[NSF][A-Z0-9]{3})(?P<refs>.*)"
)
_IBANISH = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,33}")
_MAX_REF = 16  # SWIFT 16x for both references in :61:

# Structured :86: tags. Longer names first where one is a prefix of another.
_TAGS = (
    "CDTRREFTP",
    "CDTRREF",
    "EREF",
    "IREF",
    "CNTP",
    "REMI",
    "RTRN",
    "TRTP",
    "IBAN",
    "NAME",
    "ORDP",
    "BENM",
    "PREF",
    "MARF",
    "CSID",
    "ADDR",
    "ISDT",
    "TRCD",
    "ULTC",
    "ULTD",
    "ULTB",
    "PURP",
    "SVCL",
    "RTYP",
    "BUSP",
    "OCMT",
    "CHGS",
    "EXCH",
    "ISSR",
    "SUM",
    "BIC",
    "CD",
    "ID",
)
_TAG = re.compile(r"/(" + "|".join(_TAGS) + r")/")
_STRUCTURED = re.compile(r"\s*/(" + "|".join(_TAGS) + r")/")
# Tags whose NAME / ID / ADDR sub-fields describe a party other than the counterparty.
_ULTIMATE = frozenset({"ULTC", "ULTD", "ULTB"})
_PARTY = frozenset({"ORDP", "BENM"})

# ABN AMRO's free-text :86: keys (column-padded, "KEY: value").
_FREE_KEYS = re.compile(
    r"(?:(?<=\s)|^)(IBAN|BIC|NAAM|OMSCHRIJVING|KENMERK|BETALINGSKENM\.|MACHTIGING|INCASSANT|ID DEBITEUR|"
    r"ID BEGUNSTIGDE|REFERENTIE):\s?"
)
_NOT_PROVIDED = "NOTPROVIDED"


@dataclass
class _Field:
    tag: str
    lines: list[str]
    line_no: int

    @property
    def joined(self) -> str:
        return "".join(self.lines).strip()


@dataclass
class _Message:
    bic: str | None
    fields: list[_Field] = field(default_factory=list)


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.removeprefix("\ufeff")


def looks_like_mt940(data: bytes) -> bool:
    """True when ``data`` starts like an MT940 file (a SWIFT block, ``:20:``,
    Rabobank's ``:940:`` or ABN AMRO's BIC / 940 preamble)."""
    head = _decode(data[:512]).lstrip()
    if head.startswith(("{1:", ":20:", ":940:")):
        return True
    lines = head.splitlines()
    return len(lines) >= 2 and _BIC.fullmatch(lines[0].strip()) is not None and lines[1].strip() == "940"


def _terminates(lines: list[str], i: int, field: str) -> bool:
    """Is the ``-`` on line ``i`` (inside ``field``) the end of a message, or text?

    ING's sample breaks ``:86:`` text so that a line holds a lone ``-``; in
    ``:86:`` it ends the message only when what follows is not more text.
    """
    if field != "86":
        return True
    rest = (line.strip() for line in lines[i + 1 : i + 4])
    nxt = [line for line in rest if line]
    if not nxt:
        return True
    if nxt[0].startswith(("{", "}", ":20:", ":940:")):
        return True
    return _BIC.fullmatch(nxt[0]) is not None and len(nxt) > 1 and nxt[1] == "940"


_NEWLINE = re.compile(r"\r\n|\r|\n")
_NEWLINE_BYTES = re.compile(rb"\r\n|\r|\n")


def _split(text: str) -> list[_Message]:
    # Not str.splitlines: it also breaks at \x85 and \x1c-\x1e, which latin-1 text may hold.
    lines = _NEWLINE.split(text)
    if len(lines) > MAX_LINES:
        raise InvalidStatement(f"MT940 file has {len(lines)} lines, more than {MAX_LINES}")
    messages: list[_Message] = []
    msg: _Message | None = None
    bic: str | None = None
    for i, line in enumerate(lines):
        # Trailing blanks are kept: SWIFT cuts :86: text at 65 characters, blanks included.
        m = _FIELD.match(line)
        if m is not None:
            tag = m.group(1)
            if tag == "20":
                msg = _Message(bic=bic)
                messages.append(msg)
            elif msg is None:
                raise InvalidStatement(f"line {i + 1}: :{tag}: before any :20:")
            msg.fields.append(_Field(tag=tag, lines=[line[m.end() :]], line_no=i + 1))
            continue
        stripped = line.strip()
        if msg is not None:
            if stripped in ("-", "-}") and _terminates(lines, i, msg.fields[-1].tag):
                msg = None
                continue
            msg.fields[-1].lines.append(line)
            continue
        # Between messages: envelopes only.
        if not stripped or stripped in ("-", "}", "-}", "940", ":940:"):
            continue
        if stripped.startswith("{"):
            if (b := _BLOCK1_BIC.match(stripped)) is not None:
                bic = b.group(1)
            continue
        if _BIC.fullmatch(stripped):
            bic = stripped[:8]
            continue
        raise InvalidStatement(f"line {i + 1}: {stripped[:40]!r} is outside any MT940 statement")
    return messages


def parse_mt940(data: bytes, *, max_bytes: int = MAX_STATEMENT_BYTES) -> list[Statement]:
    """Every statement (one per ``:20:``) in an MT940 file.

    Raises ``StatementTooLarge`` over ``max_bytes``, ``UnsupportedStatement``
    when the bytes do not start like MT940, ``InvalidStatement`` (with the
    line number) for a field that is not what MT940 says it is or a NUL byte.
    """
    if len(data) > max_bytes:
        raise StatementTooLarge(len(data), max_bytes)
    if not looks_like_mt940(data):
        raise UnsupportedStatement("not an MT940 file: it starts with neither a SWIFT block, :20: nor :940:")
    # No SWIFT character set holds NUL, and a store of text cannot keep it
    # (PostgreSQL refuses U+0000 in text and jsonb): refuse the file here.
    nul = data.find(b"\x00")
    if nul != -1:
        line = len(_NEWLINE_BYTES.findall(data, 0, nul)) + 1
        raise InvalidStatement(f"line {line}: a NUL byte, which no MT940 field may hold")
    messages = _split(_decode(data))
    if not messages:
        raise InvalidStatement("MT940 file without any statement (:20:)")
    codes: dict[str, BankTransactionCode] = {}
    return [_statement(m, codes) for m in messages]


def _statement(msg: _Message, codes: dict[str, BankTransactionCode]) -> Statement:
    first = msg.fields[0]
    message_id = first.joined
    what = f"statement {message_id!r} (line {first.line_no})"
    account: _Field | None = None
    statement_id: str | None = None
    opening: tuple[int, date, str] | None = None
    closing: tuple[int, date, str] | None = None
    entries: list[Entry] = []
    pending: _Field | None = None  # a :61: waiting for its :86:

    def flush(details: _Field | None) -> None:
        nonlocal pending
        if pending is not None:
            entries.append(_entry(pending, details, len(entries), codes))
            pending = None

    for f in msg.fields[1:]:
        tag = f.tag
        if tag == "61":
            flush(None)
            pending = f
        elif tag == "86":
            flush(f)  # a :86: after anything but :61: describes the statement: skipped
        else:
            flush(None)
            if tag == "25":
                account = f
            elif tag in ("28C", "28"):
                statement_id = f.joined
            elif tag in ("60F", "60M"):
                opening = _balance(f)
            elif tag in ("62F", "62M"):
                closing = _balance(f)
    flush(None)

    if account is None:
        raise InvalidStatement(f"{what} has no :25: account")
    if opening is None or closing is None:
        raise InvalidStatement(f"{what} lacks its :60F: opening or :62F: closing balance")
    iban, account_currency = _account(account, msg.bic)
    currency = account_currency or opening[2]
    for name, bal in (("opening", opening), ("closing", closing)):
        if bal[2] != currency:
            raise InvalidStatement(f"{what}: the {name} balance is in {bal[2]}, the account in {currency}")
    return Statement(
        kind="mt940",
        message_id=message_id,
        statement_id=statement_id or message_id,
        account_iban=iban,
        currency=currency,
        opening_balance_cents=opening[0],
        closing_balance_cents=closing[0],
        statement_date=closing[1],
        entries=tuple(entries),
    )


def _yymmdd(text: str, what: str) -> date:
    try:
        return date(2000 + int(text[0:2]), int(text[2:4]), int(text[4:6]))
    except ValueError:
        raise InvalidStatement(f"{what}: {text!r} is not a date (YYMMDD)") from None


def _amount(text: str, what: str) -> int:
    try:
        return cents(text, decimal_mark=",")
    except ValueError as e:
        raise InvalidStatement(f"{what}: {e}") from None


def _balance(f: _Field) -> tuple[int, date, str]:
    what = f"line {f.line_no}: :{f.tag}:"
    text = f.joined
    m = _BALANCE.fullmatch(text)
    if m is None:
        raise InvalidStatement(
            f"{what} is not a balance (C/D, YYMMDD, currency, amount with decimal comma): {text[:60]!r}"
        )
    mark, on, currency, amount = m.groups()
    value = _amount(amount, what)
    return (value if mark == "C" else -value), _yymmdd(on, what), currency


def _account(f: _Field, bic: str | None) -> tuple[str, str | None]:
    what = f"line {f.line_no}: :25:"
    text = f.joined.upper()
    iban: str | None = None
    currency: str | None = None
    number: str | None = None
    # An IBAN written in groups ("NL34 RABO 0142 6233 93"), maybe with its currency.
    compact = re.sub(r"\s+", "", text)
    n = iban_length(compact[:2]) if _IBANISH.match(compact) else None
    if n is not None and (len(compact) == n or (len(compact) == n + 3 and compact[n:].isalpha())):
        try:
            return normalise_account_iban(compact[:n]), compact[n:] or None
        except ValueError:
            pass  # not an IBAN after all: read it token by token below
    tokens = [t for t in re.split(r"[\s/]+", text) if t]
    for tok in tokens:
        if _IBANISH.fullmatch(tok):
            n = iban_length(tok[:2])
            if n is not None and len(tok) == n + 3 and tok[n:].isalpha():
                tok, currency = tok[:n], tok[n:]
            try:
                iban = normalise_account_iban(tok)
            except ValueError as e:
                raise InvalidStatement(f"{what} {e}") from None
        elif _BIC.fullmatch(tok) and len(tok) in (8, 11):
            bic = tok[:8]
        elif len(tok) == 3 and tok.isalpha():
            currency = tok
        elif tok.isdigit() and len(tok) <= 10:
            number = tok
    if iban is not None:
        return iban, currency
    if number is not None and bic is not None and bic[4:6] == "NL":
        try:
            return str(IBAN.generate("NL", bank_code=bic[:4], account_code=number).compact), currency
        except iban_errors.SchwiftyException as e:
            raise InvalidStatement(f"{what} {number} with bank {bic}: no IBAN ({e})") from None
    raise InvalidStatement(f"{what} {text[:40]!r} has no IBAN (and no Dutch bank to derive one from)")


def _booking_date(value: date, mmdd: str, what: str) -> date:
    month, day = int(mmdd[:2]), int(mmdd[2:])
    year = value.year
    # The entry date has no year: booked in January for a December value date is next year, and back.
    if value.month == 12 and month == 1:
        year += 1
    elif value.month == 1 and month == 12:
        year -= 1
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidStatement(f"{what}: entry date {mmdd!r} is not a date (MMDD)") from None


def _entry(f: _Field, details: _Field | None, index: int, codes: dict[str, BankTransactionCode]) -> Entry:
    what = f"line {f.line_no}: :61:"
    lines = [line.strip() for line in f.lines]
    first = lines[0]
    m = _LINE61.fullmatch(first)
    if m is None:
        raise InvalidStatement(
            f"{what} is not a statement line (YYMMDD[MMDD], C/D/RC/RD, amount with decimal comma, type): {first[:60]!r}"
        )
    value_date = _yymmdd(m["vdate"], what)
    booking_date = None if m["edate"] is None else _booking_date(value_date, m["edate"], what)
    amount = _amount(m["amount"], what)
    mark = m["mark"]
    credit_debit: CreditDebit = "CRDT" if mark in ("C", "RD") else "DBIT"
    customer_ref, sep, bank_ref = m["refs"].partition("//")
    rest = lines[1:]
    if sep:
        # ING breaks the bank reference over lines; the supplementary line starts with "/".
        while rest and rest[0] and not rest[0].startswith("/") and len(bank_ref) + len(rest[0]) <= _MAX_REF:
            bank_ref += rest.pop(0)
    supplementary = "".join(rest).strip()
    type_code = m["type"]
    code = codes.get(type_code)
    if code is None:
        code = codes[type_code] = BankTransactionCode(proprietary=type_code)
    detail, pmt_inf_id = _details(details)
    if supplementary and _IBANISH.fullmatch(supplementary.replace(" ", "")):
        # Rabobank puts the counterparty's account on the :61: second line.
        if detail is None:
            detail = TxDetail(counterparty_iban=supplementary.replace(" ", ""))
        elif detail.counterparty_iban is None:
            detail = msgspec.structs.replace(detail, counterparty_iban=supplementary.replace(" ", ""))
    customer_ref = customer_ref.strip()
    return Entry(
        index=index,
        amount_cents=amount,
        credit_debit=credit_debit,
        reversal=mark in ("RC", "RD"),
        booking_date=booking_date,
        value_date=value_date,
        bank_reference=bank_ref.strip() or None,
        entry_reference=None if customer_ref in ("", "NONREF") else customer_ref,
        bank_transaction_code=code,
        batch=None if pmt_inf_id is None else BatchInfo(pmt_inf_id=pmt_inf_id),
        details=() if detail is None else (detail,),
    )


def _details(f: _Field | None) -> tuple[TxDetail | None, str | None]:
    """The :86: of an entry as a TxDetail, and the batch's PmtInfId (``/PREF/``)."""
    if f is None:
        return None, None
    joined = "".join(f.lines)
    values = _structured(joined) if _STRUCTURED.match(joined) else _free_text(f.lines)
    pmt_inf_id = values.pop("pref", None)
    e2e = values.get("eref")
    if e2e == _NOT_PROVIDED:
        e2e = None
    rtrn = values.get("rtrn")
    if not any(values.get(k) for k in ("eref", "iref", "name", "iban", "remi", "sref", "rtrn")):
        return None, pmt_inf_id
    return (
        TxDetail(
            end_to_end_id=e2e,
            instruction_id=values.get("iref"),
            counterparty_name=values.get("name"),
            counterparty_iban=values.get("iban"),
            remittance=values.get("remi"),
            structured_reference=values.get("sref"),
            return_reason=rtrn,
            original_end_to_end_id=e2e if rtrn else None,
        ),
        pmt_inf_id,
    )


def _structured(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    matches = list(_TAG.finditer(text))
    context: str | None = None
    for k, m in enumerate(matches):
        tag = m.group(1)
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        value = text[m.end() : end]
        # "/EREF/x//CNTP/..." (ING) ends each value with "/"; "/NAME/x/REMI/" (ABN) does not.
        value = value.removesuffix("/").strip()
        if tag in _ULTIMATE or tag in _PARTY:
            context = tag
            continue
        if tag in ("NAME", "ID", "ADDR"):
            if tag == "NAME" and context not in _ULTIMATE and value:
                out.setdefault("name", value)
            continue
        context = None
        if tag == "EREF" and value:
            out["eref"] = value
        elif tag == "IREF" and value:
            out["iref"] = value
        elif tag == "PREF" and value:
            out["pref"] = value
        elif tag == "RTRN" and value:
            out["rtrn"] = value.split("/")[0].strip()
        elif tag == "IBAN" and value:
            out.setdefault("iban", value.replace(" ", "").upper())
        elif tag == "CNTP":
            parts = value.split("/")
            if parts[0].strip():
                out["iban"] = parts[0].replace(" ", "").upper()
            if len(parts) > 2 and parts[2].strip():
                out["name"] = parts[2].strip()
        elif tag == "REMI":
            _remittance(value, out)
        elif tag == "CDTRREF" and value:
            out["sref"] = value
    return out


def _remittance(value: str, out: dict[str, str]) -> None:
    if value.startswith("USTD/"):
        text = value.removeprefix("USTD/").removeprefix("/").strip()
        if text:
            out["remi"] = text
    elif value.startswith("STRD/"):
        # STRD/<issuer>/<reference>, the issuer being CUR (betalingskenmerk) or ISO (RF...).
        parts = value.split("/", 2)
        ref = parts[2].strip() if len(parts) > 2 else parts[-1].strip()
        if ref:
            out["sref"] = ref
    elif value:
        out["remi"] = value


def _free_text(lines: list[str]) -> dict[str, str]:
    text = "\n".join(line.strip() for line in lines)
    out: dict[str, str] = {}
    keys = list(_FREE_KEYS.finditer(text))
    for k, m in enumerate(keys):
        end = keys[k + 1].start() if k + 1 < len(keys) else len(text)
        value = " ".join(text[m.end() : end].split())
        if not value:
            continue
        key = m.group(1)
        if key == "IBAN":
            out["iban"] = value.replace(" ", "").upper()
        elif key == "NAAM":
            out["name"] = value
        elif key == "OMSCHRIJVING":
            out["remi"] = value
        elif key == "KENMERK":
            out["eref"] = value
        elif key == "BETALINGSKENM.":
            out["sref"] = value
    if "remi" not in out:
        collapsed = " ".join(text.split())
        if collapsed:
            out["remi"] = collapsed
    return out
