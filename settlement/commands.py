"""Subcommands: tokens, ledger, vouchers, demo, bench."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from settlement import db


def _settings(ctx: click.Context) -> Any:
    return ctx.find_root().obj["settings"]


def _run(ctx: click.Context, fn: Any) -> Any:
    """Run fn(conn) against the configured database, migrated first."""
    from settlement.cli import _migrate, operational

    @operational
    def go() -> Any:
        settings = _settings(ctx)
        dsn = db.resolve_dsn(settings)
        asyncio.run(_migrate(settings, dsn, quiet=True))

        async def main() -> Any:
            async with db.connection(dsn) as conn:
                return await fn(conn, dsn)

        return asyncio.run(main())

    return go()


def _write_atomically(path: Path, data: bytes) -> None:
    """A bank file on disk is whole or absent: written next to its place, synced, then renamed
    over it, so a crash mid-write never leaves a truncated file someone could upload."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _import(ctx: click.Context, file: Path, flow: Any) -> Any:
    """Read a bank file (size-limited) and run ``flow(conn, actor, data, max_bytes=...)`` in one transaction."""
    settings = _settings(ctx)
    if file.stat().st_size > settings.max_upload_bytes:
        raise click.ClickException(f"{file} is larger than {settings.max_upload_bytes} bytes")
    data = file.read_bytes()

    async def fn(conn: Any, _: str) -> Any:
        async with conn.transaction():
            return await flow(conn, "system:cli", data, max_bytes=settings.max_upload_bytes)

    return _run(ctx, fn)


def register(cli: click.Group) -> None:
    cli.add_command(tokens)
    cli.add_command(ledger)
    cli.add_command(vouchers)
    cli.add_command(demo)
    cli.add_command(bench)
    cli.add_command(payouts)
    cli.add_command(statements)
    cli.add_command(audit)


@click.group()
def tokens() -> None:
    """API tokens."""


@tokens.command("create")
@click.option(
    "--organisation",
    "organisation_id",
    type=int,
    default=None,
    help="Organisation id; omitted with --role platform_admin, the platform organisation is created.",
)
@click.option(
    "--role",
    required=True,
    type=click.Choice(["platform_admin", "sponsor_finance", "sponsor_approver", "validator", "supplier", "auditor"]),
)
@click.option("--name", required=True, help="Who holds the token, e.g. 'Anna Bakker (finance)'.")
@click.pass_context
def tokens_create(ctx: click.Context, organisation_id: int | None, role: str, name: str) -> None:
    """Create a token and print its secret (shown once)."""
    from settlement.orgs import flows

    async def fn(conn: Any, _: str) -> str:
        async with conn.transaction():
            org = organisation_id
            if org is None:
                if role != "platform_admin":
                    raise click.UsageError("--organisation is required for this role")
                org = await conn.fetchval(
                    "SELECT id FROM organisations WHERE 'platform' = ANY(kinds) ORDER BY id LIMIT 1"
                )
                if org is None:
                    org = (await flows.create_organisation(conn, "system:cli", "Platform operations", ["platform"])).id
            t = await flows.issue_token(conn, "system:cli", org, role, name)
            return t.token

    secret = _run(ctx, fn)
    click.echo(secret)


@tokens.command("list")
@click.option("--organisation", "organisation_id", type=int, default=None, help="Only this organisation's tokens.")
@click.option("--active", is_flag=True, help="Only tokens that are not revoked.")
@click.pass_context
def tokens_list(ctx: click.Context, organisation_id: int | None, active: bool) -> None:
    """List tokens (id, organisation, role, holder, prefix, created, revoked); never a secret."""
    from settlement.orgs import flows

    async def fn(conn: Any, _: str) -> list[Any]:
        out: list[Any] = []
        after = 0
        while True:
            page = await flows.list_tokens(
                conn,
                organisation_id=organisation_id,
                revoked=False if active else None,
                after=after,
                limit=flows.MAX_TOKENS_PAGE,
            )
            out.extend(page)
            if len(page) < flows.MAX_TOKENS_PAGE:
                return out
            after = page[-1].id

    for t in _run(ctx, fn):
        revoked = t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "-"
        click.echo(
            f"{t.id}\torg {t.organisation_id}\t{t.role}\t{t.prefix}...\t"
            f"created {t.created_at.isoformat(timespec='seconds')}\trevoked {revoked}\t{t.name}"
        )


@tokens.command("revoke")
@click.argument("token_id", type=int)
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: int) -> None:
    """Revoke a token (audited as system:cli). Running API processes stop accepting it within 5 seconds."""
    from settlement.orgs import flows

    async def fn(conn: Any, _: str) -> Any:
        async with conn.transaction():
            return await flows.revoke_token(conn, "system:cli", token_id)

    t = _run(ctx, fn)
    click.echo(f"token {t.id} ({t.role}, {t.name}) revoked at {t.revoked_at.isoformat(timespec='seconds')}")


@click.group()
def ledger() -> None:
    """The double-entry ledger."""


@ledger.command("verify")
@click.option("--ledger", "ledger_id", type=int, default=None, help="One ledger; all when omitted.")
@click.pass_context
def ledger_verify(ctx: click.Context, ledger_id: int | None) -> None:
    """Recompute the hash chains; name the first broken link. Exit 1 when broken."""
    from ledger.verify import ledger_ids, verify_ledger

    async def fn(conn: Any, _: str) -> list[Any]:
        ids = [ledger_id] if ledger_id is not None else await ledger_ids(conn)
        return [await verify_ledger(conn, i) for i in ids]

    reports = _run(ctx, fn)
    bad = [r for r in reports if not r.ok]
    for r in reports:
        if r.ok:
            click.echo(f"ledger {r.ledger_id}: ok, {r.entries} entries")
        else:
            where = f" at entry seq {r.first_broken_seq} ({r.first_broken_entry})" if r.first_broken_seq else ""
            click.echo(f"ledger {r.ledger_id}: BROKEN{where}: {r.problem}")
    if bad:
        sys.exit(1)


@ledger.command("expire-holds")
@click.pass_context
def ledger_expire(ctx: click.Context) -> None:
    """Expire holds whose time has passed (reservations become expired)."""
    from settlement.jobs import expire_holds_once

    n = _run(ctx, lambda conn, _: expire_holds_once(conn))
    click.echo(f"expired {n} hold(s)")


@ledger.command("rollup")
@click.option("--ledger", "ledger_id", type=int, default=None, help="One ledger; all when omitted.")
@click.pass_context
def ledger_rollup(ctx: click.Context, ledger_id: int | None) -> None:
    """Roll finished days up into day totals (trial balances as of a date read them; also hourly in serve)."""
    from ledger.rollup import roll_up
    from ledger.verify import ledger_ids
    from settlement.chart import SUBLEDGERS

    async def fn(conn: Any, _: str) -> int:
        ids = [ledger_id] if ledger_id is not None else await ledger_ids(conn)
        return sum([await roll_up(conn, i, groups=SUBLEDGERS) for i in ids])

    click.echo(f"{_run(ctx, fn)} day total(s) added")


@click.group()
def vouchers() -> None:
    """Vouchers."""


@vouchers.command("expire")
@click.pass_context
def vouchers_expire(ctx: click.Context) -> None:
    """Close vouchers past their validity; unspent money returns to the funds."""
    from settlement.vouchers.flows import expire_vouchers

    async def fn(conn: Any, _: str) -> int:
        total = 0
        while True:
            async with conn.transaction():
                n = await expire_vouchers(conn)
            total += n
            if n:
                click.echo(f"  expired {total} so far", err=True)
            if n == 0:
                return total

    click.echo(f"expired {_run(ctx, fn)} voucher(s)")


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Seed the demo (idempotent) and print its tokens."""
    from settlement import demo as demo_mod

    settings = _settings(ctx)

    async def fn(conn: Any, _: str) -> dict[str, str] | None:
        exists = await conn.fetchval("SELECT 1 FROM organisations WHERE name = $1", demo_mod.DEMO_MARKER)
        if exists:
            return None
        async with conn.transaction():
            return await demo_mod.seed(conn)

    seeded = _run(ctx, fn)
    path = demo_mod.tokens_file(settings.data_dir)
    if seeded is not None:
        demo_mod.save_tokens(settings.data_dir, seeded)
        click.echo(f"demo data seeded; tokens saved to {path}")
    elif path.exists():
        click.echo(f"demo data already present; tokens in {path}")
    else:
        click.echo("demo data already present (its tokens file is gone; create new ones with `settlement tokens`)")
        return
    for name, secret in json.loads(path.read_text()).items():
        click.echo(f"  {name:20s} {secret}")


@click.group()
def bench() -> None:
    """Benchmarks that print figures (JSON with --json)."""


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result))
        return
    for k, v in result.items():
        click.echo(f"{k:28s} {v}")


@bench.command("ledger")
@click.option("--json", "as_json", is_flag=True)
@click.option("--batch-size", default=5_000, show_default=True)
@click.option("--batches", default=8, show_default=True)
@click.pass_context
def bench_ledger_cmd(ctx: click.Context, as_json: bool, batch_size: int, batches: int) -> None:
    """Batch engine (uniform, hot account), concurrent single calls, vs plain SQL."""
    from ledger.bench import bench_ledger

    result = _run(ctx, lambda conn, dsn: bench_ledger(dsn, batch_size=batch_size, batches=batches))
    _print(result, as_json)


@bench.command("api")
@click.option("--json", "as_json", is_flag=True)
@click.option("--clients", default=32, show_default=True)
@click.option("--per-client", default=40, show_default=True)
@click.option("--workers", default=1, show_default=True, help="uvicorn worker processes (serve defaults to 1 too).")
@click.option("--bulk", default=100_000, show_default=True)
@click.pass_context
def bench_api_cmd(ctx: click.Context, as_json: bool, clients: int, per_client: int, workers: int, bulk: int) -> None:
    """The real server: reserve then redeem under concurrent clients; bulk issue."""
    from settlement.bench_api import bench_api

    result = _run(
        ctx, lambda conn, dsn: bench_api(dsn, clients=clients, per_client=per_client, workers=workers, bulk=bulk)
    )
    _print(result, as_json)


@bench.command("sepa")
@click.option("--json", "as_json", is_flag=True)
@click.option("--payables", default=10_000, show_default=True)
@click.option("--suppliers", default=2_000, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the generated pain.001 files here.",
)
@click.pass_context
def bench_sepa_cmd(ctx: click.Context, as_json: bool, payables: int, suppliers: int, out_dir: Path | None) -> None:
    """A payout run: build + XSD validation of the files; run build and export through the database."""
    from settlement.bench_payouts import bench_payout_run

    settings = _settings(ctx)
    result = _run(
        ctx,
        lambda conn, dsn: bench_payout_run(
            dsn,
            payables=payables,
            suppliers=suppliers,
            max_per_file=settings.payout_max_payments_per_file,
            out_dir=out_dir,
        ),
    )
    _print(result, as_json)


@click.group()
def payouts() -> None:
    """Supplier payout runs: build, export, import bank status reports."""


def _echo_run(run: Any) -> None:
    click.echo(
        f"run {run.id} {run.code}: {run.state}, {run.payment_count} payment(s), {run.total} cents"
        + (f", execution date {run.execution_date}" if run.execution_date else "")
    )
    for s in run.skipped:
        click.echo(f"  skipped supplier {s.supplier_id} ({s.name}): {s.reason}: {s.detail}")
    for n in run.notes:
        click.echo(f"  note: {n.detail}")


@payouts.command("run")
@click.option("--debtor-account", "debtor_account_id", type=int, default=None, help="Build a draft run for it.")
@click.option("--instant", is_flag=True, help="SCT Inst where the bank profile allows it.")
@click.option("--due", is_flag=True, help="Instead: make the runs whose schedule is due now.")
@click.pass_context
def payouts_run(ctx: click.Context, debtor_account_id: int | None, instant: bool, due: bool) -> None:
    """Build a draft payout run (a sponsor approver then approves it)."""
    from settlement.payouts import flows

    if due == (debtor_account_id is not None):
        raise click.UsageError("give either --debtor-account ID or --due")

    async def fn(conn: Any, _: str) -> list[Any]:
        if due:
            return await flows.run_due_schedules(conn)
        async with conn.transaction():
            return [await flows.create_run(conn, "system:cli", debtor_account_id or 0, instant=instant)]

    runs = _run(ctx, fn)
    if not runs:
        click.echo("no schedule is due")
    for run in runs:
        _echo_run(run)


@payouts.command("export")
@click.argument("run_id", type=int)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the pain.001 file(s) here.",
)
@click.pass_context
def payouts_export(ctx: click.Context, run_id: int, out_dir: Path | None) -> None:
    """Export an approved run: pain.001 file(s) stored with sha256; payable -> in_transit."""
    from settlement.payouts import flows

    settings = _settings(ctx)

    async def fn(conn: Any, _: str) -> tuple[Any, list[tuple[str, bytes, str]]]:
        async with conn.transaction():
            state = await conn.fetchval("SELECT state FROM payout_runs WHERE id = $1", run_id)
            if state in (None, "draft", "approved", "cancelled"):  # the flow says what is wrong, if anything
                run = await flows.export(conn, "system:cli", run_id, max_per_file=settings.payout_max_payments_per_file)
            else:  # exported before: write the stored files again
                run = await flows.run_by_id(conn, run_id)
        files = [await flows.download(conn, "system:cli", run_id, f.id) for f in run.files]
        return run, files

    run, files = _run(ctx, fn)
    _echo_run(run)
    for msg_id, data, sha in files:
        line = f"  file {msg_id}: {len(data)} bytes, sha256 {sha}"
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"{msg_id}.xml"
            _write_atomically(path, data)
            line += f" -> {path}"
        click.echo(line)


@payouts.command("import-status")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def payouts_import_status(ctx: click.Context, file: Path) -> None:
    """Import a pain.002 status report (the same file twice changes nothing)."""
    from settlement.payouts import flows

    r = _import(ctx, file, flows.import_status_report)
    dup = " (already imported: nothing changed)" if r.duplicate else ""
    click.echo(
        f"report {r.msg_id} for file {r.original_msg_id}, run {r.run_code}: group {r.group_status}, "
        f"{r.accepted} accepted, {len(r.rejected)} rejected, {r.unchanged} unchanged; run is {r.run_state}{dup}"
    )
    for x in r.rejected:
        blocked = "; bank details blocked" if x.bank_details_blocked else ""
        click.echo(f"  rejected {x.end_to_end_id}: {x.amount} cents, reason {x.reason_code}{blocked}")
    for c in r.conflicts:
        click.echo(f"  conflict: {c}")


@payouts.command("simulate-bank")
@click.argument("run_id", type=int)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bank-sim"),
    show_default=True,
    help="Write the files here.",
)
@click.option("--reject", multiple=True, help="EndToEndId the bank rejects (repeatable).")
@click.option("--reason", default="AC04", show_default=True, help="Reason code of the rejections.")
@click.option(
    "--credit",
    type=click.IntRange(min=0),
    default=0,
    help="Also put incoming money without a reference on the statement (cents): it waits in the exceptions queue.",
)
@click.pass_context
def payouts_simulate_bank(
    ctx: click.Context, run_id: int, out_dir: Path, reject: tuple[str, ...], reason: str, credit: int
) -> None:
    """Write the pain.002 and camt.053 a bank would send for an exported run (to try the flow; imports nothing)."""
    from settlement.bank_sim import simulate_bank

    r = _run(ctx, lambda conn, _dsn: simulate_bank(conn, run_id, reject=reject, reason=reason, credit=credit))
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in [*r.status_reports, *([r.statement] if r.statement else [])]:
        _write_atomically(out_dir / name, data)
        click.echo(f"  wrote {out_dir / name}")
    if r.statement is None:
        click.echo("  no statement: the bank rejected every payment")
    else:
        click.echo(f"  the statement books {r.booked_cents} cents")
        if credit:
            click.echo(f"  and {credit} cents received without a reference (for the exceptions queue)")
    for e in r.rejected:
        click.echo(f"  rejected {e} ({reason})")
    click.echo("import them with: settlement payouts import-status FILE; settlement statements import FILE")


@click.group()
def statements() -> None:
    """Bank statements: import and reconcile."""


@statements.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def statements_import(ctx: click.Context, file: Path) -> None:
    """Import a camt.053/camt.054/MT940 file; match, book, and check the balance."""
    from settlement.statements import flows

    r = _import(ctx, file, flows.import_file)
    for s in r.statements:
        dup = " (already imported: nothing changed)" if s.duplicate else ""
        click.echo(
            f"statement {s.statement_id} of {s.account_iban} on {s.statement_date}: {s.entries} entries, "
            f"{s.entries_new} new, {s.matched} matched, {s.unmatched} unmatched{dup}"
        )
        if s.balance_difference is None:
            click.echo("  no closing balance to check")
        elif s.balance_difference == 0:
            click.echo(f"  ledger balance {s.ledger_balance} equals the closing balance")
        else:
            click.echo(
                f"  BALANCE DIFFERS: closing {s.closing_balance}, ledger {s.ledger_balance}, "
                f"difference {s.balance_difference} cents"
            )
    click.echo(
        f"{r.payments_booked} payment(s) booked, {r.payments_returned} returned, {r.top_ups} top-up(s)"
        + (f"; runs settled: {', '.join(r.runs_settled)}" if r.runs_settled else "")
    )


@click.group()
def audit() -> None:
    """Checks an accountant relies on."""


@audit.command("verify")
@click.option("--sponsor", "sponsor_id", type=int, default=None, help="One sponsor's books; all when omitted.")
@click.pass_context
def audit_verify(ctx: click.Context, sponsor_id: int | None) -> None:
    """Hash chains, balanced ledgers, fund overviews, bank accounts against their last statements.

    Exits 1 and names every failed check.
    """
    from settlement.books.verify import verify_books

    report = _run(ctx, lambda conn, _: verify_books(conn, sponsor_id=sponsor_id))
    for c in report.failures:
        click.echo(f"FAILED {c.name} {c.subject}: {c.detail}")
    click.echo(f"{report.checks} checks, {len(report.failures)} failed")
    if not report.ok:
        sys.exit(1)


@bench.command("reconcile")
@click.option("--json", "as_json", is_flag=True)
@click.option("--entries", default=100_000, show_default=True)
@click.option("--keep", is_flag=True, help="Keep the scratch database (its name is printed by the server log).")
@click.pass_context
def bench_reconcile_cmd(ctx: click.Context, as_json: bool, entries: int, keep: bool) -> None:
    """A camt.053 of 100,000 entries against 100,000 open payments: parse, match and book (scratch database)."""
    from settlement.bench_reconcile import bench_reconcile

    settings = _settings(ctx)
    result = _run(ctx, lambda conn, dsn: bench_reconcile(dsn, settings.migrations_dir, entries=entries, keep=keep))
    _print(result, as_json)


@bench.command("reports")
@click.option("--json", "as_json", is_flag=True)
@click.option("--transfers", default=10_000_000, show_default=True)
@click.option("--keep", is_flag=True, help="Keep the scratch database.")
@click.pass_context
def bench_reports_cmd(ctx: click.Context, as_json: bool, transfers: int, keep: bool) -> None:
    """Trial balance as of a date and a fund report over a year, on a ledger of 10 million transfers."""
    from settlement.bench_reports import bench_reports

    settings = _settings(ctx)
    result = _run(ctx, lambda conn, dsn: bench_reports(dsn, settings.migrations_dir, transfers=transfers, keep=keep))
    _print(result, as_json)
