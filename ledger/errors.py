"""Ledger errors. Expected rule failures are result codes (values), not exceptions;
these are for misuse of the API and for limits on a batch as a whole."""

from __future__ import annotations


class LedgerError(Exception):
    code = "ledger_error"


class BatchTooLarge(LedgerError):
    code = "batch_too_large"


class NotInTransaction(LedgerError):
    code = "not_in_transaction"
