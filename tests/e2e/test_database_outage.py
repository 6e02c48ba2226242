"""A database outage under a running job, over real processes: `ltd serve` on PostgreSQL reached
through a TCP proxy (tests/tcp_proxy.py), a real `ltd worker` training a small CPU job, and the
proxy cut for 10 s mid-job (lease 30 s): every connection reset, and new ones held unanswered,
so only the service's connect timeout ends each wait.

While it is cut, the routes answer 503 with Retry-After (a cached read may still answer 200),
never 500, each within about the connect timeout. Afterwards the job succeeds on its first
attempt, reported once, and nothing stored is lost (DESIGN.md, "Jobs and workers").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.api.conftest import _libpq_dsn, postgres_url  # noqa: F401 (a fixture)
from tests.e2e.test_faults import (
    ONE_THREAD,
    TOKEN,
    Procs,
    get_job,
    in_state,
    procs,  # noqa: F401 (a fixture)
    running_with_progress,
    sigterm,
    start_worker,
    submit,
    url_of,
)
from tests.factories import tiny_plan_request
from tests.servers import free_port
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LEASE_S = 30
CUT_S = 10
CONNECT_TIMEOUT_S = 2
TRAIN_STEPS = 700  # a quality job of about 30 s on one core of the CI machine


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:  # noqa: F811 (the fixture, imported)
    target = make_url(postgres_url)
    tcp = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    try:
        yield tcp
    finally:
        tcp.close()


def _listings(http: httpx.Client) -> tuple[Any, Any]:
    plans, jobs = http.get("/v1/plans?limit=100"), http.get("/v1/jobs?limit=100")
    assert plans.status_code == jobs.status_code == 200, (plans.text, jobs.text)
    return plans.json(), jobs.json()


def _during_cut(http: httpx.Client, job_id: str, until: float) -> list[tuple[str, int, float]]:
    """Requests of every kind while the proxy is cut: (what, status, seconds it took)."""
    seen: list[tuple[str, int, float]] = []
    n = 0
    while time.monotonic() < until:
        n += 1
        new_plan = tiny_plan_request(train_steps=n)
        for what, method, path, body in (
            ("job", "GET", f"/v1/jobs/{job_id}", None),
            ("jobs", "GET", "/v1/jobs", None),
            ("new plan", "POST", "/v1/plans", new_plan),
            ("healthz", "GET", "/healthz", None),
        ):
            started = time.monotonic()
            response = http.request(method, path, json=body)
            took = time.monotonic() - started
            seen.append((what, response.status_code, took))
            assert response.status_code in (200, 503), (what, response.status_code, response.text)
            if response.status_code == 503 and what != "healthz":
                assert response.headers["retry-after"] == "5", what
    return seen


def test_a_job_survives_a_database_outage_and_runs_once(
    proxy: TcpProxy,
    postgres_url: str,  # noqa: F811 (the fixture, imported)
    procs: Procs,  # noqa: F811 (the fixture, imported)
) -> None:
    port = free_port()
    through_proxy = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    procs.serve(
        port,
        database_url=through_proxy.render_as_string(hide_password=False),
        worker_token=TOKEN,
        env={
            "LTD_LEASE_SECONDS": str(LEASE_S),
            "LTD_DATABASE_CONNECT_TIMEOUT_SECONDS": str(CONNECT_TIMEOUT_S),
            **ONE_THREAD,
        },
    )
    with httpx.Client(base_url=url_of(port), timeout=60) as http:
        for steps in (100, 200):
            created = http.post("/v1/plans", json=tiny_plan_request(train_steps=steps))
            assert created.status_code == 201, created.text
        job_id = submit(http, train_steps=TRAIN_STEPS)
        other = submit(http, train_steps=50)
        assert http.post(f"/v1/jobs/{other}/cancel").status_code == 200
        before = _listings(http)
        worker = start_worker(procs, port, "w1")
        started_at = time.monotonic()
        procs.wait_for("the worker's progress", running_with_progress(http, job_id), 60)

        proxy.cut("blackhole")
        cut_at = time.monotonic()
        seen = _during_cut(http, job_id, cut_at + CUT_S)
        proxy.restore()
        restored_at = time.monotonic()

        job = procs.wait_for("the job to end", in_state(http, job_id, "succeeded", "failed"), 120)
        finished_at = time.monotonic()
        assert job["state"] == "succeeded", (job, procs.tail(worker))
        assert (job["attempts"], job["worker_id"], job["error"]) == (1, "w1", None), job
        assert job["result"]["quality"] is not None
        # Routes answered 503 while the database was away, each within about the connect
        # timeout, and /healthz said why.
        refused = [s for s in seen if s[1] == 503]
        assert {what for what, _, _ in refused} >= {"jobs", "new plan", "healthz"}, seen
        assert max(took for _, _, took in seen) < CONNECT_TIMEOUT_S + 4, seen
        # Nothing stored was lost, nothing was stored twice, and the 503 POSTs stored nothing.
        plans, jobs = _listings(http)
        assert [p["id"] for p in plans["data"]] == [p["id"] for p in before[0]["data"]]
        assert {j["id"]: j["state"] for j in jobs["data"]} == {
            job_id: "succeeded",
            other: "cancelled",
        }
        assert _stored_results(postgres_url) == [job_id]
        assert get_job(http, job_id) == job
        log = procs.tail(worker, 20_000)
        assert worker.poll() is None, log  # the worker rode it out and polls on
        status, _ = sigterm(worker)
        assert status == 0, log
    print(
        f"outage: {len(refused)} of {len(seen)} requests answered 503 during the {CUT_S} s cut "
        f"({', '.join(f'{w} {s} in {t:.1f} s' for w, s, t in seen)}); the job ran "
        f"{finished_at - started_at:.0f} s, ending {finished_at - restored_at:.1f} s after the "
        "database came back"
    )


def _stored_results(url: str) -> list[str]:
    """Jobs that hold a result, read straight from the test's schema (its URL's options)."""
    with psycopg.connect(_libpq_dsn(url)) as conn:
        rows = conn.execute("SELECT id FROM jobs WHERE result_json IS NOT NULL").fetchall()
    return [row[0] for row in rows]
