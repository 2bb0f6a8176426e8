"""The command line: bad input gives one clear line and a non-zero exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg

from settlement.config import REPO_ROOT

SETTLEMENT = [sys.executable, "-m", "settlement"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    full_env.update(env or {})
    return subprocess.run(
        [*SETTLEMENT, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO_ROOT
    )


def test_unreachable_database_is_one_line() -> None:
    r = run("migrate", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "cannot connect to the database" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_malformed_database_url_is_one_line() -> None:
    r = run("migrate", env={"DATABASE_URL": "not a url at all"})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_setting_is_one_line() -> None:
    r = run("migrate", env={"SETTLEMENT_PORT": "eighty"})
    assert r.returncode != 0
    assert "SETTLEMENT_PORT" in r.stderr
    assert "Traceback" not in r.stderr


def test_port_in_use_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("serve", "--port", str(port), env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert r.returncode != 0
    assert "already in use" in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_data_directory_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = run("migrate", env={"SETTLEMENT_DATA_DIR": str(blocker / "sub")})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "data directory" in r.stderr


def test_sigterm_stops_serve_and_its_embedded_database() -> None:
    """systemd's stop (SIGTERM) ends `serve` cleanly and the embedded PostgreSQL with it."""
    import json
    import signal
    import time

    import httpx
    import psutil

    data_dir = REPO_ROOT / ".settlement" / "test-sigterm"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"SETTLEMENT_DATA_DIR": str(data_dir), "SETTLEMENT_LOG_LEVEL": "warning"})
    proc = subprocess.Popen(
        [*SETTLEMENT, "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        pgdata = data_dir / "pgdata"
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
    deadline = time.monotonic() + 30
    while psutil.pid_exists(postmaster) and psutil.Process(postmaster).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the embedded PostgreSQL is still running after serve stopped"
        time.sleep(0.2)


async def test_tokens_create_list_and_revoke(db_dsn: str) -> None:
    """The operator's way in and out without a working admin token: create, list, revoke."""
    env = {"DATABASE_URL": db_dsn}
    r = run("tokens", "create", "--role", "platform_admin", "--name", "Ops on call", env=env)
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert secret.startswith("stl_")

    r = run("tokens", "list", env=env)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "Ops on call" in ln]
    assert len(lines) == 1
    token_id = lines[0].split("\t")[0]
    assert secret[:10] + "..." in lines[0] and secret not in r.stdout
    assert "revoked -" in lines[0]

    r = run("tokens", "revoke", token_id, env=env)
    assert r.returncode == 0, r.stderr
    assert f"token {token_id} (platform_admin, Ops on call) revoked at" in r.stdout
    # a second revoke answers the same and records nothing new (checked below)
    assert run("tokens", "revoke", token_id, env=env).returncode == 0

    r = run("tokens", "list", "--active", env=env)
    assert r.returncode == 0 and "Ops on call" not in r.stdout
    r = run("tokens", "list", env=env)
    assert "Ops on call" in r.stdout and "revoked -" not in next(
        ln for ln in r.stdout.splitlines() if "Ops on call" in ln
    )

    r = run("tokens", "revoke", "999999", env=env)
    assert r.returncode != 0
    assert "token_not_found" in r.stderr and "Traceback" not in r.stderr

    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT actor FROM audit_log WHERE action = 'token.revoked' AND subject_id = $1", token_id
        )
    finally:
        await conn.close()
    assert [r["actor"] for r in rows] == ["system:cli"]


async def test_ledger_verify_of_a_ledger_that_does_not_exist_fails(db_dsn: str) -> None:
    """`--ledger 0` is a ledger id like any other (none has it): verifying it is no pass, nor a check of all."""
    r = run("ledger", "verify", "--ledger", "0", env={"DATABASE_URL": db_dsn})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ledger 0: BROKEN: ledger_not_found" in r.stdout


def test_a_malformed_database_url_does_not_echo_its_password() -> None:
    # an unencoded '#' in the password: asyncpg then reads part of it as the port and says
    # "invalid literal for int() with base 10: 'Pw9'"
    r = run("migrate", env={"DATABASE_URL": "postgresql://alice:Pw9#Secret@127.0.0.1:1/x"})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "cannot connect to the database" in r.stderr
    assert "Pw9" not in r.stderr and "Secret" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
