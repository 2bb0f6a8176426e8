"""The litestar application factory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import SerializationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from settlement import db
from settlement.config import Settings, load_settings
from settlement.logs import configure_logging, get_logger
from settlement.problems import EXCEPTION_HANDLERS
from settlement.state import AppState

log = get_logger("settlement.app")

API_DESCRIPTION = """\
Settlement and payment backend for Dutch poverty-relief voucher schemes.

* Amounts are integer euro cents (`"amount": 1250` is EUR 12.50), never decimals.
* Every POST takes an `Idempotency-Key` header: a replay returns the original
  response; the same key with another body answers 409. A 503 with code
  `too_busy` (the database or a sponsor's ledger is overloaded) changed
  nothing and is not stored: retry with the same key.
* Errors are RFC 9457 `application/problem+json` with a rule-named `code`.
  A value the database cannot hold (an id or amount beyond 64 bits, a NUL
  character in text, a date past 9999-12-31) is a 400 `value_out_of_range`.
* Authenticate with `Authorization: Bearer <token>`; every query is scoped to
  the token's organisation, so another organisation's ids answer 404.
"""


class SettlementRequest(Request[Any, Any, Any]):
    """litestar's request, whose JSON body is a 400 whenever it cannot be decoded.

    msgspec reports bad syntax as a decode error (litestar's 400), but text
    that is not UTF-8 as a UnicodeDecodeError and nesting deeper than it
    recurses as a RecursionError, which litestar passes on as they are: a 500
    for the client's malformed body. Both are the same 400 here.
    """

    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise SerializationException("JSON is malformed: the body is not valid UTF-8") from None
        except RecursionError:
            raise SerializationException("JSON is malformed: nested too deeply") from None


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Bind a request id (the client's X-Request-ID or a new one) to every log line."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 100 and incoming.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await app(scope, receive, send_with_id)

    return middleware


def create_app(settings: Settings | None = None, *, dsn: str | None = None) -> Litestar:
    settings = settings or load_settings()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        resolved = dsn or db.resolve_dsn(settings)
        pool = await db.create_pool(settings, resolved)
        app.state.app_state = AppState(settings=settings, dsn=resolved, pool=pool)
        hooks: list[Any] = app.state.get("startup_hooks", [])
        stoppers = [await hook(app.state.app_state) for hook in hooks]
        log.info("app_started", environment=settings.environment)
        try:
            yield
        finally:
            for stop in reversed(stoppers):
                if stop is not None:
                    await stop()
            await pool.close()
            log.info("app_stopped")

    def provide_state(state: State) -> AppState:
        app_state: AppState = state.app_state
        return app_state

    from settlement.api import openapi, route_handlers, startup_hooks
    from settlement.api.deps import auditors_read_only

    app = Litestar(
        route_handlers=route_handlers(),
        lifespan=[lifespan],
        dependencies={"app_state": Provide(provide_state, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_id_middleware],
        request_class=SettlementRequest,
        guards=[auditors_read_only],
        state=State({"startup_hooks": startup_hooks()}),
        request_max_body_size=settings.max_upload_bytes,
        # our logging (settlement.logs) stays: litestar's default would replace the root
        # handlers with its own plain-text format
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="Settlement API",
            version="0.1.0",
            description=API_DESCRIPTION,
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", description="API token")}
            ),
            security=[{"bearer": []}],
        ),
        debug=False,
    )
    openapi.document(app)
    return app
