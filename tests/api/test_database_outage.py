"""The database unreachable or locked: every route answers 503 with Retry-After, never 500;
/healthz says why; and a lease that ran out while its worker could not reach the database is
renewed by the worker's next heartbeat, not handed to another worker.

Real outages, no fakes: PostgreSQL reached through a TCP proxy that a test cuts
(tests/tcp_proxy.py), and SQLite with its write lock held by another connection. (Over real
processes with a training job: tests/e2e/test_database_outage.py.)
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from api.settings import Settings
from tests.api.conftest import WORKER_TOKEN
from tests.factories import validation_result
from tests.tcp_proxy import TcpProxy

W = {"Authorization": f"Bearer {WORKER_TOKEN}"}
LEASE_S = 30


@dataclass
class Flaky:
    """A database the test can take away: `url` for the service, `down()` for an outage."""

    name: str
    url: str
    down: Callable[[], AbstractContextManager[None]]


def sqlite_lock(path: str) -> Callable[[], AbstractContextManager[None]]:
    @contextmanager
    def held() -> Iterator[None]:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held until the outage ends
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    return held


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def flaky(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Flaky]:
    if request.param == "sqlite":
        path = str(tmp_path / "ltd.db")
        yield Flaky("sqlite", f"sqlite:///{path}", sqlite_lock(path))
        return
    url = make_url(request.getfixturevalue("postgres_url"))
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        yield Flaky("postgres", proxied.render_as_string(hide_password=False), proxy.outage)
    finally:
        proxy.close()


@pytest.fixture
def service(flaky: Flaky, make_client: Callable[..., Any]) -> Any:
    return make_client(
        Settings(
            database_url=flaky.url,
            worker_token=WORKER_TOKEN,
            lease_seconds=LEASE_S,
            sqlite_busy_timeout_ms=200,
            database_connect_timeout_seconds=1,
            read_cache_seconds=0,  # every read reaches the database
        )
    )


def _job(client: Any, plan_request: Callable[..., dict[str, Any]]) -> tuple[str, str]:
    """A job, claimed: its id and lease."""
    job = client.post("/v1/jobs", json={"plan_request": plan_request()}).json()
    claim = client.post("/v1/worker/claim", json={"worker_id": "w1"}, headers=W)
    assert claim.status_code == 200, claim.text
    return job["id"], claim.json()["lease_id"]


def test_every_route_answers_503_with_retry_after_never_500(
    flaky: Flaky, service: Any, plan_request: Callable[..., dict[str, Any]]
) -> None:
    plan = service.post("/v1/plans", json=plan_request()).json()
    job_id, lease = _job(service, plan_request)
    queued = service.post("/v1/jobs", json={"plan_id": plan["id"]}).json()["id"]
    profile = {
        "device_name": "cpu", "dtype": "float32", "source": "test", "matmul_rows": [1, 2],
        "matmul_widths": [1, 2], "matmul_tflops": [[1.0, 1.0], [1.0, 1.0]],
        "attention_lengths": [1, 2], "attention_tflops": [1.0, 1.0], "memory_gbps": 10.0,
        "launch_overhead_us": 1.0, "async_launch": False,
    }  # fmt: skip
    writes = [
        ("POST", "/v1/plans", plan_request(train_steps=321)),
        ("POST", "/v1/checks", {"request": plan_request(train_steps=322)}),
        ("POST", "/v1/jobs", {"plan_id": plan["id"]}),
        ("POST", f"/v1/jobs/{queued}/cancel", None),
        ("POST", "/v1/device-profiles", profile),
        ("POST", "/v1/worker/claim", {"worker_id": "w2"}),
        ("POST", f"/v1/worker/jobs/{job_id}/heartbeat", {"lease_id": lease, "progress": 0.5}),
        ("POST", f"/v1/worker/jobs/{job_id}/fail", {"lease_id": lease, "error": "x"}),
        ("POST", f"/v1/worker/jobs/{job_id}/release", {"lease_id": lease}),
        (
            "POST",
            f"/v1/worker/jobs/{job_id}/complete",
            {"lease_id": lease, "result": validation_result()},
        ),
    ]
    reads = [
        ("GET", "/v1/plans", None),
        ("GET", f"/v1/plans/{plan['id']}/report", None),
        ("GET", "/v1/jobs", None),
        ("GET", f"/v1/jobs/{job_id}", None),
        ("GET", "/v1/device-profiles", None),
        ("GET", "/v1/device-profiles/dp_0000000000000000", None),
    ]
    with flaky.down():
        for method, path, body in writes + reads:
            response = service.request(method, path, json=body, headers=W)
            if flaky.name == "sqlite" and (method, path, body) in reads:
                # SQLite in WAL mode: readers never wait for the write lock.
                assert response.status_code in (200, 404), (path, response.text)
                continue
            assert response.status_code == 503, (path, response.status_code, response.text)
            assert response.headers["retry-after"] == "5", path
            assert "try again" in response.json()["detail"], path
        metrics = service.get("/metrics")
        assert metrics.status_code == 200  # a scrape never fails for the database
        up = "1.0" if flaky.name == "sqlite" else "0.0"  # SQLite's readers still read
        assert f"ltd_database_up {up}" in metrics.text
    # Nothing was done while down, and everything answers again once it is back.
    job = service.get(f"/v1/jobs/{job_id}").json()
    assert (job["state"], job["progress"], job["attempts"]) == ("running", 0.0, 1)
    assert service.get(f"/v1/jobs/{queued}").json()["state"] == "queued"
    assert service.get("/v1/device-profiles").json()["count"] == 0
    beat = {"lease_id": lease, "progress": 0.5}
    renewed = service.post(f"/v1/worker/jobs/{job_id}/heartbeat", json=beat, headers=W)
    assert renewed.status_code == 200, renewed.text
    assert service.get("/healthz").status_code == 200


def test_healthz_says_why(flaky: Flaky, service: Any) -> None:
    assert service.get("/healthz").json() == {"status": "ok", "database": "ok"}
    with flaky.down():
        time.sleep(1.1)  # past the probe's last answer (it pings at most once a second)
        response = service.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable" and body["reason"]
        assert body["database"] == ("locked" if flaky.name == "sqlite" else "unreachable")


def test_a_lease_that_ran_out_during_an_outage_is_renewed_not_rerun(
    flaky: Flaky, service: Any, clock: Any, plan_request: Callable[..., dict[str, Any]]
) -> None:
    """The worker heartbeats through the outage (503s) while its lease runs out; once the
    database is back, another worker's claim does not take the job, and the first worker's
    heartbeat renews it: the job runs once."""
    job_id, lease = _job(service, plan_request)
    heartbeat = f"/v1/worker/jobs/{job_id}/heartbeat"
    clock.advance(LEASE_S / 3)
    with flaky.down():
        for _ in range(3):  # a third of the lease apart, as the worker does
            beat = service.post(heartbeat, json={"lease_id": lease, "progress": 0.3}, headers=W)
            assert beat.status_code == 503, beat.text
            clock.advance(LEASE_S / 3)
        clock.advance(5)  # the lease ran out (30 s ago + 10 s) while the database was away
    # Back: the job still shows running, and no other worker gets it.
    assert service.get(f"/v1/jobs/{job_id}").json()["state"] == "running"
    other = service.post("/v1/worker/claim", json={"worker_id": "w2"}, headers=W)
    assert other.status_code == 204, other.text
    beat = service.post(heartbeat, json={"lease_id": lease, "progress": 0.6}, headers=W)
    assert beat.status_code == 200, beat.text
    done = service.post(
        f"/v1/worker/jobs/{job_id}/complete",
        json={"lease_id": lease, "result": validation_result()},
        headers=W,
    )
    assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
    assert (done.json()["attempts"], done.json()["worker_id"]) == (1, "w1")


def test_a_worker_that_stays_away_after_the_outage_loses_its_lease(
    flaky: Flaky, service: Any, clock: Any, plan_request: Callable[..., dict[str, Any]]
) -> None:
    """The grace is one lease from the end of the outage: a worker that is gone for good loses
    the job then, and another worker runs it."""
    job_id, lease = _job(service, plan_request)
    with flaky.down():
        beat = service.post(
            f"/v1/worker/jobs/{job_id}/heartbeat", json={"lease_id": lease, "progress": 0.1},
            headers=W,
        )  # fmt: skip
        assert beat.status_code == 503
        clock.advance(LEASE_S + 5)
    assert service.post("/v1/worker/claim", json={"worker_id": "w2"}, headers=W).status_code == 204
    # The next write ends the outage; one lease later the lapse counts.
    clock.advance(LEASE_S + 1)
    assert service.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"
    again = service.post("/v1/worker/claim", json={"worker_id": "w2"}, headers=W)
    assert again.status_code == 200 and again.json()["job"]["attempts"] == 2, again.text
    late = service.post(
        f"/v1/worker/jobs/{job_id}/heartbeat", json={"lease_id": lease, "progress": 0.9},
        headers=W,
    )  # fmt: skip
    assert late.status_code == 409


def test_a_lease_that_ran_out_before_the_outage_lapses_as_ever(
    flaky: Flaky, service: Any, clock: Any, plan_request: Callable[..., dict[str, Any]]
) -> None:
    job_id, lease = _job(service, plan_request)
    clock.advance(LEASE_S + 1)  # the worker died: its lease ran out, then the database went
    with flaky.down():
        claim = service.post("/v1/worker/claim", json={"worker_id": "w2"}, headers=W)
        assert claim.status_code == 503
    assert service.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"
    again = service.post("/v1/worker/claim", json={"worker_id": "w2"}, headers=W)
    assert again.status_code == 200 and again.json()["job"]["id"] == job_id, again.text


def test_an_error_raised_while_handling_a_lost_connection_is_an_outage() -> None:
    """A pool's pre-ping on a connection whose socket just closed: psycopg's OperationalError,
    then a ProgrammingError while the pool restores autocommit (seen once in this suite as a 500
    in place of the 503 above). The outage shows through the chain; a bug's error alone does
    not."""
    import psycopg
    from sqlalchemy.exc import ProgrammingError

    from api.db import outage_kind

    def pre_ping() -> None:  # the driver's errors, then SQLAlchemy's wrapping of the last
        try:
            try:
                raise psycopg.OperationalError("connection socket closed")
            except psycopg.OperationalError:
                raise psycopg.ProgrammingError("can't change 'autocommit' now: ACTIVE")  # noqa: B904
        except psycopg.ProgrammingError as busy:
            raise ProgrammingError("SELECT 1", None, busy) from busy

    with pytest.raises(ProgrammingError) as raised:
        pre_ping()
    assert outage_kind(raised.value) == "unreachable"
    bug = ProgrammingError("SELEC 1", None, psycopg.ProgrammingError("syntax error"))
    assert outage_kind(bug) is None
    assert outage_kind(sqlite3.OperationalError("database is locked")) == "locked"
