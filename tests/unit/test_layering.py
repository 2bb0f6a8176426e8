"""ledger/, sepa/ and reconciliation/ never import settlement/ or litestar."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from settlement.config import REPO_ROOT


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(lint_imports), "--no-cache"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout
