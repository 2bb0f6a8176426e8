"""Reconciliation: camt.053 / camt.054 / MT940 bytes into statements, matched against expected payments.

Pure functions over bytes and frozen structs: no database, no network, no
``settlement``, no ``sepa``. Amounts are int cents; decimal text exists only
inside the bank files.

    model     Statement, Entry, TxDetail, BatchInfo, BankTransactionCode; Entry.fingerprint, cents
    camt      parse_camt (camt.053 / camt.054 .02 .04 .08, streaming, hardened), MAX_STATEMENT_BYTES
    mt940     parse_mt940 (SWIFT MT940 with the Dutch structured :86:; ING, Rabobank, ABN AMRO)
    parse     parse_statement (sniffs camt vs MT940), read_limited (bounded upload read)
    match     match_entries: EndToEndId, batch PmtInfId, returns, top-up references, suggestions
    synth     build_camt053, build_camt054, build_mt940 (tests and benchmarks)
    xsd       validate (shipped camt schemas), hardened_parser
    bench     bench_parse, bench_match, bench_approaches
    errors    ReconciliationError and subclasses (hierarchy drawn there)
"""

from reconciliation.camt import MAX_STATEMENT_BYTES, parse_camt
from reconciliation.errors import (
    InvalidStatement,
    MalformedStatement,
    ReconciliationError,
    SchemaInvalid,
    StatementTooLarge,
    UnsupportedStatement,
)
from reconciliation.match import (
    Decision,
    ExpectedBlock,
    ExpectedPayment,
    OpenAmount,
    TopUpTarget,
    match_entries,
    normalise_reference,
)
from reconciliation.model import BankTransactionCode, BatchInfo, Entry, Statement, TxDetail
from reconciliation.mt940 import parse_mt940
from reconciliation.parse import parse_statement, read_limited
from reconciliation.synth import build_camt053, build_camt054, build_mt940
from reconciliation.xsd import validate

__all__ = [
    "MAX_STATEMENT_BYTES",
    "BankTransactionCode",
    "BatchInfo",
    "Decision",
    "Entry",
    "ExpectedBlock",
    "ExpectedPayment",
    "InvalidStatement",
    "MalformedStatement",
    "OpenAmount",
    "ReconciliationError",
    "SchemaInvalid",
    "Statement",
    "StatementTooLarge",
    "TopUpTarget",
    "TxDetail",
    "UnsupportedStatement",
    "build_camt053",
    "build_camt054",
    "build_mt940",
    "match_entries",
    "normalise_reference",
    "parse_camt",
    "parse_mt940",
    "parse_statement",
    "read_limited",
    "validate",
]
