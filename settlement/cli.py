"""The `settlement` command.

Operational failures (database unreachable, port in use, bad setting) print
one clear line and exit non-zero; tracebacks are for programmer errors only.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import click

from settlement import db, migrate
from settlement.config import Settings, SettingsError, load_settings
from settlement.errors import SettlementError
from settlement.logs import configure_logging, get_logger

T = TypeVar("T")


class CliFailure(click.ClickException):
    """One clear line on stderr, exit code 1."""


def run_async(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def operational(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected operational errors into one line and a non-zero exit."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (db.DatabaseError, SettingsError, migrate.MigrationError) as exc:
            raise CliFailure(str(exc)) from None
        except PermissionError as exc:
            raise CliFailure(f"permission denied: {exc.filename or exc}") from None
        except SettlementError as exc:  # a rule said no: say which, as the API would
            raise CliFailure(f"{exc.code}: {exc.detail}") from None

    return wrapper


def get_settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Settlement and payment backend for voucher schemes."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise CliFailure(str(exc)) from None
    ctx.ensure_object(dict)
    ctx.obj["settings"] = settings


# --- database -----------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """The database in use."""


@db_group.command("url")
@click.pass_context
@operational
def db_url(ctx: click.Context) -> None:
    """Print the DSN in use (DATABASE_URL, or the embedded server's), for psql."""
    settings = get_settings(ctx)
    dsn = db.resolve_dsn(settings)
    click.echo(dsn)
    if not settings.database_url:
        click.echo(
            "# embedded server: it stops when this command exits; keep `settlement serve` running to use it",
            err=True,
        )


async def _migrate(settings: Settings, dsn: str, quiet: bool = False) -> list[migrate.Migration]:
    async with db.connection(dsn) as conn:

        def progress(m: migrate.Migration) -> None:
            if not quiet:
                click.echo(f"  applying {m.name}", err=True)

        return await migrate.migrate(conn, settings.migrations_dir, progress=progress)


@cli.command("migrate")
@click.pass_context
@operational
def migrate_cmd(ctx: click.Context) -> None:
    """Apply pending migrations from ops/migrations, in order."""
    settings = get_settings(ctx)
    dsn = db.resolve_dsn(settings)
    ran = run_async(_migrate(settings, dsn))
    click.echo(f"migrations: {len(ran)} applied, schema current")


# --- serving ------------------------------------------------------------------


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliFailure(f"port {port} on {host} is already in use; choose another with --port") from None
            raise CliFailure(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@cli.command("serve")
@click.option("--host", default=None, help="Interface to listen on (SETTLEMENT_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (SETTLEMENT_PORT, default 8000).")
@click.option("--workers", type=int, default=None, help="Worker processes (SETTLEMENT_WORKERS, default 1).")
@click.option("--migrate/--no-migrate", "do_migrate", default=True, help="Apply pending migrations first.")
@click.pass_context
@operational
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None, do_migrate: bool) -> None:
    """Run the HTTP API with uvicorn."""
    import uvicorn

    settings = get_settings(ctx)
    # uvicorn's own lines (startup, shutdown, errors) go through our log format too: in
    # production one JSON object per line, like every other line
    configure_logging(settings.log_format, settings.log_level)
    log = get_logger("settlement.serve")

    def say(event: str, text: str, **kw: Any) -> None:
        if settings.log_format == "json":
            log.info(event, **kw)
        else:
            click.echo(text, err=True)

    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    check_port_free(host, port)
    dsn = db.resolve_dsn(settings)
    if do_migrate:
        ran = run_async(_migrate(settings, dsn, quiet=True))
        if ran:
            say("migrations_applied", f"applied {len(ran)} migration(s)", count=len(ran))
    # Workers attach to the same database: the embedded server started here
    # lives as long as this process.
    os.environ["DATABASE_URL"] = dsn
    say("serving", f"serving on http://{host}:{port} (OpenAPI at /schema)", url=f"http://{host}:{port}")
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it with the
    # handler it found. Python's default handler would kill the process without
    # running atexit, leaving the embedded PostgreSQL running: exit instead.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uvicorn.run(
        "settlement.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
        lifespan="on",
    )


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    try:
        cli(obj={})
    except KeyboardInterrupt:
        sys.exit(130)


def register(group: click.Group) -> None:
    """Subcommand modules add themselves here (see bottom of file)."""
    cli.add_command(group)


def _load_subcommands() -> None:
    from settlement import commands

    commands.register(cli)


_load_subcommands()
