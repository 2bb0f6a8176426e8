"""camt.053 (day statement) and camt.054 (debit/credit notification) bytes into ``Statement``s.

Versions read: camt.053.001.02/.04/.08 and camt.054.001.02/.04/.08, told
apart by the root namespace; any other namespace is refused with
``UnsupportedStatement`` naming it. The differences that matter between the
versions are absorbed here: ``Sts`` is a code (.02/.04) or ``Sts/Cd`` (.08),
a party is ``Cdtr/Nm`` (.02/.04) or ``Cdtr/Pty/Nm`` (.08), a transaction's
amount is ``AmtDtls/TxAmt/Amt`` (.02) or ``TxDtls/Amt`` (.04+).

Hostile input: the size is checked first (``max_bytes``, default
``MAX_STATEMENT_BYTES``); a DOCTYPE anywhere is refused before parsing (that
is where entity bombs and external entities live); lxml runs with
``resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False``;
element depth is bounded by ``MAX_DEPTH`` (libxml2 alone stops at 256).

How it parses, chosen by measurement (``reconciliation.bench.bench_approaches``,
a camt.053.001.02 with 100,000 entries, each one TxDtls with EndToEndId,
creditor name, IBAN and remittance; 68 MB; this 2-core machine, best of 3):

    approach                                                     seconds   peak tree
    bare iterparse, every element, clear (the yardstick)           5.1       small
    iterparse filtered to Ntry in C, clear, no extraction          1.5       small
    (a) fromstring + precompiled XPath per field, per entry        8.6       whole file
    (a') fromstring + the child walk below                         3.0       whole file
    (b) iterparse filtered to Ntry, child walk, clear  <- used     2.9       512 entries
    (c) pyiso20022 1.6.2 (xsdata dataclasses), parse only         41.6       whole file

Almost all the time is libxml2 building nodes (1.5 s of the 2.9 s; 0.35 s
is the bare tokenizer), so no lxml-based approach gets much under that.
What is left is Python touching elements, so the extraction walks each
entry's children once, dispatches on the full ``{ns}Tag`` string and never
calls ``find``/``xpath`` per entry (each costs 2-5 us, times 10 fields,
times 100,000 entries: approach (a)). (b) beats (a') only slightly on time
but holds 512 entries instead of the whole tree, so a 50 MB statement does
not become a 600 MB tree. pyiso20022 builds a full dataclass model through
xsdata: 15x slower, and it would still need mapping onto our records.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from lxml import etree

from reconciliation.errors import InvalidStatement, MalformedStatement, StatementTooLarge, UnsupportedStatement
from reconciliation.model import (
    BankTransactionCode,
    BatchInfo,
    CreditDebit,
    Entry,
    Statement,
    StatementKind,
    TxDetail,
    cents,
    normalise_account_iban,
)

# A day statement of a busy payout account is a few MB; 50 MiB is ten times
# the largest we expect and still parses in a few seconds.
MAX_STATEMENT_BYTES = 50 * 1024 * 1024
# camt nests at most ~15 deep; 64 leaves room for any bank's extensions and
# stops a deliberately deep document long before libxml2's own limit (256).
MAX_DEPTH = 64
# Processed entries stay in the tree until the next depth check, then go:
# memory is bounded by this many entries, not by the file.
DEPTH_CHECK_EVERY = 512
# How much of the document is fed to find the root element before giving up.
MAX_PROLOG_BYTES = 64 * 1024

_NS_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
# namespace -> (kind, message element, statement element)
CAMT_NAMESPACES: dict[str, tuple[StatementKind, str, str]] = {
    **{_NS_PREFIX + f"camt.053.001.{v}": ("camt.053", "BkToCstmrStmt", "Stmt") for v in ("02", "04", "08")},
    **{_NS_PREFIX + f"camt.054.001.{v}": ("camt.054", "BkToCstmrDbtCdtNtfctn", "Ntfctn") for v in ("02", "04", "08")},
}
CAMT_VERSIONS = tuple(ns.removeprefix(_NS_PREFIX) for ns in CAMT_NAMESPACES)

_NOT_PROVIDED = "NOTPROVIDED"  # the SEPA placeholder for "no EndToEndId"
_OPENING_CODES = ("OPBD", "PRCD")  # opening booked; previously closed booked (some banks send only that)
_CLOSING_CODES = ("CLBD",)

_DEEP = etree.XPath("boolean(" + "/".join(["*"] * MAX_DEPTH) + ")")


def _check_depth(root: etree._Element) -> None:
    # Evaluated in C over what is still in the tree (at most DEPTH_CHECK_EVERY
    # entries plus headers): from the root, MAX_DEPTH child steps reach depth MAX_DEPTH + 1.
    if _DEEP(root):
        raise MalformedStatement(f"XML nested deeper than {MAX_DEPTH} elements is refused")


def _refuse_doctype(data: bytes) -> None:
    # A byte search is a memchr over the input: milliseconds for 50 MB. XML
    # text cannot hold a literal "<!DOCTYPE" (it would be "&lt;!DOCTYPE"), so
    # the only false positives are comments and CDATA, which we refuse too.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise MalformedStatement("XML with a DTD (DOCTYPE) is refused: entity declarations are not allowed")


def _root_qname(data: bytes) -> etree.QName:
    parser = etree.XMLPullParser(
        events=("start",), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        for start in range(0, min(len(data), MAX_PROLOG_BYTES), 8192):
            parser.feed(data[start : start + 8192])
            for _, el in parser.read_events():
                if isinstance(el, etree._Element):
                    return etree.QName(el)
        parser.close()
    except etree.XMLSyntaxError as e:
        raise MalformedStatement(f"not well-formed XML: {e}") from None
    raise MalformedStatement(f"no root element in the first {MAX_PROLOG_BYTES} bytes")


def detect_version(data: bytes) -> str:
    """The camt message name of ``data`` (e.g. ``"camt.053.001.08"``), or ``UnsupportedStatement``."""
    _refuse_doctype(data)
    qname = _root_qname(data)
    if qname.namespace in CAMT_NAMESPACES and qname.localname == "Document":
        return qname.namespace.removeprefix(_NS_PREFIX)
    found = qname.namespace or "no namespace"
    raise UnsupportedStatement(
        f"not a camt statement we read ({', '.join(CAMT_VERSIONS)}): root {qname.localname} in {found}"
    )


# ---------------------------------------------------------------- text helpers


def _text(el: etree._Element) -> str | None:
    t = el.text
    if t is None:
        return None
    return t.strip() or None


def _date(el: etree._Element, what: str) -> date:
    """``Dt`` or ``DtTm`` inside a DateAndDateTimeChoice; a date-time keeps its date part."""
    text = _text(el[0]) if len(el) else None
    if text is None:
        raise InvalidStatement(f"{what} has no date")
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise InvalidStatement(f"{what} is not a date: {text[:40]!r}") from None


def _datetime(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidStatement(f"{what} is not a date-time: {text[:40]!r}") from None


def _amount(el: etree._Element, what: str) -> int:
    text = _text(el)
    if text is None:
        raise InvalidStatement(f"{what} is empty")
    try:
        return cents(text)
    except ValueError as e:
        raise InvalidStatement(f"{what}: {e}") from None


def _credit_debit(text: str | None, what: str) -> CreditDebit:
    if text == "CRDT":
        return "CRDT"
    if text == "DBIT":
        return "DBIT"
    raise InvalidStatement(f"{what} CdtDbtInd must be CRDT or DBIT, not {(text or '')[:10]!r}")


# ---------------------------------------------------------------- the per-namespace reader


@dataclass
class _Balance:
    code: str
    cents: int  # signed
    currency: str | None
    on: date


@dataclass
class _Header:
    statement_id: str | None = None
    sequence: int | None = None
    legal_sequence: int | None = None
    created_at: datetime | None = None
    to_date: date | None = None
    iban: str | None = None
    account_other: str | None = None
    currency: str | None = None


class _Reader:
    """The extraction functions for one namespace, with every tag precomputed.

    Tags are compared as full ``{namespace}Local`` strings held in closure
    cells: cheaper than QName objects or ``find`` paths in the hot loop.
    """

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.read_entry = _entry_reader(ns)
        q = f"{{{ns}}}"
        self.NTRY = q + "Ntry"
        self.GRPHDR = q + "GrpHdr"
        self.MSGID = q + "MsgId"
        self.CREDTTM = q + "CreDtTm"
        self.ID = q + "Id"
        self.ELSEQ = q + "ElctrncSeqNb"
        self.LGLSEQ = q + "LglSeqNb"
        self.FRTODT = q + "FrToDt"
        self.TODTTM = q + "ToDtTm"
        self.ACCT = q + "Acct"
        self.IBAN = q + "IBAN"
        self.OTHR = q + "Othr"
        self.CCY = q + "Ccy"
        self.BAL = q + "Bal"
        self.TP = q + "Tp"
        self.CDORPRTRY = q + "CdOrPrtry"
        self.CD = q + "Cd"
        self.PRTRY = q + "Prtry"
        self.AMT = q + "Amt"
        self.CDTDBTIND = q + "CdtDbtInd"
        self.DT = q + "Dt"

    def group_header(self, el: etree._Element) -> tuple[str, datetime | None]:
        msg_id = created = None
        for c in el:
            if c.tag == self.MSGID:
                msg_id = _text(c)
            elif c.tag == self.CREDTTM:
                text = _text(c)
                created = None if text is None else _datetime(text, "GrpHdr/CreDtTm")
        if msg_id is None:
            raise InvalidStatement("GrpHdr has no MsgId")
        return msg_id, created

    def header(self, stmt: etree._Element) -> tuple[_Header, list[_Balance]]:
        h = _Header()
        balances: list[_Balance] = []
        for c in stmt:
            t = c.tag
            if t == self.NTRY:
                continue
            if t == self.ID:
                h.statement_id = _text(c)
            elif t == self.ELSEQ:
                h.sequence = _sequence_number(c, "ElctrncSeqNb")
            elif t == self.LGLSEQ:
                h.legal_sequence = _sequence_number(c, "LglSeqNb")
            elif t == self.CREDTTM:
                created = _text(c)
                h.created_at = None if created is None else _datetime(created, "statement CreDtTm")
            elif t == self.FRTODT:
                for p in c:
                    if p.tag == self.TODTTM and (to := _text(p)):
                        h.to_date = _datetime(to, "FrToDt/ToDtTm").date()
            elif t == self.ACCT:
                self._account(c, h)
            elif t == self.BAL:
                balances.append(self._balance(c, len(balances)))
        return h, balances

    def _account(self, acct: etree._Element, h: _Header) -> None:
        for c in acct:
            if c.tag == self.ID:
                for p in c:
                    if p.tag == self.IBAN:
                        h.iban = _text(p)
                    elif p.tag == self.OTHR:
                        h.account_other = next((_text(x) for x in p if x.tag == self.ID), None)
            elif c.tag == self.CCY:
                h.currency = _text(c)

    def _balance(self, bal: etree._Element, n: int) -> _Balance:
        what = f"balance {n}"
        code = amount = cdi = on = None
        ccy: str | None = None
        for c in bal:
            t = c.tag
            if t == self.TP:
                for p in c:
                    if p.tag == self.CDORPRTRY:
                        code = next((_text(x) for x in p if x.tag in (self.CD, self.PRTRY)), None)
            elif t == self.AMT:
                amount = _amount(c, f"{what} Amt")
                ccy = c.get("Ccy")
            elif t == self.CDTDBTIND:
                cdi = _credit_debit(_text(c), what)
            elif t == self.DT:
                on = _date(c, f"{what} Dt")
        if code is None or amount is None or cdi is None or on is None:
            raise InvalidStatement(f"{what} lacks its type, amount, CdtDbtInd or date")
        return _Balance(code=code, cents=amount if cdi == "CRDT" else -amount, currency=ccy, on=on)


_Codes = dict[tuple[str | None, ...], BankTransactionCode]
_ReadEntry = Callable[[etree._Element, int, _Codes, dict[str, date]], tuple[Entry, str | None]]


class _Bad(Exception):
    """A value that breaks a rule inside an entry; ``read_entry`` adds which entry."""


@lru_cache(maxsize=len(CAMT_NAMESPACES))
def _entry_reader(ns: str) -> _ReadEntry:
    """Build the hot-path entry reader for ``ns``, tags bound as closure constants.

    This runs once per entry, so it trades elegance for speed: every child
    is visited once and dispatched on its full ``{ns}Tag`` string, text is
    read inline, error context is built only when there is an error.
    """
    q = f"{{{ns}}}"
    AMT, CDTDBTIND, RVSLIND, STS, BOOKGDT, VALDT = (
        q + t for t in ("Amt", "CdtDbtInd", "RvslInd", "Sts", "BookgDt", "ValDt")
    )
    ACCTSVCRREF, NTRYREF, BKTXCD, NTRYDTLS, ADDTLNTRYINF = (
        q + t for t in ("AcctSvcrRef", "NtryRef", "BkTxCd", "NtryDtls", "AddtlNtryInf")
    )
    DOMN, CD, FMLY, SUBFMLYCD, PRTRY = (q + t for t in ("Domn", "Cd", "Fmly", "SubFmlyCd", "Prtry"))
    BTCH, MSGID, PMTINFID, NBOFTXS, TTLAMT = (q + t for t in ("Btch", "MsgId", "PmtInfId", "NbOfTxs", "TtlAmt"))
    TXDTLS, REFS, E2E, INSTRID, AMTDTLS, TXAMT, INSTDAMT = (
        q + t for t in ("TxDtls", "Refs", "EndToEndId", "InstrId", "AmtDtls", "TxAmt", "InstdAmt")
    )
    RLTDPTIES, CDTR, CDTRACCT, DBTR, DBTRACCT, NM, PTY, ID, IBAN = (
        q + t for t in ("RltdPties", "Cdtr", "CdtrAcct", "Dbtr", "DbtrAcct", "Nm", "Pty", "Id", "IBAN")
    )
    RMTINF, USTRD, STRD, CDTRREFINF, REF, RTRINF, RSN = (
        q + t for t in ("RmtInf", "Ustrd", "Strd", "CdtrRefInf", "Ref", "RtrInf", "Rsn")
    )

    def text(el: etree._Element) -> str | None:
        t = el.text
        return (t.strip() or None) if t else None

    def amount_of(el: etree._Element, name: str) -> int:
        t = el.text
        try:
            return cents(t.strip() if t else "")
        except ValueError as e:
            raise _Bad(f"{name}: {e}") from None

    def day(el: etree._Element, name: str, dates: dict[str, date]) -> date:
        # Dt or DtTm inside a DateAndDateTimeChoice; a date-time keeps its date part.
        t = el[0].text if len(el) else None
        key = t.strip()[:10] if t else ""
        d = dates.get(key)
        if d is None:
            try:
                d = dates[key] = date.fromisoformat(key)
            except ValueError:
                raise _Bad(f"{name} is not a date: {key!r}") from None
        return d

    def party_name(p: etree._Element) -> str | None:
        for c in p:
            tag = c.tag
            if tag == NM:
                return text(c)
            if tag == PTY:  # .08: Party40Choice
                for x in c:
                    if x.tag == NM:
                        return text(x)
        return None

    def account_iban(p: etree._Element) -> str | None:
        for c in p:
            if c.tag == ID:
                for x in c:
                    if x.tag == IBAN:
                        t = text(x)
                        return None if t is None else t.replace(" ", "").upper()
        return None

    def detail_amount(el: etree._Element, ccy: str | None, name: str) -> int | None:
        # A detail amount in another currency (InstdAmt of an FX payment) is not
        # comparable with the entry: left out rather than mixed in.
        if el.get("Ccy") != ccy:
            return None
        return amount_of(el, name)

    def transaction(tx: etree._Element, cdi: str, ccy: str | None) -> TxDetail | None:
        e2e = instr = amount = instd = sref = rtr = None
        cdtr_name = cdtr_iban = dbtr_name = dbtr_iban = None
        ustrd: list[str] | None = None
        for c in tx:
            tag = c.tag
            if tag == REFS:
                for r in c:
                    rt = r.tag
                    if rt == E2E:
                        e2e = text(r)
                    elif rt == INSTRID:
                        instr = text(r)
            elif tag == RLTDPTIES:
                for p in c:
                    pt = p.tag
                    if pt == CDTR:
                        cdtr_name = party_name(p)
                    elif pt == CDTRACCT:
                        cdtr_iban = account_iban(p)
                    elif pt == DBTR:
                        dbtr_name = party_name(p)
                    elif pt == DBTRACCT:
                        dbtr_iban = account_iban(p)
            elif tag == RMTINF:
                for r in c:
                    rt = r.tag
                    if rt == USTRD:
                        t = text(r)
                        if t is not None:
                            ustrd = [t] if ustrd is None else [*ustrd, t]
                    elif rt == STRD and sref is None:
                        for s in r:
                            if s.tag == CDTRREFINF:
                                sref = next((text(x) for x in s if x.tag == REF), None)
            elif tag == AMT:  # .04 and later
                amount = detail_amount(c, ccy, "TxDtls/Amt")
            elif tag == AMTDTLS:
                for a in c:
                    if a.tag == TXAMT and len(a):
                        amount = detail_amount(a[0], ccy, "TxDtls/AmtDtls/TxAmt")
                    elif a.tag == INSTDAMT and len(a):
                        instd = detail_amount(a[0], ccy, "TxDtls/AmtDtls/InstdAmt")
            elif tag == RTRINF:
                for r in c:
                    if r.tag == RSN and len(r):
                        rtr = text(r[0])  # Cd or Prtry
        # The other side: the creditor of a debit, the debtor of a credit.
        if cdi == "DBIT":
            name, iban = cdtr_name or dbtr_name, cdtr_iban or dbtr_iban
        else:
            name, iban = dbtr_name or cdtr_name, dbtr_iban or cdtr_iban
        if amount is None:
            amount = instd
        remittance = None if ustrd is None else " ".join(ustrd)
        if (
            e2e is None
            and remittance is None
            and name is None
            and iban is None
            and instr is None
            and amount is None
            and sref is None
            and rtr is None
        ):
            return None  # an empty <TxDtls/> (de Volksbank writes one for charges)
        if e2e == _NOT_PROVIDED:
            e2e = None
        return TxDetail(
            end_to_end_id=e2e,
            instruction_id=instr,
            amount_cents=amount,
            counterparty_name=name,
            counterparty_iban=iban,
            remittance=remittance,
            structured_reference=sref,
            return_reason=rtr,
            original_end_to_end_id=e2e if rtr is not None else None,
        )

    def bank_code(el: etree._Element, cache: _Codes) -> BankTransactionCode | None:
        domain = family = subfamily = proprietary = None
        for c in el:
            tag = c.tag
            if tag == DOMN:
                for d in c:
                    dt = d.tag
                    if dt == CD:
                        domain = text(d)
                    elif dt == FMLY:
                        for f in d:
                            ft = f.tag
                            if ft == CD:
                                family = text(f)
                            elif ft == SUBFMLYCD:
                                subfamily = text(f)
            elif tag == PRTRY:
                for p in c:
                    if p.tag == CD:
                        proprietary = text(p)
        if domain is None and family is None and subfamily is None and proprietary is None:
            return None  # <BkTxCd/>: mandatory in the schema, empty in practice for some banks
        key = (domain, family, subfamily, proprietary)
        # A statement has a handful of distinct codes; share one record each.
        code = cache.get(key)
        if code is None:
            code = cache[key] = BankTransactionCode(
                domain=domain, family=family, subfamily=subfamily, proprietary=proprietary
            )
        return code

    def batch_info(el: etree._Element, ccy: str | None) -> BatchInfo:
        msg_id = pmt_inf_id = count = total = None
        for c in el:
            tag = c.tag
            if tag == PMTINFID:
                pmt_inf_id = text(c)
            elif tag == NBOFTXS:
                t = text(c) or ""
                if not (t.isascii() and t.isdigit() and len(t) <= 15):
                    raise _Bad(f"Btch/NbOfTxs is not a count: {t[:40]!r}")
                count = int(t)
            elif tag == TTLAMT:
                total = detail_amount(c, ccy, "Btch/TtlAmt")
            elif tag == MSGID:
                msg_id = text(c)
        return BatchInfo(msg_id=msg_id, pmt_inf_id=pmt_inf_id, count=count, total_cents=total)

    def read_entry(ntry: etree._Element, index: int, codes: _Codes, dates: dict[str, date]) -> tuple[Entry, str | None]:
        """The entry and the currency of its amount (checked against the statement's by the caller)."""
        amount = cdi = ccy = status = booking = value = bank_ref = entry_ref = code = batch = info = None
        reversal = False
        details: list[TxDetail] = []
        try:
            for c in ntry:
                tag = c.tag
                if tag == AMT:
                    amount = amount_of(c, "Amt")
                    ccy = c.get("Ccy")
                elif tag == CDTDBTIND:
                    t = text(c)
                    if t != "DBIT" and t != "CRDT":
                        raise _Bad(f"CdtDbtInd must be CRDT or DBIT, not {(t or '')[:10]!r}")
                    cdi = t
                elif tag == BOOKGDT:
                    booking = day(c, "BookgDt", dates)
                elif tag == VALDT:
                    value = day(c, "ValDt", dates)
                elif tag == ACCTSVCRREF:
                    bank_ref = text(c)
                elif tag == BKTXCD:
                    code = bank_code(c, codes)
                elif tag == NTRYDTLS:
                    if cdi is None:
                        raise _Bad("NtryDtls before CdtDbtInd")
                    for d in c:
                        dt = d.tag
                        if dt == TXDTLS:
                            tx = transaction(d, cdi, ccy)
                            if tx is not None:
                                details.append(tx)
                        elif dt == BTCH and batch is None:
                            batch = batch_info(d, ccy)
                elif tag == STS:
                    status = text(c) or (text(c[0]) if len(c) else None)  # .08: Sts/Cd
                elif tag == RVSLIND:
                    reversal = text(c) in ("true", "1")
                elif tag == NTRYREF:
                    entry_ref = text(c)
                elif tag == ADDTLNTRYINF:
                    info = text(c)
        except _Bad as e:
            raise InvalidStatement(f"entry {index}: {e}") from None
        if amount is None or cdi is None:
            raise InvalidStatement(f"entry {index} lacks Amt or CdtDbtInd")
        entry = Entry(
            index=index,
            amount_cents=amount,
            credit_debit=cdi,  # type: ignore[arg-type]  # checked above: "CRDT" or "DBIT"
            reversal=reversal,
            status=status or "BOOK",
            booking_date=booking,
            value_date=value,
            bank_reference=bank_ref,
            entry_reference=entry_ref,
            bank_transaction_code=code,
            batch=batch,
            details=tuple(details),
            additional_info=info,
        )
        return entry, ccy

    return read_entry


# ---------------------------------------------------------------- parsing


def parse_camt(data: bytes, *, max_bytes: int = MAX_STATEMENT_BYTES) -> list[Statement]:
    """Every statement (``Stmt``) or notification (``Ntfctn``) in a camt.053 / camt.054 message.

    Raises ``StatementTooLarge`` over ``max_bytes``, ``MalformedStatement`` for
    XML we will not read (not well-formed, truncated, DTD, too deep),
    ``UnsupportedStatement`` for another message, ``InvalidStatement`` when a
    value breaks a rule (an amount that is not one, an account without IBAN,
    an entry in another currency than its account). Balances that do not add
    up are reported by ``Statement.balance_problem``, not refused here (the
    parser reads edited samples too); the importer refuses such a statement.
    """
    if len(data) > max_bytes:
        raise StatementTooLarge(len(data), max_bytes)
    version = detect_version(data)
    ns = _NS_PREFIX + version
    kind, message_tag, statement_tag = CAMT_NAMESPACES[ns]
    r = _Reader(ns)
    read_entry = r.read_entry
    q = f"{{{ns}}}"
    NTRY, STMT, MESSAGE, GRPHDR = r.NTRY, q + statement_tag, q + message_tag, r.GRPHDR

    msg_id: str | None = None
    msg_created: datetime | None = None
    statements: list[Statement] = []
    entries: list[Entry] = []
    currencies: dict[str | None, int] = {}  # entry currency -> first entry index in it
    pending: list[etree._Element] = []
    codes: _Codes = {}
    dates: dict[str, date] = {}
    root: etree._Element | None = None
    events = etree.iterparse(
        io.BytesIO(data),
        events=("end",),
        tag=(NTRY, STMT, GRPHDR),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        recover=False,
    )
    try:
        for _, el in events:
            if root is None:
                root = el.getroottree().getroot()
                docinfo = el.getroottree().docinfo
                if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
                    raise MalformedStatement("XML with a DTD (DOCTYPE) is refused: entity declarations are not allowed")
            tag = el.tag
            if tag == NTRY:
                parent = el.getparent()
                if parent is None or parent.tag != STMT:
                    raise InvalidStatement(f"Ntry outside a {statement_tag}")
                entry, ccy = read_entry(el, len(entries), codes, dates)
                entries.append(entry)
                currencies.setdefault(ccy, entry.index)
                pending.append(el)
                if len(pending) >= DEPTH_CHECK_EVERY:
                    _check_depth(root)
                    for p in pending:
                        p.clear()  # emptied first, so remove() has no subtree to walk
                        parent.remove(p)
                    pending.clear()
            elif tag == STMT:
                parent = el.getparent()
                if parent is None or parent.tag != MESSAGE:
                    raise UnsupportedStatement(f"{statement_tag} outside {message_tag}")
                if msg_id is None:
                    raise InvalidStatement("GrpHdr (MsgId) missing before the first statement")
                _check_depth(root)
                statements.append(
                    _statement(r, el, kind, msg_id, msg_created, tuple(entries), currencies, len(statements))
                )
                entries, currencies, pending = [], {}, []
                parent.remove(el)
            else:  # GrpHdr
                msg_id, msg_created = r.group_header(el)
    except etree.XMLSyntaxError as e:
        raise MalformedStatement(f"not well-formed XML: {e}") from None
    if root is None or not statements:
        raise InvalidStatement(f"{kind} message without any {statement_tag}")
    _check_depth(root)
    return statements


def _statement(
    r: _Reader,
    stmt: etree._Element,
    kind: StatementKind,
    msg_id: str,
    msg_created: datetime | None,
    entries: tuple[Entry, ...],
    currencies: dict[str | None, int],
    n: int,
) -> Statement:
    h, balances = r.header(stmt)
    what = f"statement {n}" if h.statement_id is None else f"statement {h.statement_id}"
    if h.statement_id is None:
        raise InvalidStatement(f"{what} has no Id")
    if h.iban is None:
        other = f" (it is identified as {h.account_other!r})" if h.account_other else ""
        raise InvalidStatement(f"{what}: the account has no IBAN{other}; only IBAN accounts are reconciled")
    iban = _account_iban(h.iban, what)
    opening = next((b for code in _OPENING_CODES for b in balances if b.code == code), None)
    closing = next((b for code in _CLOSING_CODES for b in balances if b.code == code), None)
    currency = (
        h.currency
        or (closing.currency if closing else None)
        or (opening.currency if opening else None)
        or next(iter(currencies), None)
    )
    if currency is None:
        raise InvalidStatement(f"{what} names no currency (no Acct/Ccy, balance or entry)")
    for b in (opening, closing):
        if b is not None and b.currency != currency:
            raise InvalidStatement(f"{what}: {b.code} balance is in {b.currency}, the account in {currency}")
    for ccy, index in currencies.items():
        if ccy != currency:
            raise InvalidStatement(f"{what}: entry {index} is in {ccy}, the account in {currency}")
    created = h.created_at or msg_created
    statement_date = (
        closing.on
        if closing is not None
        else h.to_date
        if h.to_date is not None
        else created.date()
        if created is not None
        else None
    )
    if statement_date is None:
        raise InvalidStatement(f"{what} has no date (no CLBD balance, FrToDt or CreDtTm)")
    return Statement(
        kind=kind,
        message_id=msg_id,
        statement_id=h.statement_id,
        electronic_sequence=h.sequence,
        legal_sequence=h.legal_sequence,
        account_iban=iban,
        currency=currency,
        created_at=created,
        opening_balance_cents=None if opening is None else opening.cents,
        closing_balance_cents=None if closing is None else closing.cents,
        statement_date=statement_date,
        entries=entries,
    )


def _sequence_number(el: etree._Element, what: str) -> int:
    # ISO Number with no fraction, at most 18 digits; a sign or decimals make no statement number
    seq = _text(el) or ""
    if not (seq.isascii() and seq.isdigit() and len(seq) <= 18):
        raise InvalidStatement(f"{what} is not a number: {seq[:40]!r}")
    return int(seq)


def _account_iban(text: str, what: str) -> str:
    try:
        return normalise_account_iban(text)
    except ValueError as e:
        raise InvalidStatement(f"{what}: {e}") from None
