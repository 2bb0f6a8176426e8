"""What the OpenAPI document says beyond what litestar reads from the handlers' signatures.

litestar documents a handler's success answer and, for one with parameters, a
400 in its own shape; the errors this service sends are RFC 9457
problem+json (``settlement.problems``). ``document`` gives every operation the
problem answers it can send, every POST its required ``Idempotency-Key``
header (``settlement.tx.write``), and the uploads their raw XML body. It only
sets what the document is built from; litestar builds it on the first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, OpenAPIType, Operation, Parameter, RequestBody, Schema
from litestar.routes import HTTPRoute

from settlement.problems import PROBLEM_JSON


class FieldError(msgspec.Struct):
    field: Annotated[str, msgspec.Meta(description="the field, by its path when nested (shares[0].fund_id)")]
    message: str
    source: Annotated[str, msgspec.Meta(description="body, query, path or header")] = "body"


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem; ``code`` names the rule, and a client decides on it."""

    type: Annotated[str, msgspec.Meta(description="https://settlement.example/problems/<code>")]
    title: str
    status: int
    detail: Annotated[str, msgspec.Meta(description="for a person; never a stack trace")]
    code: Annotated[str, msgspec.Meta(description="the rule, e.g. fund_not_found, role_not_allowed")]
    instance: Annotated[str, msgspec.Meta(description="the request's path")]
    errors: Annotated[
        list[FieldError] | None, msgspec.Meta(description="422 validation_failed: one line per field")
    ] = None


# status -> (what it means here, an example code)
PROBLEMS: dict[int, tuple[str, str]] = {
    400: (
        "Malformed request: JSON that does not parse (malformed_request), a value the database cannot hold "
        "(value_out_of_range), a POST without an Idempotency-Key (idempotency_key_required)",
        "malformed_request",
    ),
    401: ("No token, or one that is unknown or revoked (unauthorized, token_invalid)", "token_invalid"),
    403: ("The token's role may not do this (role_not_allowed), or a four-eyes rule refuses it", "role_not_allowed"),
    404: (
        "No such resource, or one of another organisation (e.g. fund_not_found, payout_run_not_found)",
        "not_found",
    ),
    409: (
        "A rule refuses it in the current state, or the Idempotency-Key was used for another request "
        "(idempotency_key_reused); nothing changed",
        "idempotency_key_reused",
    ),
    413: ("The body is larger than SETTLEMENT_MAX_UPLOAD_BYTES (payload_too_large)", "payload_too_large"),
    422: (
        "The body or a query parameter is of the wrong shape (validation_failed, with errors) "
        "or breaks a rule of its values",
        "validation_failed",
    ),
    503: ("The database or the sponsor's ledger is too busy (too_busy); nothing changed, retry", "too_busy"),
}

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    422: "Validation failed",
    503: "Service unavailable",
}

IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in="header",
    required=True,
    description="Any unique string up to 200 printable characters. A replay with the same key answers the "
    "first answer (header Idempotent-Replayed: true); the same key with another body, endpoint or role is "
    "409 idempotency_key_reused. Keys are per organisation.",
    schema=Schema(type=OpenAPIType.STRING, max_length=200),
)

_XML = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]


@dataclass
class WriteOperation(Operation):
    """A POST: it needs an Idempotency-Key."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), IDEMPOTENCY_KEY]


@dataclass
class StatementUpload(WriteOperation):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            description="The bank's file as it came: camt.053/camt.054 (.02 or .08) or MT940; no DTD or entities",
            content={"application/xml": OpenAPIMediaType(schema=_XML), "text/plain": OpenAPIMediaType(schema=_XML)},
            required=True,
        )


@dataclass
class StatusReportUpload(WriteOperation):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            description="The bank's pain.002 status report as it came; no DTD or entities",
            content={"application/xml": OpenAPIMediaType(schema=_XML)},
            required=True,
        )


UPLOADS: dict[str, type[Operation]] = {
    "/v1/statements": StatementUpload,
    "/v1/payment-status-reports": StatusReportUpload,
}
_NOT_PARAMETERS = {"request", "data", "scope", "self"}


def _spec(status: int, path: str) -> ResponseSpec:
    meaning, code = PROBLEMS[status]
    if path == "/ready":
        meaning, code = "Not ready: the database is unreachable or migrations are pending", "migrations_pending"
    example = {
        "type": f"https://settlement.example/problems/{code}",
        "title": _TITLES[status],
        "status": status,
        "detail": "...",
        "code": code,
        "instance": "/v1/...",
    }
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_JSON,
        description=meaning,
        generate_examples=False,
        examples=[Example(summary=code, value=example)],
    )


def problem_statuses(method: str, path: str, handler: Any) -> list[int]:
    """The problem answers an operation can send: by how it is reached and what it takes."""
    if not path.startswith("/v1/"):
        return [503] if path == "/ready" else []  # database_unreachable, migrations_pending
    params = set(handler.parsed_fn_signature.parameters) - set(handler.resolve_dependencies())
    statuses = [400, 401, 403, 503]
    if "{" in path or method in ("POST", "PUT"):
        statuses.append(404)
    if method in ("POST", "PUT"):
        statuses += [409, 413]
    query = params - _NOT_PARAMETERS - {name.split(":")[0] for name in _path_names(path)}
    if path in UPLOADS or "data" in params or query:
        statuses.append(422)
    return sorted(statuses)


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def document(app: Litestar) -> None:
    """Give every operation its problem answers, every POST its Idempotency-Key, uploads their body."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method in ("OPTIONS", "HEAD"):
                    continue
                ours = {status: _spec(status, route.path) for status in problem_statuses(method, route.path, handler)}
                handler.responses = {**ours, **(handler.responses or {})}
                if method == "POST":
                    handler.operation_class = UPLOADS.get(route.path, WriteOperation)
