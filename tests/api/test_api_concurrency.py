"""Many claimers at once, on both databases: every job is claimed exactly once and every
result stored once."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from api import crud, queue
from api.db import Database
from api.models import JobState

NUM_JOBS = 40
NUM_WORKERS = 8


def _submit(client, stored_plan: str) -> set[str]:
    return {
        client.post("/v1/jobs", json={"plan_id": stored_plan}).json()["id"] for _ in range(NUM_JOBS)
    }


def test_http_claimers_take_each_job_once(client, stored_plan, worker_headers, validation_result):
    job_ids = _submit(client, stored_plan)
    start = threading.Barrier(NUM_WORKERS)

    def work(worker_id: str) -> list[str]:
        done: list[str] = []
        start.wait()
        while True:
            claimed = client.post(
                "/v1/worker/claim", json={"worker_id": worker_id}, headers=worker_headers
            )
            if claimed.status_code == 204:
                return done
            assert claimed.status_code == 200, claimed.text
            body = claimed.json()
            job_id = body["job"]["id"]
            completed = client.post(
                f"/v1/worker/jobs/{job_id}/complete",
                headers=worker_headers,
                json={"lease_id": body["lease_id"], "result": validation_result()},
            )
            assert completed.status_code == 200, completed.text
            done.append(job_id)

    with ThreadPoolExecutor(NUM_WORKERS) as pool:
        results = list(pool.map(work, [f"w{i}" for i in range(NUM_WORKERS)]))
    claims = Counter(job for done in results for job in done)
    assert set(claims) == job_ids and set(claims.values()) == {1}
    jobs = client.get("/v1/jobs", params={"limit": 100}).json()["data"]
    assert {j["state"] for j in jobs} == {"succeeded"}
    assert {j["attempts"] for j in jobs} == {1}


def test_replicas_claiming_directly_take_each_job_once(client, stored_plan, settings, clock):
    """Each claimer has its own engine and connections, as separate API replicas would."""
    job_ids = _submit(client, stored_plan)
    start = threading.Barrier(NUM_WORKERS)

    def work(worker_id: str) -> list[str]:
        db = Database(settings.database_url)
        done: list[str] = []
        try:
            start.wait()
            while True:
                with db.write() as session:
                    job = queue.claim_next_job(
                        session, worker_id=worker_id, now=clock(), lease_seconds=60
                    )
                    if job is None:
                        return done
                    job_id, lease_id = job.id, job.lease_id
                assert lease_id is not None
                with db.write() as session:
                    queue.complete(
                        session,
                        job_id=job_id,
                        lease_id=lease_id,
                        result_json=f'{{"by": "{worker_id}"}}',
                        now=clock(),
                    )
                done.append(job_id)
        finally:
            db.dispose()

    with ThreadPoolExecutor(NUM_WORKERS) as pool:
        results = list(pool.map(work, [f"r{i}" for i in range(NUM_WORKERS)]))
    claims = Counter(job for done in results for job in done)
    assert set(claims) == job_ids and set(claims.values()) == {1}
    db = Database(settings.database_url)
    try:
        with db.read() as session:
            assert crud.count_jobs_by_state(session, now=clock())[JobState.SUCCEEDED] == NUM_JOBS
            rows, _ = crud.list_jobs(session, state=None, limit=100, offset=0, now=clock())
            owners = {row.id: row.worker_id for row in rows}
            assert all(f'"by": "{owners[row.id]}"' in (row.result_json or "") for row in rows)
    finally:
        db.dispose()


def _claim_in_process(database_url: str, worker_id: str, start_at: float) -> list[str]:
    """A claimer in its own process: claim and complete until the queue is empty."""
    import time

    time.sleep(max(0.0, start_at - time.time()))  # start together
    db = Database(database_url)
    done: list[str] = []
    try:
        while True:
            with db.write() as session:
                job = queue.claim_next_job(
                    session, worker_id=worker_id, now=datetime.now(UTC), lease_seconds=600
                )
                if job is None:
                    return done
                job_id, lease_id = job.id, job.lease_id
            assert lease_id is not None
            with db.write() as session:
                queue.complete(
                    session,
                    job_id=job_id,
                    lease_id=lease_id,
                    result_json="{}",
                    now=datetime.now(UTC),
                )
            done.append(job_id)
    finally:
        db.dispose()


@pytest.mark.slow
def test_processes_claiming_take_each_job_once(client, stored_plan, settings):
    import time

    job_ids = _submit(client, stored_plan)
    start_at = time.time() + 3.0  # after every process has imported the package
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=context) as pool:
        futures = [
            pool.submit(_claim_in_process, settings.database_url, f"p{i}", start_at)
            for i in range(4)
        ]
        results = [f.result(timeout=120) for f in futures]
    claims = Counter(job for done in results for job in done)
    assert set(claims) == job_ids and set(claims.values()) == {1}
