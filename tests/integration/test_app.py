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


async def test_openapi_documents_problem_answers(client: Any) -> None:
    # every operation of the API documents the RFC 9457 answers it can send, as problem+json
    spec = (await client.get("/schema/openapi.json")).json()
    assert "Problem" in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            problems = {
                status for status, r in responses.items() if "application/problem+json" in (r.get("content") or {})
            }
            # litestar's own 400 (status_code/detail/extra as application/json) is never what we send
            assert not any("application/json" in (r.get("content") or {}) for s, r in responses.items() if s >= "400")
            assert op.get("summary"), (method, path)
            if not path.startswith("/v1/"):
                continue
            assert {"400", "401", "403", "503"} <= problems, (method, path, problems)
            if "{" in path or method in ("post", "put"):
                assert "404" in problems, (method, path)
            if method in ("post", "put"):
                assert "409" in problems, (method, path)
            if method == "post":
                headers = [p for p in op.get("parameters", []) if p["in"] == "header"]
                assert [p["name"] for p in headers] == ["Idempotency-Key"] and headers[0]["required"], (method, path)
    for upload in ("/v1/statements", "/v1/payment-status-reports"):
        assert "application/xml" in spec["paths"][upload]["post"]["requestBody"]["content"]


async def test_openapi_codes_are_what_the_server_answers(client: Any) -> None:
    spec = (await client.get("/schema/openapi.json")).json()

    def documented(method: str, path: str) -> set[int]:
        return {int(s) for s in spec["paths"][path][method]["responses"]}

    r = await client.get("/v1/funds")
    assert r.status_code == 401 and r.status_code in documented("get", "/v1/funds")
    r = await client.get("/v1/funds", headers={"Authorization": "Bearer stl_nope"})
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.post("/v1/statements", content=b"<x/>", headers={"Authorization": "Bearer stl_nope"})
    assert r.status_code in documented("post", "/v1/statements")
