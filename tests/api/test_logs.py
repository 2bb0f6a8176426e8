"""Logs carry no beneficiary data and no secrets, also when a request fails unexpectedly."""

from __future__ import annotations

import io
import sys
from typing import Any

import msgspec
import pytest

from settlement.config import Settings
from tests.api.conftest import World


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_a_500_logs_its_traceback_without_the_requests_token_or_beneficiary(
    world: World, db_dsn: str, test_settings: Settings, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    from litestar.testing import AsyncTestClient

    from settlement.app import create_app
    from settlement.vouchers import flows

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise _Boom("something broke")

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)  # where the app's logger writes
    monkeypatch.setattr(flows, "issue_vouchers", boom)
    settings = msgspec.structs.replace(test_settings, log_format=fmt, log_level="info")
    ref = "WK-2026-00999-FAM"
    async with AsyncTestClient(app=create_app(settings, dsn=db_dsn)) as client:
        r = await client.post(
            "/v1/vouchers",
            headers=world.h("gemeente_validator"),
            json={"fund_id": world.ids["kindpakket"], "amount": 100, "beneficiary_ref": ref},
        )
    assert r.status_code == 500
    logged = err.getvalue()
    assert "unhandled_error" in logged and "_Boom" in logged  # the traceback is there ...
    assert ref not in logged  # ... but not the beneficiary (DESIGN.md: never appear)
    assert world.tokens["gemeente_validator"] not in logged  # ... nor the caller's token


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_a_database_error_quoting_a_voucher_code_is_logged_without_it(
    world: World, db_dsn: str, test_settings: Settings, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """asyncpg's message carries PostgreSQL's DETAIL, which quotes the row: a unique violation
    says "Key (code)=(V-...) already exists". The voucher code is a bearer instrument."""
    from litestar.testing import AsyncTestClient

    from settlement.app import create_app
    from settlement.vouchers import flows

    code = "V-AAAA-BBBB-CCCC"
    monkeypatch.setattr(flows, "new_voucher_code", lambda: code)  # a collision, forced
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    settings = msgspec.structs.replace(test_settings, log_format=fmt, log_level="info")
    body = {"fund_id": world.ids["kindpakket"], "amount": 100, "beneficiary_ref": "WK-2026-00998-FAM"}
    async with AsyncTestClient(app=create_app(settings, dsn=db_dsn)) as client:
        first = await client.post("/v1/vouchers", headers=world.h("gemeente_validator"), json=body)
        assert first.status_code == 201, first.text
        second = await client.post("/v1/vouchers", headers=world.h("gemeente_validator"), json=body)
    assert second.status_code == 500
    assert code not in second.text and "DETAIL" not in second.text
    logged = err.getvalue()
    assert "unhandled_error" in logged and "UniqueViolationError" in logged  # what and where ...
    assert code not in logged  # ... but not the code the database quoted
    assert "WK-2026-00998-FAM" not in logged


def test_standard_logging_lines_are_json_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    """Libraries (asyncpg's pool, litestar, uvicorn) log through the standard logging module;
    in production their lines must be JSON objects like ours, with time, level and logger."""
    import logging

    from settlement.logs import configure_logging

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("json", "info")
        logging.getLogger("asyncpg.pool").warning("error when resetting connection")
        logging.getLogger("uvicorn.error").setLevel(logging.INFO)
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = [msgspec.json.decode(ln) for ln in err.getvalue().splitlines() if ln.strip()]
    assert [(x["logger"], x["level"], x["event"]) for x in lines] == [
        ("asyncpg.pool", "warning", "error when resetting connection"),
        ("uvicorn.error", "info", "Started server process [42]"),
    ]
    assert all(x["timestamp"] for x in lines)


async def test_the_app_keeps_our_log_handlers(db_dsn: str, test_settings: Settings) -> None:
    """litestar's default logging config replaced the root handlers with its own plain-text
    format, so uvicorn's lines in production were not JSON."""
    import logging

    from litestar.testing import AsyncTestClient

    from settlement.app import create_app

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        settings = msgspec.structs.replace(test_settings, log_format="json", log_level="info")
        app = create_app(settings, dsn=db_dsn)
        ours = root.handlers[:]
        async with AsyncTestClient(app=app) as client:
            assert (await client.get("/health")).status_code == 200
        assert root.handlers == ours
        assert all(type(h.formatter).__name__ == "ProcessorFormatter" for h in root.handlers)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
