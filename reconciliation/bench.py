"""Benchmarks for statement parsing and matching: functions returning dicts.

``settlement bench reconcile`` wraps these with the database import and
booking. The statement is a sponsor's payout day: mostly single bookings
(one DBIT entry per payment, one TxDtls with EndToEndId, creditor name, IBAN
and remittance) and every ``BATCH_EVERY``-th entry a batch booking (``Btch``
with PmtInfId, count and total, plus one TxDtls per payment).

Wall-clock figures are printed, never asserted.
"""

from __future__ import annotations

import importlib
import io
import random
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from time import perf_counter
from typing import Any, cast

import msgspec
from lxml import etree
from schwifty import IBAN

from reconciliation.camt import _entry_reader, _Reader, parse_camt
from reconciliation.match import ExpectedBlock, ExpectedPayment, match_entries
from reconciliation.model import BankTransactionCode, BatchInfo, Entry, Statement, TxDetail
from reconciliation.synth import build_camt053

SEED = 20261123
BATCH_EVERY = 50  # one entry in 50 is a batch booking
BATCH_SIZES = (2, 12)  # payments per batch, inclusive
_RUN = "P2026112301"
_DAY = date(2026, 11, 23)
_ACCOUNT = "NL91ABNA0417164300"
_SCT = BankTransactionCode(domain="PMNT", family="ICDT", subfamily="ESCT", proprietary="NTRF")
_BANKS = ("ABNA", "INGB", "RABO", "SNSB", "TRIO")
_HARDENED: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
}


def _ibans(n: int) -> list[str]:
    return [
        str(IBAN.generate("NL", bank_code=_BANKS[i % len(_BANKS)], account_code=f"{100_000_000 + i:010d}").compact)
        for i in range(n)
    ]


def payout_statement(
    entries: int = 100_000, *, seed: int = SEED
) -> tuple[Statement, dict[str, ExpectedPayment], dict[str, ExpectedBlock]]:
    """A camt.053-shaped statement of ``entries`` payout bookings and the index that
    the database would hand the matcher for it (every payment expected)."""
    rng = random.Random(seed)
    pool = _ibans(min(entries, 997) or 1)
    payments: dict[str, ExpectedPayment] = {}
    blocks: dict[str, ExpectedBlock] = {}
    out: list[Entry] = []
    seq = 0

    def payment(block: str) -> tuple[ExpectedPayment, TxDetail]:
        nonlocal seq
        seq += 1
        e2e = f"{_RUN}-{seq:06d}"
        amount = rng.randint(500, 250_000)
        iban = pool[seq % len(pool)]
        p = ExpectedPayment(
            payment_id=f"pay-{seq}", end_to_end_id=e2e, amount_cents=amount, creditor_iban=iban, pmt_inf_id=block
        )
        payments[e2e] = p
        return p, TxDetail(
            end_to_end_id=e2e,
            counterparty_name=f"Fietsenwinkel De Spaak & Zn {seq}",
            counterparty_iban=iban,
            remittance=f"Uitbetaling {_RUN} RD-2026-{seq:07d} RD-2026-{seq + 1:07d}",
        )

    for i in range(entries):
        if i % BATCH_EVERY == BATCH_EVERY - 1:
            block_id = f"{_RUN}-B{i:06d}"
            pairs = [payment(block_id) for _ in range(rng.randint(*BATCH_SIZES))]
            total = sum(p.amount_cents for p, _ in pairs)
            blocks[block_id] = ExpectedBlock(
                block_id=f"block-{i}",
                pmt_inf_id=block_id,
                count=len(pairs),
                total_cents=total,
                end_to_end_ids=tuple(p.end_to_end_id for p, _ in pairs),
            )
            batch = BatchInfo(msg_id=_RUN, pmt_inf_id=block_id, count=len(pairs), total_cents=total)
            details = tuple(msgspec.structs.replace(d, amount_cents=p.amount_cents) for p, d in pairs)
            amount = total
        else:
            block_id = f"{_RUN}-S{i:06d}"
            p, d = payment(block_id)
            batch, details, amount = None, (d,), p.amount_cents
        out.append(
            Entry(
                index=i,
                amount_cents=amount,
                credit_debit="DBIT",
                booking_date=_DAY,
                value_date=_DAY,
                bank_reference=f"ABN{i:013d}",
                bank_transaction_code=_SCT,
                batch=batch,
                details=details,
            )
        )
    total_out = sum(e.amount_cents for e in out)
    statement = Statement(
        kind="camt.053",
        message_id=f"STMT-{_RUN}",
        statement_id=f"{_RUN}-1",
        electronic_sequence=1,
        account_iban=_ACCOUNT,
        currency="EUR",
        created_at=datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
        opening_balance_cents=total_out + 1_000_000,
        closing_balance_cents=1_000_000,
        statement_date=_DAY,
        entries=tuple(out),
    )
    return statement, payments, blocks


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeat)):
        t0 = perf_counter()
        fn()
        best = min(best, perf_counter() - t0)
    return best


def bare_iterparse(data: bytes) -> int:
    """The yardstick: lxml iterparse over every element, clearing each, nothing else."""
    n = 0
    for _, el in etree.iterparse(io.BytesIO(data), events=("end",), **_HARDENED):
        el.clear()
        n += 1
    return n


def bench_parse(entries: int = 100_000, seed: int = SEED, *, repeat: int = 1) -> dict[str, int | float]:
    """Parse a synthetic camt.053.001.02 of ``entries`` entries with ``parse_camt``
    and with a bare iterparse (``bare_iterparse``); ``ratio`` is ours / bare."""
    statement, _, _ = payout_statement(entries, seed=seed)
    data = build_camt053(statement, validate=False)
    # Interleaved, best of each: the machine's speed drifts, a ratio of
    # back-to-back runs drifts less than two separate series would.
    parse_s = bare_s = float("inf")
    parsed: Statement | None = None
    for _ in range(max(1, repeat)):
        t0 = perf_counter()
        [parsed] = parse_camt(data, max_bytes=len(data))
        parse_s = min(parse_s, perf_counter() - t0)
        t0 = perf_counter()
        bare_iterparse(data)
        bare_s = min(bare_s, perf_counter() - t0)
    if parsed != statement:
        raise AssertionError("the parsed statement differs from the one written")
    return {
        "entries": len(parsed.entries),
        "bytes": len(data),
        "parse_s": round(parse_s, 4),
        "lxml_iterparse_s": round(bare_s, 4),
        "ratio": round(parse_s / bare_s, 3),
    }


def bench_match(entries: int = 100_000, seed: int = SEED, *, repeat: int = 1) -> dict[str, int | float]:
    """Match the synthetic statement's entries against an index of all its payments."""
    statement, payments, blocks = payout_statement(entries, seed=seed)
    results: list[int] = []

    def run() -> None:
        decisions = match_entries(
            statement.entries, expected_payments=payments, expected_blocks=blocks, top_up_references={}
        )
        results.append(sum(1 for d in decisions if d.matched))

    match_s = _best(run, repeat)
    matched = results[-1]
    return {
        "entries": len(statement.entries),
        "expected_payments": len(payments),
        "match_s": round(match_s, 4),
        "matched": matched,
        "unmatched": len(statement.entries) - matched,
    }


# ---------------------------------------------------------------- the approach comparison (camt.py docstring)


def _xpath_per_field(data: bytes) -> int:
    """(a) Whole tree, then one precompiled XPath per field per entry."""
    root = etree.fromstring(data, etree.XMLParser(**_HARDENED))
    ns = {"c": etree.QName(root).namespace or ""}
    entries = etree.XPath("/c:Document/c:BkToCstmrStmt/c:Stmt/c:Ntry", namespaces=ns)
    fields = [
        etree.XPath(p, namespaces=ns, smart_strings=False)
        for p in (
            "string(c:Amt)",
            "string(c:Amt/@Ccy)",
            "string(c:CdtDbtInd)",
            "string(c:BookgDt/c:Dt)",
            "string(c:ValDt/c:Dt)",
            "string(c:AcctSvcrRef)",
            "string(c:BkTxCd/c:Domn/c:Cd)",
            "string(c:NtryDtls/c:Btch/c:PmtInfId)",
            "c:NtryDtls/c:TxDtls/c:Refs/c:EndToEndId/text()",
            "c:NtryDtls/c:TxDtls/c:RltdPties/c:Cdtr/c:Nm/text()",
            "c:NtryDtls/c:TxDtls/c:RltdPties/c:CdtrAcct/c:Id/c:IBAN/text()",
            "c:NtryDtls/c:TxDtls/c:RmtInf/c:Ustrd/text()",
        )
    ]
    n = 0
    for ntry in cast("list[etree._Element]", entries(root)):
        _ = [f(ntry) for f in fields]
        n += 1
    return n


def _tree_walk(data: bytes) -> int:
    """(a') Whole tree, then the same child walk as parse_camt."""
    root = etree.fromstring(data, etree.XMLParser(**_HARDENED))
    ns = etree.QName(root).namespace or ""
    read = _entry_reader(ns)
    r = _Reader(ns)
    codes: dict[tuple[str | None, ...], BankTransactionCode] = {}
    dates: dict[str, date] = {}
    n = 0
    for ntry in root.iter(r.NTRY):
        read(ntry, n, codes, dates)
        n += 1
    return n


def _pyiso20022(data: bytes) -> int:
    """(c) pyiso20022's generated dataclasses, parsed by xsdata (parse only, no mapping)."""
    models = importlib.import_module("pyiso20022.camt.camt_053_001_02")
    parsers = importlib.import_module("xsdata.formats.dataclass.parsers")
    doc = parsers.XmlParser().from_bytes(data, models.Document)
    return len(doc.bk_to_cstmr_stmt.stmt[0].ntry)


APPROACHES = ("bare", "filtered", "a_xpath", "a2_tree_walk", "b_iterparse", "c_pyiso20022")


def bench_approaches(
    entries: int = 100_000, seed: int = SEED, *, repeat: int = 3, only: Iterable[str] = APPROACHES
) -> dict[str, float | int | str]:
    """Time each way of reading the same camt.053 (best of ``repeat``; pyiso20022 once):
    the numbers behind the choice documented in ``reconciliation.camt``. Run one
    approach per process (``only``) for figures that do not disturb each other.
    """
    statement, _, _ = payout_statement(entries, seed=seed)
    data = build_camt053(statement, validate=False)
    del statement
    ns = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"

    def filtered_only() -> None:
        for _, el in etree.iterparse(io.BytesIO(data), events=("end",), tag=f"{{{ns}}}Ntry", **_HARDENED):
            el.clear()
            parent = el.getparent()
            while parent is not None and el.getprevious() is not None:
                del parent[0]

    runs: dict[str, Callable[[], object]] = {
        "bare": lambda: bare_iterparse(data),
        "filtered": filtered_only,
        "a_xpath": lambda: _xpath_per_field(data),
        "a2_tree_walk": lambda: _tree_walk(data),
        "b_iterparse": lambda: parse_camt(data, max_bytes=len(data)),
        "c_pyiso20022": lambda: _pyiso20022(data),
    }
    out: dict[str, float | int | str] = {"entries": entries, "bytes": len(data)}
    for name in only:
        try:
            out[f"{name}_s"] = round(_best(runs[name], 1 if name == "c_pyiso20022" else repeat), 3)
        except ImportError as e:
            out[f"{name}_s"] = f"unavailable ({e})"
    return out
