"""Writes old_rows.json: rows as earlier versions of this service stored them, made by those
versions' own code (taken from git), for tests/api/test_old_rows.py.

    .venv/bin/python tests/api/data/make_old_rows.py        # from the repository root

- FIRST_RELEASE (c437d56, the first release): plans without a `projection` section, one of them
  calibrated; jobs in every state, their settings in that version's modes ("both",
  "convergence") and bounds (a dataset path of 300 characters, a reserved length of 0), results
  with a `convergence` section, a long traceback, a running job's lease and progress.
- PROFILES (1a9e6d8, the first with device profiles): profiles keyed by device, dtype and torch
  version, one replaced by a newer measurement, one with rates in FLOP/s where TFLOP/s belong
  (today: refused, over 1e6), one posted without the optional fields; and the plan of a request
  that names a profile by that old id.

Each version runs in a subprocess over a SQLite file of its own, through its own app (a test
client, its own worker protocol), so the rows are byte for byte what it stored.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OUT = Path(__file__).with_name("old_rows.json")
FIRST_RELEASE = "c437d56"
PROFILES = "1a9e6d8"
PACKAGES = ("api", "planner", "ltd", "present", "worker")  # what those versions' api imports

# Runs inside the old version (its own packages first on sys.path), against DB (a SQLite URL).
FIRST_RELEASE_SCRIPT = r"""
import sys, warnings
warnings.simplefilter("ignore")
from datetime import UTC, datetime, timedelta
from fastapi.testclient import TestClient
from api.main import create_app
from api.settings import Settings

now = [datetime(2026, 11, 27, 17, 0, tzinfo=UTC)]
def clock():
    now[0] += timedelta(seconds=1)
    return now[0]

app = create_app(Settings(database_url=sys.argv[1], worker_token="w", lease_seconds=3600),
                 clock=clock)
W = {"Authorization": "Bearer w"}
TINY = {"arch": "gpt", "num_layers": 4, "hidden_size": 32, "num_heads": 4, "vocab_size": 256,
        "seq_len": 64}
with TestClient(app) as c:
    def job(settings, steps=100):
        body = {"plan_request": {"model": TINY, "train_batch_size": 4, "train_steps": steps},
                "settings": settings}
        r = c.post("/v1/jobs", json=body)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def claim():
        r = c.post("/v1/worker/claim", json={"worker_id": "gpu-box-7.internal"}, headers=W)
        assert r.status_code == 200, r.text
        return r.json()

    result = {
        "device": "cpu", "gpu_name": None, "torch_version": "2.5.1", "dtype": "float32",
        "num_layers": 4, "num_ltd_layers": 2, "micro_batch_size": 1, "seq_len": 64,
        "scaled_down": [], "step_times": [
            {"reserved_length": 16, "step_time_ms": 9.5, "tokens_per_s": 6700.0,
             "model_flops_per_s": 1.1e9},
            {"reserved_length": 64, "step_time_ms": 12.0, "tokens_per_s": 5300.0,
             "model_flops_per_s": 1.2e9}],
        "step_time_fit": [8.7, 0.05, 0.0], "measured_wall_clock_saving": 0.12,
        "flops_saving": 0.19, "mfu": None, "peak_memory_bytes": None,
        "gather_scatter_fraction": 0.013, "seconds": 41.0,
    }
    # A plain plan, a throughput job that succeeded (and calibrated its plan), a "both" job that
    # succeeded with a convergence section, a "convergence" job that failed with a traceback, a
    # job with that version's wider bounds (running), one cancelled, one queued. (A NaN loss it
    # could not store: reading the job back inside the same transaction failed, so the
    # completion rolled back.)
    c.post("/v1/plans", json={"model": "gpt2", "train_batch_size": 8, "train_steps": 100})
    done = job({"mode": "throughput"})
    lease = claim()["lease_id"]
    r = c.post(f"/v1/worker/jobs/{done}/complete", json={"lease_id": lease, "result": result},
               headers=W)
    assert r.status_code == 200, r.text
    both = job({"mode": "both", "train_steps": 30}, steps=200)
    lease = claim()["lease_id"]
    trained = {**result, "convergence": {"layer_tokens": 4096, "baseline_steps": 30,
               "random_ltd_steps": 36, "baseline_eval_loss": 5.52,
               "random_ltd_eval_loss": 5.41}}
    r = c.post(f"/v1/worker/jobs/{both}/complete", json={"lease_id": lease, "result": trained},
               headers=W)
    assert r.status_code == 200, r.text
    failed = job({"mode": "convergence"}, steps=300)
    lease = claim()["lease_id"]
    trace = "Traceback (most recent call last):\n" + "  File \"/srv/ltd/worker.py\"\n" * 300
    r = c.post(f"/v1/worker/jobs/{failed}/fail",
               json={"lease_id": lease, "error": trace + "RuntimeError: CUDA out of memory"},
               headers=W)
    assert r.status_code == 200, r.text
    wide = job({"dataset": "/mnt/corpora/" + "c" * 287 + ".txt",
                "reserved_lengths": [0, 64], "measure_steps": 2}, steps=400)
    cancelled = job({}, steps=500)
    assert c.post(f"/v1/jobs/{cancelled}/cancel").status_code == 200
    running = job({"mode": "throughput", "seed": 7}, steps=600)
    claimed = claim()
    assert claimed["job"]["id"] == wide, claimed  # the oldest queued: claimed, then running
    r = c.post(f"/v1/worker/jobs/{wide}/heartbeat",
               json={"lease_id": claimed["lease_id"], "progress": 0.4,
                     "message": "timing r=64 on gpu-box-7.internal"}, headers=W)
    assert r.status_code == 200, r.text
print("ok")
"""

PROFILES_SCRIPT = r"""
import sys, warnings
warnings.simplefilter("ignore")
from datetime import UTC, datetime, timedelta
from fastapi.testclient import TestClient
from api.main import create_app
from api.settings import Settings

now = [datetime(2026, 11, 30, 5, 0, tzinfo=UTC)]
def clock():
    now[0] += timedelta(seconds=1)
    return now[0]

def measured(**changes):
    profile = {
        "device_name": "cpu", "dtype": "float32", "torch_version": "2.5.1",
        "source": "measured by ltd profile on cpu in 9 s",
        "matmul_rows": [16, 4096], "matmul_widths": [64, 2048],
        "matmul_tflops": [[0.03, 0.06], [0.2, 0.22]],
        "attention_lengths": [32, 2048], "attention_tflops": [0.05, 0.25],
        "memory_gbps": 45.0, "loss_gbps": 9.0, "launch_overhead_us": 5.0,
        "async_launch": False, "optimizer_ns_per_param": 1.3, "optimizer_us_per_tensor": 4.0,
    }
    return {k: v for k, v in {**profile, **changes}.items() if v is not ...}

app = create_app(Settings(database_url=sys.argv[1]), clock=clock)
with TestClient(app) as c:
    first = c.post("/v1/device-profiles", json=measured())
    assert first.status_code == 201, first.text
    # The same device measured again: that version replaced the numbers under the same id.
    again = c.post("/v1/device-profiles", json=measured(launch_overhead_us=6.5))
    assert again.json()["id"] == first.json()["id"], again.text
    # Rates in FLOP/s where TFLOP/s belong (today: at most 1e6 TFLOP/s), and a profile without
    # the optional fields.
    units = c.post("/v1/device-profiles", json=measured(
        device_name="NVIDIA A10G", dtype="bfloat16", torch_version="2.4.0",
        attention_tflops=[2.1e12, 3.1e13]))
    assert units.status_code == 201, units.text
    bare = c.post("/v1/device-profiles", json=measured(
        device_name="NVIDIA L4", dtype="bfloat16", torch_version="2.4.0", loss_gbps=...,
        optimizer_ns_per_param=..., optimizer_us_per_tensor=...))
    assert bare.status_code == 201, bare.text
    # A plan that names the first profile by its (old) id.
    plan = c.post("/v1/plans", json={
        "model": "gpt2", "train_batch_size": 8, "train_steps": 100,
        "hardware": {"num_gpus": 1, "device_profile": first.json()["id"]}})
    assert plan.status_code == 201, plan.text
print("ok")
"""


def rows(db: Path, table: str) -> list[dict[str, object]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]


def run_version(commit: str, script: str, workdir: Path) -> Path:
    """`script` run by the code of `commit` over a fresh SQLite file; the file."""
    source = workdir / commit
    source.mkdir()
    tree = subprocess.run(
        ["git", "ls-tree", "--name-only", commit], cwd=ROOT, capture_output=True, check=True
    )
    present = [p for p in PACKAGES if p in tree.stdout.decode().split()]
    archive = subprocess.run(
        ["git", "archive", commit, *present], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    db = workdir / f"{commit}.db"
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(source)!r})\n{script}",
         f"sqlite:///{db}"],
        cwd=workdir, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
    return db


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = run_version(FIRST_RELEASE, FIRST_RELEASE_SCRIPT, Path(tmp))
        profiles = run_version(PROFILES, PROFILES_SCRIPT, Path(tmp))
        document = {
            "written_by": {"first_release": FIRST_RELEASE, "device_profiles": PROFILES},
            "first_release": {"plans": rows(first, "plans"), "jobs": rows(first, "jobs")},
            "device_profiles": {
                "plans": rows(profiles, "plans"),
                "device_profiles": rows(profiles, "device_profiles"),
            },
        }
    OUT.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
