"""Faults over real processes, no mocks: `ltd serve` on a temporary SQLite file and `ltd worker`
subprocesses training small CPU jobs, while a test kills a worker, lets short leases run,
revokes the worker token, feeds the API a NaN, or restarts the API under a running job
(DESIGN.md, "Jobs and workers": a job ends once, under the lease that is current)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import bare_validation_result, tiny_plan_request
from tests.servers import LtdServer, free_port, ltd_env

pytestmark = pytest.mark.slow

TOKEN = "faults-worker-token"
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # each child trains on one core
# A learning rate that never decays from 10: the baseline's evaluation loss becomes NaN.
DIVERGING_LR = {"peak_lr": 10, "min_lr": 10, "decay_tokens": 100_000}
# A result the API accepts (ValidationResult's required fields), for the raw reports below.
RESULT = bare_validation_result(torch_version="test", flops_saving=0.25, seconds=1.0)


class Procs:
    """The children a test starts, each logging to a file under `root`: `ltd serve` through the
    `live_server` fixture (which stops them), workers here; `close()` kills the workers still
    running."""

    def __init__(self, root: Path, live_server: Callable[..., LtdServer]) -> None:
        self.root = root
        self.live_server = live_server
        self.logs: dict[subprocess.Popen[bytes], Path] = {}
        self.workers: list[subprocess.Popen[bytes]] = []

    def serve(self, port: int, **options: Any) -> LtdServer:
        server = self.live_server(port=port, cwd=self.root, **options)
        self.logs[server.proc] = server.log
        return server

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.root / f"{name}-{len(self.logs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ltd", *args],
                cwd=self.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.logs[proc] = log
        self.workers.append(proc)
        return proc

    def tail(self, proc: subprocess.Popen[bytes], chars: int = 3000) -> str:
        return self.logs[proc].read_text(errors="replace")[-chars:]

    def wait_for(self, what: str, check: Callable[[], Any], timeout_s: float) -> Any:
        """Poll `check()` until it returns something truthy; else fail with every child's log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if value := check():
                return value
            time.sleep(0.2)
        logs = "\n".join(f"--- {path.name}:\n{self.tail(proc)}" for proc, path in self.logs.items())
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{logs}")

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def procs(tmp_path: Path, live_server: Callable[..., LtdServer]) -> Iterator[Procs]:
    children = Procs(tmp_path, live_server)
    try:
        yield children
    finally:
        children.close()


def start_api(procs: Procs, port: int, *, token: str = TOKEN, lease_s: float = 10) -> LtdServer:
    """`ltd serve` on `port` over the test's SQLite file; returns once /healthz answers."""
    return procs.serve(
        port,
        database_url=f"sqlite:///{procs.root / 'ltd.db'}",
        worker_token=token,
        env={"LTD_LEASE_SECONDS": str(lease_s), **ONE_THREAD},
    )


def start_worker(
    procs: Procs, port: int, worker_id: str, *, token: str = TOKEN
) -> subprocess.Popen[bytes]:
    args = ["worker", "--api", url_of(port), "--worker-id", worker_id, "--poll-interval", "0.3"]
    return procs.start(worker_id, args, ltd_env(ONE_THREAD, worker_token=token))


def sigterm(proc: subprocess.Popen[bytes], timeout_s: float = 15) -> tuple[int, float]:
    """SIGTERM `proc` and wait for it: its exit status and the seconds it took."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout_s), time.monotonic() - started


def url_of(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def submit(http: httpx.Client, train_steps: int, **request: Any) -> str:
    """A quality job on the CPU, the project's own blocks, 2 seed pairs of `train_steps // 2`
    steps a run (`train_steps` a run's pair, as a convergence job of earlier versions); its id."""
    settings = {
        "mode": "quality", "train_steps": max(1, train_steps // 2), "seeds": 2,
        "eval_points": 1, "eval_batches": 1, "warmup_steps": 0, "measure_steps": 1,
        "device": "cpu", "implementation": "native",
    }  # fmt: skip
    body = {"plan_request": tiny_plan_request(**request), "settings": settings}
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def get_job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def in_state(http: httpx.Client, job_id: str, *states: str) -> Callable[[], Any]:
    """A `Procs.wait_for` check: the job once it is in one of `states`."""

    def check() -> dict[str, Any] | None:
        job = get_job(http, job_id)
        return job if job["state"] in states else None

    return check


def running_with_progress(http: httpx.Client, job_id: str) -> Callable[[], Any]:
    def check() -> dict[str, Any] | None:
        job = get_job(http, job_id)
        return job if job["state"] == "running" and job["progress"] > 0 else None

    return check


def db_rows(root: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows straight from the service's SQLite file, read-only."""
    with closing(sqlite3.connect(f"file:{root / 'ltd.db'}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchall()


def worker_post(http: httpx.Client, path: str, body: dict[str, Any] | str) -> httpx.Response:
    """A worker-protocol POST with the worker token; `body` as text is sent verbatim."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    content = body if isinstance(body, str) else json.dumps(body)
    return http.post(f"/v1/worker{path}", content=content, headers=headers)


def test_killed_worker_job_is_finished_once_by_another(procs: Procs) -> None:
    port = free_port()
    start_api(procs, port, lease_s=6)
    with httpx.Client(base_url=url_of(port), timeout=30) as http:
        job_id = submit(http, train_steps=400)  # ~30 s a job on one core
        first = start_worker(procs, port, "w1")
        procs.wait_for("w1 to report progress", running_with_progress(http, job_id), 45)
        ((old_lease,),) = db_rows(procs.root, "SELECT lease_id FROM jobs WHERE id = ?", job_id)
        first.kill()  # kill -9: no release, no report; the lease has to run out
        assert first.wait(timeout=10) == -signal.SIGKILL
        start_worker(procs, port, "w2")
        job = procs.wait_for(
            "w2 to finish the job", in_state(http, job_id, "succeeded", "failed"), 55
        )
        assert job["state"] == "succeeded", job
        assert job["attempts"] == 2 and job["worker_id"] == "w2" and job["error"] is None
        assert job["result"]["quality"] is not None
        # The presumed-dead worker's lease cannot report over the finished job.
        stale = worker_post(
            http, f"/jobs/{job_id}/complete", {"lease_id": old_lease, "result": job["result"]}
        )
        assert stale.status_code == 409, stale.text
        assert get_job(http, job_id) == job
        assert db_rows(procs.root, "SELECT id FROM jobs WHERE result_json IS NOT NULL") == [
            (job_id,)
        ]


def test_heartbeats_hold_a_lease_shorter_than_the_job(procs: Procs) -> None:
    lease_s = 5
    port = free_port()
    start_api(procs, port, lease_s=lease_s)
    with httpx.Client(base_url=url_of(port), timeout=30) as http:
        # Four runs of 200 steps, ~30 s on one core: past the 5 s lease, inside the wait.
        job_id = submit(http, train_steps=400)
        worker = start_worker(procs, port, "w1")
        job = procs.wait_for("the job to end", in_state(http, job_id, "succeeded", "failed"), 58)
        assert job["state"] == "succeeded", job
        assert job["attempts"] == 1 and job["worker_id"] == "w1"
        held = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(
            job["started_at"]
        )
        assert held.total_seconds() > lease_s  # the lease was renewed, not merely long enough
        assert worker.poll() is None


def test_revoked_token_stops_the_run_within_a_heartbeat(procs: Procs) -> None:
    lease_s = 6
    port = free_port()
    api = start_api(procs, port, token="token-a", lease_s=lease_s)
    with httpx.Client(base_url=url_of(port), timeout=30) as http:
        job_id = submit(http, train_steps=20_000)  # minutes: it must never finish here
        worker = start_worker(procs, port, "w1", token="token-a")
        procs.wait_for("the worker to report progress", running_with_progress(http, job_id), 45)
        status, _ = api.stop()
        assert status == 0, api.tail()
        start_api(procs, port, token="token-b", lease_s=lease_s)  # the worker's token is revoked
        revoked = time.monotonic()
        # Refused heartbeat -> the run stops at its next step -> the next claim is refused too:
        # the worker exits with an error, having reported nothing.
        status = procs.wait_for(
            "the worker to stop",
            lambda: worker.poll() is not None and (worker.returncode,),
            lease_s / 3 + 8,
        )
        took = time.monotonic() - revoked
        log = procs.tail(worker)
        assert took < lease_s / 3 + 5, (took, log)
        assert status != (0,) and "heartbeat refused" in log, log
        job = get_job(http, job_id)
        assert job["state"] in ("running", "queued") and job["result"] is None, job
        # Its lease runs out (if it has not already): queued again, not succeeded.
        job = procs.wait_for("the lease to expire", in_state(http, job_id, "queued"), lease_s + 5)
        assert job["attempts"] == 1 and job["result"] is None, job


def test_nan_results_fail_cleanly(procs: Procs) -> None:
    port = free_port()
    start_api(procs, port)
    with httpx.Client(base_url=url_of(port), timeout=30) as http:
        # A NaN sent under a valid lease: refused, and the job stays running and readable.
        job_id = submit(http, train_steps=50)
        claim = worker_post(http, "/claim", {"worker_id": "by-hand"})
        assert claim.status_code == 200 and claim.json()["job"]["id"] == job_id, claim.text
        lease = claim.json()["lease_id"]
        body = json.dumps({"lease_id": lease, "result": {**RESULT, "flops_saving": float("nan")}})
        assert "NaN" in body
        refused = worker_post(http, f"/jobs/{job_id}/complete", body)
        assert refused.status_code == 422, refused.text
        assert "flops_saving" in refused.text
        job = get_job(http, job_id)
        assert job["state"] == "running" and job["result"] is None, job
        finite = worker_post(
            http, f"/jobs/{job_id}/complete", {"lease_id": lease, "result": RESULT}
        )
        assert finite.status_code == 200 and finite.json()["state"] == "succeeded", finite.text

        # A run that diverges fails its job (not retried); the worker goes on to the next job.
        diverging = submit(http, train_steps=300, lr=DIVERGING_LR)
        normal = submit(http, train_steps=50)
        worker = start_worker(procs, port, "w1")
        done = procs.wait_for(
            "the normal job to end", in_state(http, normal, "succeeded", "failed"), 50
        )
        assert done["state"] == "succeeded" and done["worker_id"] == "w1", done
        failed = get_job(http, diverging)
        assert failed["state"] == "failed" and failed["attempts"] == 1, failed
        assert "diverged" in failed["error"] and "nan" in failed["error"].lower(), failed
        assert worker.poll() is None, procs.tail(worker)
        status, _ = sigterm(worker)
        assert status == 0, procs.tail(worker)


def listings(http: httpx.Client) -> tuple[Any, Any]:
    plans, jobs = http.get("/v1/plans?limit=100"), http.get("/v1/jobs?limit=100")
    assert plans.status_code == jobs.status_code == 200, (plans.text, jobs.text)
    return plans.json(), jobs.json()


def test_api_restart_loses_nothing(procs: Procs) -> None:
    lease_s = 15  # longer than a restart: the running job's lease outlives the outage
    port = free_port()
    api = start_api(procs, port, lease_s=lease_s)
    with httpx.Client(base_url=url_of(port), timeout=30) as http:
        for steps in (100, 200, 300):
            created = http.post("/v1/plans", json=tiny_plan_request(train_steps=steps))
            assert created.status_code == 201, created.text
        job_id = submit(http, train_steps=400)  # ~30 s: it outlasts the second restart below
        others = [submit(http, train_steps=50) for _ in range(2)]
        assert http.post(f"/v1/jobs/{others[0]}/cancel").status_code == 200
        before = listings(http)
        assert before[0]["count"] >= 3 and before[1]["count"] == 3

        status, took = api.stop()
        assert status == 0 and took < 10, (status, took, api.tail())
        api = start_api(procs, port, lease_s=lease_s)
        assert listings(http) == before

        # Restart again under a running job, the API away longer than a heartbeat interval.
        assert http.post(f"/v1/jobs/{others[1]}/cancel").status_code == 200
        worker = start_worker(procs, port, "w1")
        procs.wait_for("the worker's claim", in_state(http, job_id, "running"), 30)
        status, took = api.stop()
        assert status == 0 and took < 10, (status, took, api.tail())
        time.sleep(lease_s / 3 + 0.5)
        start_api(procs, port, lease_s=lease_s)
        job = procs.wait_for("the job to end", in_state(http, job_id, "succeeded", "failed"), 45)
        assert job["state"] == "succeeded" and job["attempts"] == 1, job
        assert worker.poll() is None and "heartbeat failed" in procs.tail(worker)
        plans, jobs = listings(http)
        assert [p["id"] for p in plans["data"]] == [p["id"] for p in before[0]["data"]]
        assert {j["id"]: j["state"] for j in jobs["data"]} == {
            job_id: "succeeded",
            others[0]: "cancelled",
            others[1]: "cancelled",
        }


def test_api_exits_0_on_sigterm(procs: Procs) -> None:
    api = start_api(procs, free_port())
    status, took = api.stop()
    assert took < 10
    assert status == 0


def test_a_worker_with_a_wrong_token_exits_2_naming_the_flag(procs: Procs) -> None:
    port = free_port()
    start_api(procs, port)
    worker = start_worker(procs, port, "w-wrong", token="not-the-token")
    assert worker.wait(timeout=60) == 2
    assert "--token: refused" in procs.tail(worker), procs.tail(worker)
