"""SEPA: payment records into pain.001 bytes, pain.002 bytes into status reports.

Pure functions over bytes and frozen structs: no database, no network, no
``settlement``. Amounts are int cents; decimal text exists only inside the XML.

    model     Party, Payment, PaymentBlock, CreditTransferFile
    rules     EPC character set, identifiers, remittance, TARGET2 calendar, limits
    pain001   file_problems, build_pain001, split_payments, read_pain001
    pain002   parse_pain002, read_against (a report against its file), build_pain002, is_account_error
    xsd       validate (shipped schemas, hardened parser)
    errors    SepaError and subclasses (hierarchy drawn there)
"""

from sepa.errors import InvalidPaymentFile, MalformedXml, Problem, SchemaInvalid, SepaError, UnsupportedMessage
from sepa.model import CreditTransferFile, Party, Payment, PaymentBlock
from sepa.pain001 import build_pain001, file_problems, read_pain001, split_payments
from sepa.pain002 import (
    PaymentBlockStatus,
    Reading,
    Rejection,
    SentBlock,
    SentPayment,
    StatusReason,
    StatusReport,
    TransactionStatus,
    Verdict,
    build_pain002,
    is_account_error,
    parse_pain002,
    read_against,
)
from sepa.xsd import validate

__all__ = [
    "CreditTransferFile",
    "InvalidPaymentFile",
    "MalformedXml",
    "Party",
    "Payment",
    "PaymentBlock",
    "PaymentBlockStatus",
    "Problem",
    "Reading",
    "Rejection",
    "SchemaInvalid",
    "SentBlock",
    "SentPayment",
    "SepaError",
    "StatusReason",
    "StatusReport",
    "TransactionStatus",
    "UnsupportedMessage",
    "Verdict",
    "build_pain001",
    "build_pain002",
    "file_problems",
    "is_account_error",
    "parse_pain002",
    "read_against",
    "read_pain001",
    "split_payments",
    "validate",
]
