from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import LiveServer


async def test_health_and_ready(client: Any) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    r = await client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["migrations_pending"] == 0
    assert r.headers["x-request-id"]


async def test_request_id_is_echoed(client: Any) -> None:
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


async def test_openapi_schema_and_page(client: Any) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "Settlement API"
    assert "/health" in spec["paths"]
    page = await client.get("/schema")
    assert page.status_code == 200
    assert "html" in page.headers["content-type"]


async def test_unknown_path_is_problem_json_without_trace(client: Any) -> None:
    r = await client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 404
    assert body["code"] == "not_found"
    assert "Traceback" not in r.text


async def test_wrong_method_is_405_problem(client: Any) -> None:
    r = await client.delete("/health")
    assert r.status_code == 405
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "method_not_allowed"


async def test_ready_reports_pending_migration(db_dsn: str, test_settings: Any, tmp_path: Any) -> None:
    import shutil

    from litestar.testing import AsyncTestClient

    from settlement.app import create_app

    migrations = tmp_path / "m"
    shutil.copytree(test_settings.migrations_dir, migrations)
    (migrations / "9998_later.sql").write_text("SELECT 1;")
    import msgspec

    settings = msgspec.structs.replace(test_settings, migrations_dir=migrations)
    async with AsyncTestClient(app=create_app(settings, dsn=db_dsn)) as c:
        r = await c.get("/ready")
    assert r.status_code == 503
    assert r.json()["code"] == "migrations_pending"


def test_real_http_server(live_server: LiveServer) -> None:
    r = httpx.get(f"{live_server.url}/health", timeout=10)
    assert r.status_code == 200
    r = httpx.get(f"{live_server.url}/schema/openapi.json", timeout=10)
    assert r.status_code == 200
