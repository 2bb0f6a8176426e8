"""SEPA errors. One base class; a caller that must react catches a subclass.

    SepaError                     code
    ├── InvalidPaymentFile        invalid_payment_file  (carries every Problem found)
    ├── SchemaInvalid             schema_invalid        (XSD said no; carries lxml's error lines)
    ├── MalformedXml              malformed_xml         (not well-formed, DTD/entities, too large)
    └── UnsupportedMessage        unsupported_message   (well-formed, but not a message we read)

``settlement/`` maps ``code`` to an HTTP problem; nothing here knows HTTP.
"""

from __future__ import annotations

import msgspec


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One broken rule in a payment file, named after the rule."""

    code: str
    # Where in the input, e.g. "blocks[0].payments[3].amount_cents", so a
    # person can find the payment without reading XML.
    path: str
    detail: str = ""


class SepaError(Exception):
    code = "sepa_error"


class InvalidPaymentFile(SepaError):
    code = "invalid_payment_file"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        shown = "; ".join(f"{p.path}: {p.code}" + (f" ({p.detail})" if p.detail else "") for p in self.problems[:10])
        more = f" (+{len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(f"{len(self.problems)} problem(s): {shown}{more}")

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(p.code for p in self.problems)


class SchemaInvalid(SepaError):
    code = "schema_invalid"

    def __init__(self, schema: str, errors: list[str]) -> None:
        self.schema = schema
        self.errors: tuple[str, ...] = tuple(errors)
        super().__init__(f"not valid against {schema}: " + " | ".join(self.errors[:5]))


class MalformedXml(SepaError):
    code = "malformed_xml"


class UnsupportedMessage(SepaError):
    code = "unsupported_message"
