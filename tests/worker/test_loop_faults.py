"""The worker loop through transient failures (DESIGN.md, "Jobs and workers"): a 502, 503 or 504
from something in front of the API is retried with back-off on every kind of request, and
changes nothing about the job; only the API's own refusals stop. Final reports last as long as
the lease the last heartbeat granted, or until told to stop; a result refused as a request fails
the job with the reason. The fake API of test_loop.py, behind a stand-in for a proxy that answers
chosen requests itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from client.worker import WorkerAuthError
from planner.validation import ValidationResult
from tests.worker.test_loop import RESULT, TOKEN, FakeApi, serve, slow_run
from worker.loop import run_worker

NGINX_503 = "<html><head><title>503 Service Temporarily Unavailable</title></head></html>"
PROXY_503 = (503, NGINX_503)  # a string body: sent as text, not the API's {"detail": ...}
API_OFF = (503, {"detail": "worker endpoints are disabled: set LTD_WORKER_TOKEN on the service"})


class FlakyApi(FakeApi):
    """FakeApi behind a proxy: `faults[kind][n]` answers the n-th request (from 1) of a kind
    ("claim", "heartbeat", "complete", "fail", "release") in the API's place; `beat_lease_s`
    makes each heartbeat extend the lease by that much, as the API does. `requests` holds what
    reached the API; `seen` every request's kind and monotonic time."""

    def __init__(self, jobs: list[str]) -> None:
        super().__init__(jobs)
        self.faults: dict[str, dict[int, tuple[int, Any]]] = {}
        self.beat_lease_s: float | None = None
        self.seen: list[tuple[str, float]] = []

    def handle(self, path: str, body: dict, auth: str | None) -> tuple[int, Any]:
        kind = path.rsplit("/", 1)[-1]
        with self.lock:
            self.seen.append((kind, time.monotonic()))
            n = sum(1 for k, _ in self.seen if k == kind)
            fault = self.faults.get(kind, {}).get(n)
        if fault is not None:
            return fault
        status, payload = super().handle(path, body, auth)
        if kind == "heartbeat" and status == 200 and self.beat_lease_s is not None:
            assert payload is not None
            expires = datetime.now(UTC) + timedelta(seconds=self.beat_lease_s)
            payload["lease_expires_at"] = expires.isoformat()
        return status, payload

    def kinds(self, kind: str) -> list[float]:
        """When each request of `kind` arrived (monotonic), answered by the proxy or the API."""
        with self.lock:
            return [t for k, t in self.seen if k == kind]


@pytest.fixture
def flaky() -> Iterator[tuple[FlakyApi, str]]:
    fake = FlakyApi(["j1"])
    server = serve(fake)
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_503s_on_claim_heartbeat_and_complete_change_nothing(flaky) -> None:
    fake, url = flaky
    fake.faults = {
        "claim": {1: PROXY_503},
        "heartbeat": {1: PROXY_503, 2: (502, "Bad Gateway")},
        "complete": {1: PROXY_503, 2: (504, "Gateway Timeout")},
    }
    run_worker(url, TOKEN, once=True, heartbeat_interval_s=0.1, run=slow_run(20, 0.04))
    assert len(fake.kinds("claim")) == 2 and len(fake.kinds("complete")) == 3
    assert fake.paths("/heartbeat"), "no heartbeat reached the API"
    (done,) = fake.paths("/complete")  # the run was not given up as "lease lost"
    assert ValidationResult.model_validate(done["result"]) == RESULT
    assert not fake.paths("/fail") and not fake.paths("/release")


def test_an_idle_worker_polls_on_through_503s(flaky) -> None:
    fake, url = flaky
    fake.queue.clear()
    fake.faults = {"claim": {n: PROXY_503 for n in range(1, 40, 2)}}  # every other claim
    stop, raised = threading.Event(), []

    def work() -> None:
        try:
            run_worker(url, TOKEN, poll_interval_s=0.05, run=slow_run(), stop=stop)
        except BaseException as exc:  # the test's point: nothing is raised
            raised.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while len(fake.paths("/claim")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert thread.is_alive() and not raised, raised
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and not raised, raised
    assert len(fake.paths("/claim")) >= 3 and len(fake.kinds("claim")) >= 5


def test_the_apis_own_503_without_a_worker_token_ends_the_worker(flaky) -> None:
    fake, url = flaky
    fake.faults = {"claim": {1: API_OFF}}
    with pytest.raises(WorkerAuthError) as raised:
        run_worker(url, TOKEN, poll_interval_s=0.05, run=slow_run())
    assert raised.value.status == 503 and "worker endpoints are disabled" in str(raised.value)
    assert len(fake.kinds("claim")) == 1


def test_a_failed_heartbeat_is_retried_before_the_next_interval(flaky) -> None:
    fake, url = flaky
    fake.faults = {"heartbeat": {1: PROXY_503}}
    run_worker(url, TOKEN, once=True, heartbeat_interval_s=1.0, run=slow_run(18, 0.1))
    first, second, *_ = fake.kinds("heartbeat")
    assert second - first < 0.8  # back-off (0.4 to 0.5 s), not the 1 s interval
    assert fake.paths("/heartbeat") and len(fake.paths("/complete")) == 1


def test_the_final_report_lasts_as_long_as_the_lease_the_last_heartbeat_granted(flaky) -> None:
    fake, url = flaky
    fake.lease_s = 0.6  # the claim's lease: over long before the run ends
    fake.beat_lease_s = 5.0  # each heartbeat extends it to 5 s from then
    fake.faults = {"complete": {1: PROXY_503, 2: PROXY_503}}  # ~1.5 s of back-off
    run_worker(url, TOKEN, once=True, run=slow_run(20, 0.05))
    assert fake.paths("/heartbeat")
    assert len(fake.kinds("complete")) == 3 and len(fake.paths("/complete")) == 1


def test_the_final_report_gives_up_when_the_extended_lease_runs_out(flaky) -> None:
    fake, url = flaky
    fake.lease_s = 0.6
    fake.beat_lease_s = 1.0
    fake.faults = {"complete": {n: PROXY_503 for n in range(1, 100)}}
    ended: list[float] = []

    def run(plan: Any, settings: Any, progress: Any) -> ValidationResult:
        slow_run(10, 0.05)(plan, settings, progress)
        ended.append(time.monotonic())
        return RESULT

    run_worker(url, TOKEN, once=True, run=run)
    took = time.monotonic() - ended[0]
    assert 0.3 < took < 2.5, took  # retried, until the 1 s lease of the last heartbeat at most
    assert len(fake.kinds("complete")) >= 2 and not fake.paths("/complete")


def test_stop_ends_the_retries_of_a_final_report(flaky) -> None:
    fake, url = flaky
    fake.faults = {"complete": {n: PROXY_503 for n in range(1, 100)}}  # the lease: until 2030
    stop = threading.Event()

    def run(plan: Any, settings: Any, progress: Any) -> ValidationResult:
        progress(0.5, "half")
        stop.set()  # SIGTERM after the last progress report
        return RESULT

    started = time.monotonic()
    run_worker(url, TOKEN, run=run, stop=stop)
    assert time.monotonic() - started < 2
    assert len(fake.kinds("complete")) == 1


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (413, "request body is over LTD_MAX_BODY_BYTES (1048576 bytes)"),
        (422, [{"loc": ["body", "result", "step_times"], "msg": "too many items"}]),
    ],
)
def test_a_result_refused_as_a_request_fails_the_job_with_the_reason(
    flaky, status: int, detail: Any
) -> None:
    fake, url = flaky
    fake.faults = {"complete": {1: (status, {"detail": detail})}}
    run_worker(url, TOKEN, once=True, run=slow_run(2))
    assert len(fake.kinds("complete")) == 1  # not sent again: it would be refused again
    (fail,) = fake.paths("/fail")
    assert fail["lease_id"] == "L-j1" and fail["retryable"] is False
    assert f"answered {status}" in fail["error"] and "the API refused the result" in fail["error"]
    assert ("LTD_MAX_BODY_BYTES" if status == 413 else "step_times") in fail["error"]
