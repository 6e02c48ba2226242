"""DESIGN.md's layering: `api` imports `planner`, never torch and never `worker`."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import api.main, api.server, api.db, api.queue
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "worker"))
assert not bad, bad
"""


def test_api_imports_no_torch_and_no_worker():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
