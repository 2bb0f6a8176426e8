"""Reconciliation errors. One base class; a caller that must react catches a subclass.

    ReconciliationError           code
    ├── MalformedStatement        malformed_statement    (not well-formed, truncated, DTD/entities, too deep)
    ├── UnsupportedStatement      unsupported_statement  (well-formed, but not a camt.053/.054 or MT940 we read)
    ├── StatementTooLarge         statement_too_large    (more bytes than the caller allows)
    └── InvalidStatement          invalid_statement      (readable, but breaks a rule: bad amount, no IBAN, ...)
        └── SchemaInvalid         statement_schema_invalid (XSD said no; carries lxml's error lines)

``settlement/`` maps ``code`` to an HTTP problem; nothing here knows HTTP.
"""

from __future__ import annotations


class ReconciliationError(Exception):
    code = "reconciliation_error"


class MalformedStatement(ReconciliationError):
    code = "malformed_statement"


class UnsupportedStatement(ReconciliationError):
    code = "unsupported_statement"


class StatementTooLarge(ReconciliationError):
    code = "statement_too_large"

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"statement is {size} bytes or more, the limit is {limit}")


class InvalidStatement(ReconciliationError):
    code = "invalid_statement"


class SchemaInvalid(InvalidStatement):
    code = "statement_schema_invalid"

    def __init__(self, schema: str, errors: list[str]) -> None:
        self.schema = schema
        self.errors: tuple[str, ...] = tuple(errors)
        super().__init__(f"not valid against {schema}: " + " | ".join(self.errors[:5]))
