"""A worker against the real API on loopback: `ltd serve` on a free port, a temporary SQLite
file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tests.factories import tiny_plan_request  # noqa: E402
from tests.servers import LtdServer  # noqa: E402
from worker.loop import run_worker  # noqa: E402
from worker.validate import run_validation  # noqa: E402

TOKEN = "e2e-worker-token"

pytestmark = pytest.mark.slow


@pytest.fixture
def api_url(live_server: Callable[..., LtdServer]) -> str:
    return live_server(worker_token=TOKEN, env={"LTD_LEASE_SECONDS": "30"}).url


def _paced_validation(plan, settings, progress):
    """The real `run_validation`, paced so that heartbeats see it part-way on any machine."""

    def paced(fraction: float, message: str) -> None:
        progress(fraction, message)
        time.sleep(0.05)

    return run_validation(plan, settings, paced)


def test_job_goes_from_queued_to_succeeded_with_progress(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=30) as http:
        _run_job_end_to_end(http, api_url)


def _run_job_end_to_end(http: httpx.Client, api_url: str) -> None:
    settings = {"mode": "throughput", "warmup_steps": 2, "measure_steps": 5, "device": "cpu"}
    response = http.post(
        "/v1/jobs",
        json={
            "plan_request": tiny_plan_request(),
            "settings": settings,
        },
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] == "queued"
    seen: list[tuple[str, float]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            j = http.get(f"/v1/jobs/{job['id']}").json()
            seen.append((j["state"], j["progress"]))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_worker(
            api_url,
            TOKEN,
            worker_id="e2e",
            once=True,
            heartbeat_interval_s=0.1,
            run=_paced_validation,
        )
    finally:
        done.set()
        watcher.join()
    final = http.get(f"/v1/jobs/{job['id']}").json()
    assert final["state"] == "succeeded", final
    assert final["worker_id"] == "e2e"
    result = final["result"]
    assert result["device"] == "cpu" and len(result["step_times"]) == 5
    assert any(state == "running" and 0 < p < 1 for state, p in seen), seen
    plan = http.get(f"/v1/plans/{final['plan_id']}").json()
    assert plan["calibrated"] is not None
