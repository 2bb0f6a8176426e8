"""Liveness and readiness."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from settlement import migrate
from settlement.errors import Unavailable
from settlement.state import AppState


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True):
    status: str
    database: str
    migrations_pending: int


class HealthController(Controller):
    tags = ["operations"]  # noqa: RUF012

    @get("/health", summary="The process is up", exclude_from_auth=True)
    async def health(self) -> Health:
        return Health(status="ok")

    @get(
        "/ready",
        summary="The database is reachable and migrations are current",
        description="503 problem+json when the database is unreachable or a migration is pending.",
        exclude_from_auth=True,
    )
    async def ready(self, app_state: NamedDependency[AppState]) -> Readiness:
        try:
            async with app_state.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
                todo = await migrate.pending(conn, app_state.settings.migrations_dir)
        except (OSError, TimeoutError) as exc:
            raise Unavailable("database unreachable", code="database_unreachable") from exc
        except migrate.MigrationError as exc:
            raise Unavailable(str(exc), code="migrations_invalid") from exc
        except Exception as exc:
            raise Unavailable(f"database check failed: {type(exc).__name__}", code="database_unreachable") from exc
        if todo:
            raise Unavailable(
                f"{len(todo)} migration(s) pending; run `settlement migrate`",
                code="migrations_pending",
                migrations_pending=len(todo),
            )
        return Readiness(status="ok", database="ok", migrations_pending=0)
