"""DESIGN.md's layering: `worker` imports `planner` and torch, never `api` or a database."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import worker.validate, worker.loop, worker.distributed, client.worker
bad = sorted(m for m in sys.modules
             if m.split(".")[0] in ("api", "sqlalchemy", "fastapi", "alembic", "psycopg"))
print(",".join(bad))
"""


def test_worker_imports_no_api_and_no_database() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""


def test_loop_loads_torch_only_when_it_runs_a_job() -> None:
    code = "import sys, worker.loop; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
