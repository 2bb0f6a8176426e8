"""One error hierarchy, mapped to RFC 9457 problem details in one place.

    SettlementError                     500 unless a subclass says otherwise
    +-- BadRequest                      400 (malformed input the schema cannot catch)
    |   +-- ValidationFailed            422 field-level problems (``errors``)
    +-- Unauthorized                    401 missing or unknown token
    +-- Forbidden                       403 role may not do this
    +-- NotFound                        404 unknown id, or someone else's id
    +-- Conflict                        409 state does not allow it
    |   +-- IdempotencyConflict         409 same key, different request
    |   +-- InsufficientFunds           409 a limited balance would go short
    +-- PayloadTooLarge                 413 upload over the limit
    +-- Unavailable                     503 database unreachable, not migrated

Every error carries a rule-named ``code`` (``voucher_balance_insufficient``,
``iban_invalid``, ...) that clients can switch on; ``title`` is for people.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SettlementError(Exception):
    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.extra = extra

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://settlement.example/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(SettlementError):
    status = 400
    default_code = "bad_request"
    title = "Bad request"


class ValidationFailed(BadRequest):
    status = 422
    default_code = "validation_failed"
    title = "Validation failed"


class Unauthorized(SettlementError):
    status = 401
    default_code = "unauthorized"
    title = "Unauthorized"


class Forbidden(SettlementError):
    status = 403
    default_code = "forbidden"
    title = "Forbidden"


class NotFound(SettlementError):
    status = 404
    default_code = "not_found"
    title = "Not found"


class Conflict(SettlementError):
    status = 409
    default_code = "conflict"
    title = "Conflict"


class IdempotencyConflict(Conflict):
    default_code = "idempotency_key_reused"
    title = "Idempotency key reused with a different request"


class InsufficientFunds(Conflict):
    default_code = "insufficient_funds"
    title = "Insufficient funds"


class PayloadTooLarge(SettlementError):
    status = 413
    default_code = "payload_too_large"
    title = "Payload too large"


class Unavailable(SettlementError):
    status = 503
    default_code = "unavailable"
    title = "Service unavailable"
