"""The command line: bad input gives one clear line and a non-zero exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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
