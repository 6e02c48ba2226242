"""The product end to end on loopback, as a newcomer runs it: `ltd serve --with-worker` on its
embedded defaults (a SQLite file in the working directory, a local worker), then the CLI against
it: a plan, a check that passes and one that fails, a validation job on the CPU followed to
success, and the report page with the measured figures."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from present.text import pct
from tests.factories import tiny_model
from tests.servers import LtdServer

pytestmark = pytest.mark.slow

TINY = [
    "--model",
    "MODEL_FILE",
    "--train-batch-size",
    "16",
    "--train-steps",
    "2000",
    "--gpu",
    "h100-sxm",
    "--num-gpus",
    "8",
    "--price-per-gpu-hour",
    "2.5",
]
# A model config file of the newcomer's own: the tiny model, larger.
SHAPE = {"name": "tiny-gpt", **tiny_model(num_layers=6, hidden_size=128, seq_len=256)}


@pytest.fixture
def service(tmp_path: Path, live_server: Callable[..., LtdServer]) -> tuple[str, Path]:
    """`ltd serve --with-worker` on the embedded defaults: nothing configured."""
    server = live_server("--with-worker", cwd=tmp_path)
    assert (tmp_path / "ltd.db").exists()  # the embedded default: a SQLite file right here
    return server.url, tmp_path


def ltd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ltd", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_newcomer_end_to_end(service: tuple[str, Path]) -> None:
    url, cwd = service
    (cwd / "tiny.json").write_text(json.dumps(SHAPE))
    flags = [a if a != "MODEL_FILE" else str(cwd / "tiny.json") for a in TINY]

    plan = ltd("plan", *flags, "--format", "json", cwd=cwd)
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    gpu_hours = doc["random_ltd"]["gpu_hours"]

    ok = ltd(
        "check",
        *flags,
        "--server",
        url,
        "--max-gpu-hours",
        str(gpu_hours * 2),
        "--format",
        "markdown",
        cwd=cwd,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASSED" in ok.stdout
    bad = ltd(
        "check",
        *flags,
        "--server",
        url,
        "--max-gpu-hours",
        str(gpu_hours / 2),
        "--format",
        "json",
        cwd=cwd,
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert json.loads(bad.stdout)["violations"][0]["limit"] == "max_gpu_hours"

    submitted = ltd(
        "submit", *flags, "--server", url, "--max-minutes", "1", "--format", "json", cwd=cwd
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    outcome = json.loads(submitted.stdout)
    job, served_plan = outcome["job"], outcome["plan"]
    assert job["state"] == "succeeded" and job["progress"] == 1.0
    assert served_plan["id"] == doc["id"]  # the server planned the same run
    result = job["result"]
    assert result["device"] == "cpu" and len(result["step_times"]) >= 2
    assert served_plan["calibrated"]["job_id"] == job["id"]

    page = httpx.get(f"{url}/v1/plans/{doc['id']}/report", timeout=60).text
    assert f"calibrated by job {job['id']}" in page
    assert pct(result["measured_wall_clock_saving"]) in page
    assert f"{result['step_times'][0]['step_time_ms']:,.2f}" in page
