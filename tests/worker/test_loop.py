"""The worker loop against a small in-process fake of the API's worker protocol (answers built
from the wire models, as the API's are)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from client.worker import WorkerAuthError
from planner import plan
from planner.validation import ValidationResult, ValidationSettings
from tests.factories import tiny_plan_request, validation_result
from tests.servers import free_port
from wire.jobs import JobPublic, JobState
from wire.limits import ERROR_CHARS
from wire.worker import ClaimPublic, HeartbeatPublic
from worker.loop import run_worker

TOKEN = "secret-token"
PLAN = plan(tiny_plan_request(train_steps=100))
RESULT = ValidationResult.model_validate(
    validation_result(
        torch_version="x",
        micro_batch_size=1,
        seq_len=64,
        scaled_down=[],
        step_times=[],
        step_time_fit=[1.0, 0.0, 0.0],
        measured_wall_clock_saving=0.1,
        flops_saving=0.2,
        seconds=1.0,
    )
)


def job_document(job_id: str, settings: dict, state: JobState = JobState.RUNNING) -> JobPublic:
    now = datetime.now(UTC)
    return JobPublic(
        id=job_id,
        plan_id=PLAN.id,
        state=state,
        attempts=1,
        max_attempts=3,
        progress=0.0,
        progress_message=None,
        settings=ValidationSettings.model_validate(settings),
        result=None,
        error=None,
        worker_id="w",
        lease_expires_at=None,
        created_at=now,
        started_at=now,
        finished_at=None,
        updated_at=now,
    )


class FakeApi:
    """Queue of job ids; records every request; behaviours switchable per test."""

    def __init__(self, jobs: list[str]) -> None:
        self.queue = list(jobs)
        self.requests: list[tuple[str, dict]] = []
        self.cancel = False
        self.lease_conflict = False
        self.revoked = False  # the token is revoked: every later request gets 401
        self.lease_s: float | None = None  # lease granted at claim (None: far in the future)
        self.settings: dict = {"mode": "throughput"}
        self.lock = threading.Lock()

    def handle(self, path: str, body: dict, auth: str | None) -> tuple[int, dict | None]:
        with self.lock:
            self.requests.append((path, body))
            if auth != f"Bearer {TOKEN}" or self.revoked:
                return 401, {"detail": "bad token"}
            if path == "/v1/worker/claim":
                if not self.queue:
                    return 204, None
                job_id = self.queue.pop(0)
                expires = (
                    datetime(2030, 1, 1, tzinfo=UTC)
                    if self.lease_s is None
                    else datetime.now(UTC) + timedelta(seconds=self.lease_s)
                )
                claim = ClaimPublic(
                    job=job_document(job_id, self.settings),
                    plan=PLAN,
                    lease_id="L-" + job_id,
                    lease_expires_at=expires,
                )
                return 200, claim.model_dump(mode="json")
            if self.lease_conflict:
                return 409, {"detail": "lease not current"}
            if path.endswith("/heartbeat"):
                beat = HeartbeatPublic(cancelled=self.cancel, lease_expires_at=None)
                return 200, beat.model_dump(mode="json")
            return 200, job_document(path.split("/")[4], self.settings).model_dump(mode="json")

    def paths(self, suffix: str) -> list[dict]:
        with self.lock:
            return [b for p, b in self.requests if p.endswith(suffix)]


def serve(api: FakeApi, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            status, payload = api.handle(self.path, body, self.headers.get("Authorization"))
            self.send_response(status)
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    # Polled every 50 ms for `shutdown()` (http.server's default: 0.5 s, at each teardown).
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    fake = FakeApi(["j1"])
    server = serve(fake)
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def slow_run(steps: int = 20, delay_s: float = 0.02):
    def run(plan, settings, progress):
        assert plan.id == PLAN.id and settings.mode == "throughput"
        for i in range(steps):
            time.sleep(delay_s)
            progress((i + 1) / steps, f"step {i + 1}")
        return RESULT

    return run


def test_job_runs_with_heartbeats_and_completes(api) -> None:
    fake, url = api
    run_worker(url, TOKEN, worker_id="w1", once=True, heartbeat_interval_s=0.05, run=slow_run())
    assert fake.paths("/claim") == [{"worker_id": "w1"}]
    beats = fake.paths("/heartbeat")
    assert beats and all(b["lease_id"] == "L-j1" for b in beats)
    progress = [b["progress"] for b in beats]
    assert progress == sorted(progress) and 0 < progress[-1] <= 1
    (done,) = fake.paths("/complete")
    assert done["lease_id"] == "L-j1"
    assert ValidationResult.model_validate(done["result"]) == RESULT


def test_cancelled_job_stops_and_reports_nothing(api) -> None:
    fake, url = api
    fake.cancel = True
    started = time.perf_counter()
    run_worker(url, TOKEN, once=True, heartbeat_interval_s=0.05, run=slow_run(200))
    assert time.perf_counter() - started < 3  # stopped long before its 4 s of steps
    assert not fake.paths("/complete") and not fake.paths("/fail")


def test_lost_lease_abandons_the_job(api) -> None:
    fake, url = api
    fake.lease_conflict = True
    run_worker(url, TOKEN, once=True, heartbeat_interval_s=0.05, run=slow_run(200))
    assert not fake.paths("/complete") and not fake.paths("/release")


def test_failure_is_reported_with_retryable_flag(api) -> None:
    fake, url = api

    def broken(plan, settings, progress):
        raise RuntimeError("CUDA out of memory")

    run_worker(url, TOKEN, once=True, heartbeat_interval_s=0.05, run=broken)
    (fail,) = fake.paths("/fail")
    assert fail["retryable"] is True and "CUDA out of memory" in fail["error"]


def test_a_long_failure_is_kept_to_the_limit_the_api_keeps(api) -> None:
    fake, url = api

    def broken(plan, settings, progress):
        raise RuntimeError("x" * (2 * ERROR_CHARS))

    run_worker(url, TOKEN, once=True, run=broken)
    (fail,) = fake.paths("/fail")
    assert len(fail["error"]) == ERROR_CHARS and fail["error"].startswith("Traceback")


def test_bad_input_is_not_retryable(api) -> None:
    fake, url = api

    def bad(plan, settings, progress):
        raise ValueError("dataset is not a file")

    run_worker(url, TOKEN, once=True, run=bad)
    assert fake.paths("/fail")[0]["retryable"] is False


def test_stop_releases_the_running_job(api) -> None:
    fake, url = api
    stop = threading.Event()

    def run(plan, settings, progress):
        progress(0.1, "started")
        stop.set()  # as the SIGTERM handler does
        progress(0.2, "next")
        raise AssertionError("the run should have been interrupted")

    run_worker(url, TOKEN, heartbeat_interval_s=0.05, run=run, stop=stop)
    assert fake.paths("/release") == [{"lease_id": "L-j1"}]
    assert not fake.paths("/complete")


def test_reconnects_with_backoff_when_api_is_down() -> None:
    port = free_port()
    fake = FakeApi(["j1"])
    servers: list[ThreadingHTTPServer] = []
    threading.Timer(1.2, lambda: servers.append(serve(fake, port))).start()
    started = time.perf_counter()
    run_worker(
        f"http://127.0.0.1:{port}", TOKEN, once=True, heartbeat_interval_s=0.05, run=slow_run(2)
    )
    assert time.perf_counter() - started >= 1.2
    assert len(fake.paths("/complete")) == 1
    servers[0].shutdown()
    servers[0].server_close()


def test_bad_token_raises(api) -> None:
    _, url = api
    with pytest.raises(WorkerAuthError):
        run_worker(url, "wrong", once=True, run=slow_run())


def test_a_revoked_token_stops_the_run_within_one_heartbeat(api) -> None:
    fake, url = api
    revoke_at = threading.Event()

    def run(plan, settings, progress):
        for i in range(400):
            if i == 5:
                fake.revoked = True
                revoke_at.set()
            time.sleep(0.01)
            progress((i + 1) / 400, f"step {i}")
        return RESULT

    started = time.perf_counter()
    run_worker(url, TOKEN, once=True, heartbeat_interval_s=0.1, run=run)
    assert revoke_at.is_set() and time.perf_counter() - started < 1.5  # not the 4 s of steps
    assert not fake.paths("/complete")


def test_a_short_lease_is_kept_with_heartbeats_at_a_third_of_it(api) -> None:
    fake, url = api
    fake.lease_s = 1.2  # heartbeats every ~0.4 s, not the 5 s default
    run_worker(url, TOKEN, once=True, run=slow_run(steps=30, delay_s=0.05))  # 1.5 s of steps
    assert len(fake.paths("/heartbeat")) >= 2
    assert fake.paths("/complete")


def test_datasets_are_file_names_under_the_operators_directory(api, tmp_path: Path) -> None:
    fake, url = api
    (tmp_path / "corpus.txt").write_text("hello")
    seen: list[str] = []

    def run(plan, settings, progress):
        seen.append(settings.dataset)
        return RESULT

    fake.settings = {"mode": "throughput", "dataset": "/etc/passwd"}
    run_worker(url, TOKEN, once=True, run=run, data_dir=str(tmp_path))
    (fail,) = fake.paths("/fail")
    assert fail["retryable"] is False and "LTD_WORKER_DATA_DIR" in fail["error"] and not seen
    fake.queue.append("j2")
    fake.settings = {"mode": "throughput", "dataset": "corpus.txt"}
    run_worker(url, TOKEN, once=True, run=run, data_dir=str(tmp_path))
    assert seen == [str((tmp_path / "corpus.txt").resolve())]


def test_final_reports_give_up_when_the_lease_has_expired() -> None:
    fake = FakeApi(["j1"])
    fake.lease_s = 1.0
    server = serve(fake)
    url = f"http://127.0.0.1:{server.server_address[1]}"

    def run(plan, settings, progress):
        server.shutdown()  # the API goes away while the job runs
        server.server_close()
        return RESULT

    started = time.perf_counter()
    run_worker(url, TOKEN, once=True, run=run)
    assert time.perf_counter() - started < 5  # bounded by the 1 s lease, not retried for ever


def test_a_diverged_run_fails_the_job_with_the_reason(api) -> None:
    fake, url = api

    def validated(plan, settings, progress):  # what run_validation does with a NaN
        return ValidationResult.model_validate(
            {**RESULT.model_dump(), "measured_wall_clock_saving": float("nan")}
        )

    run_worker(url, TOKEN, once=True, run=validated)
    (fail,) = fake.paths("/fail")
    assert fail["retryable"] is False and "finite number" in fail["error"]
