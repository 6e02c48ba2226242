"""The worker protocol against a real database: claim, heartbeat, complete, fail, release,
lease expiry, retries, stale leases and cancellation."""

from __future__ import annotations

from typing import Any

import pytest

from wire.limits import ERROR_CHARS, MESSAGE_CHARS

LEASE_S = 30  # the `settings` fixture's lease


@pytest.fixture
def worker(client, worker_headers):
    """`worker(action, job_id=None, **body)` posts a worker endpoint with the token."""

    def call(action: str, job_id: str | None = None, **body: Any):
        path = "/v1/worker/claim" if job_id is None else f"/v1/worker/jobs/{job_id}/{action}"
        return client.post(path, json=body, headers=worker_headers)

    return call


def claim(worker, worker_id: str = "w1") -> dict[str, Any]:
    response = worker("claim", worker_id=worker_id)
    assert response.status_code == 200, response.text
    return response.json()


def test_claim_gives_job_plan_and_lease(client, worker, queued_job, stored_plan):
    claimed = claim(worker)
    assert set(claimed) == {"job", "plan", "lease_id", "lease_expires_at"}
    job = claimed["job"]
    assert job["id"] == queued_job and job["state"] == "running" and job["attempts"] == 1
    assert job["worker_id"] == "w1" and job["started_at"] is not None
    assert claimed["plan"]["id"] == stored_plan
    assert "lease_id" not in client.get(f"/v1/jobs/{queued_job}").json()
    assert worker("claim", worker_id="w2").status_code == 204


def test_claims_take_the_oldest_first(client, worker, stored_plan):
    ids = [client.post("/v1/jobs", json={"plan_id": stored_plan}).json()["id"] for _ in range(3)]
    assert [claim(worker)["job"]["id"] for _ in ids] == ids


def test_lifecycle_heartbeat_complete_calibrates_the_plan(
    client, worker, queued_job, stored_plan, validation_result
):
    lease = claim(worker)["lease_id"]
    beat = worker("heartbeat", queued_job, lease_id=lease, progress=0.25, message="warm-up")
    assert beat.status_code == 200 and beat.json()["cancelled"] is False
    job = client.get(f"/v1/jobs/{queued_job}").json()
    assert (job["progress"], job["progress_message"]) == (0.25, "warm-up")
    done = worker("complete", queued_job, lease_id=lease, result=validation_result())
    assert done.status_code == 200, done.text
    job = done.json()
    assert job["state"] == "succeeded" and job["progress"] == 1.0
    assert job["result"]["measured_wall_clock_saving"] == 0.2 and job["finished_at"]
    calibrated = client.get(f"/v1/plans/{stored_plan}").json()["calibrated"]
    assert calibrated["job_id"] == queued_job
    assert calibrated["measured_wall_clock_saving"] == 0.2
    # Reporting twice stores nothing new.
    again = worker(
        "complete",
        queued_job,
        lease_id=lease,
        result=validation_result(measured_wall_clock_saving=0.9),
    )
    assert again.status_code == 409
    assert client.get(f"/v1/jobs/{queued_job}").json() == job


def test_heartbeat_renews_the_lease(client, worker, queued_job, clock):
    lease = claim(worker)["lease_id"]
    clock.advance(LEASE_S - 5)
    assert worker("heartbeat", queued_job, lease_id=lease, progress=0.5).status_code == 200
    clock.advance(LEASE_S - 5)  # past the first lease, within the renewed one
    assert worker("claim", worker_id="w2").status_code == 204
    assert worker("heartbeat", queued_job, lease_id=lease, progress=0.6).status_code == 200


def test_expired_lease_requeues_and_stale_reports_get_409(
    client, worker, queued_job, clock, validation_result
):
    first = claim(worker, "w1")["lease_id"]
    clock.advance(LEASE_S + 1)
    second = claim(worker, "w2")
    assert second["job"]["id"] == queued_job and second["job"]["attempts"] == 2
    before = client.get(f"/v1/jobs/{queued_job}").json()
    stale = [
        worker("heartbeat", queued_job, lease_id=first, progress=0.9),
        worker("complete", queued_job, lease_id=first, result=validation_result()),
        worker("fail", queued_job, lease_id=first, error="boom", retryable=False),
        worker("release", queued_job, lease_id=first),
    ]
    assert [r.status_code for r in stale] == [409] * 4
    assert client.get(f"/v1/jobs/{queued_job}").json() == before
    done = worker("complete", queued_job, lease_id=second["lease_id"], result=validation_result())
    assert done.json()["state"] == "succeeded"


def test_report_after_expiry_without_reclaim_is_409_and_requeues(
    client, worker, queued_job, clock, validation_result
):
    lease = claim(worker)["lease_id"]
    clock.advance(LEASE_S + 1)
    assert (
        worker("complete", queued_job, lease_id=lease, result=validation_result()).status_code
        == 409
    )
    job = client.get(f"/v1/jobs/{queued_job}").json()
    assert job["state"] == "queued" and job["result"] is None
    assert "expired" in job["error"]


def test_readers_see_expired_leases_requeued(client, worker, queued_job, clock):
    claim(worker)
    clock.advance(LEASE_S + 1)
    job = client.get(f"/v1/jobs/{queued_job}").json()
    assert job["state"] == "queued" and job["error"] == "lease of attempt 1 expired"
    claim(worker)
    clock.advance(LEASE_S + 1)
    listed = client.get("/v1/jobs", params={"state": "queued"}).json()
    assert [j["id"] for j in listed["data"]] == [queued_job]
    claim(worker)
    clock.advance(LEASE_S + 1)
    assert 'ltd_jobs{state="failed"} 1.0' in client.get("/metrics").text


def test_reads_show_a_lapsed_lease_without_writing_it(client, worker, queued_job, clock):
    """GET /v1/jobs/{id}, GET /v1/jobs?state= and /metrics show a lapsed lease's outcome, the
    row stays as the worker left it until a write (here the next claim) records the same."""
    from api import crud

    claim(worker)
    clock.advance(LEASE_S + 1)
    shown = client.get(f"/v1/jobs/{queued_job}").json()
    assert (shown["state"], shown["worker_id"], shown["progress"]) == ("queued", None, 0.0)
    assert [j["id"] for j in client.get("/v1/jobs?state=queued").json()["data"]] == [queued_job]
    assert client.get("/v1/jobs?state=running").json()["count"] == 0
    assert 'ltd_jobs{state="queued"} 1.0' in client.get("/metrics").text
    with client.app.state.db.read() as session:
        row = crud.get_job(session, job_id=queued_job)
        assert row is not None and (row.state, row.worker_id) == ("running", "w1")
    assert claim(worker, "w2")["job"]["attempts"] == 2  # the claim writes the lapse first
    with client.app.state.db.read() as session:
        row = crud.get_job(session, job_id=queued_job)
        assert row is not None and (row.state, row.worker_id) == ("running", "w2")
        assert row.error == shown["error"] == "lease of attempt 1 expired"


def test_attempts_exhausted_by_expiry_fail_with_reason(client, worker, queued_job, clock):
    for attempt in (1, 2, 3):
        assert claim(worker)["job"]["attempts"] == attempt
        clock.advance(LEASE_S + 1)
    assert worker("claim", worker_id="w9").status_code == 204
    job = client.get(f"/v1/jobs/{queued_job}").json()
    assert job["state"] == "failed"
    assert job["error"] == "lease expired after 3 attempts"


def test_retryable_failure_requeues_until_attempts_run_out(client, worker, queued_job):
    for attempt in (1, 2):
        lease = claim(worker)["lease_id"]
        job = worker(
            "fail", queued_job, lease_id=lease, error=f"oom {attempt}", retryable=True
        ).json()
        assert job["state"] == "queued" and job["error"] == f"oom {attempt}"
    lease = claim(worker)["lease_id"]
    job = worker("fail", queued_job, lease_id=lease, error="oom 3", retryable=True).json()
    assert job["state"] == "failed" and job["attempts"] == 3
    assert job["error"].startswith("oom 3") and "3 attempts" in job["error"]


def test_non_retryable_failure_fails_at_once(client, worker, queued_job):
    lease = claim(worker)["lease_id"]
    job = worker("fail", queued_job, lease_id=lease, error="bad config", retryable=False).json()
    assert (job["state"], job["error"], job["attempts"]) == ("failed", "bad config", 1)


def test_release_requeues_without_counting_the_attempt(client, worker, queued_job):
    lease = claim(worker)["lease_id"]
    job = worker("release", queued_job, lease_id=lease).json()
    assert job["state"] == "queued" and job["attempts"] == 0 and job["worker_id"] is None
    assert claim(worker)["job"]["attempts"] == 1


def test_cancel_running_job_tells_the_worker(client, worker, queued_job, validation_result):
    lease = claim(worker)["lease_id"]
    cancelled = client.post(f"/v1/jobs/{queued_job}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    beat = worker("heartbeat", queued_job, lease_id=lease, progress=0.5)
    assert beat.status_code == 200 and beat.json()["cancelled"] is True
    late = worker("complete", queued_job, lease_id=lease, result=validation_result())
    assert late.status_code == 409
    job = client.get(f"/v1/jobs/{queued_job}").json()
    assert job["state"] == "cancelled" and job["result"] is None
    assert worker("heartbeat", queued_job, lease_id="other", progress=0.5).status_code == 409


def test_bad_reports_are_422_and_change_nothing(client, worker, queued_job, validation_result):
    lease = claim(worker)["lease_id"]
    before = client.get(f"/v1/jobs/{queued_job}").json()
    bad = [
        worker("heartbeat", queued_job, lease_id=lease, progress=1.5),
        worker("heartbeat", queued_job, lease_id=lease),
        worker("complete", queued_job, lease_id=lease, result={"device": "cpu"}),
        worker("complete", queued_job, lease_id=lease, result=validation_result(step_times="fast")),
        worker("fail", queued_job, lease_id=lease, error=""),
    ]
    assert [r.status_code for r in bad] == [422] * 5
    assert bad[0].json()["detail"][0]["loc"] == ["body", "progress"]
    assert client.get(f"/v1/jobs/{queued_job}").json() == before


def test_long_texts_are_kept_short_not_refused(client, worker, queued_job):
    lease = claim(worker)["lease_id"]
    beat = worker("heartbeat", queued_job, lease_id=lease, progress=0.1, message="m" * 5000)
    assert beat.status_code == 200
    assert len(client.get(f"/v1/jobs/{queued_job}").json()["progress_message"]) == MESSAGE_CHARS
    failed = worker("fail", queued_job, lease_id=lease, error="e" * 30_000, retryable=False)
    assert len(failed.json()["error"]) == ERROR_CHARS


def test_unknown_job_is_404(worker):
    assert worker("heartbeat", "j_nope", lease_id="x", progress=0).status_code == 404


def test_a_job_whose_stored_plan_no_longer_reads_fails_and_the_queue_moves_on(
    client, worker, plan_request
) -> None:
    """A row written by an older version that this one cannot read: the claim fails that job
    with the reason and hands out the next one, never a 500 that stalls every claim."""
    from sqlalchemy import update

    from api.models import PlanRow

    bad = client.post("/v1/plans", json=plan_request()).json()["id"]
    good = client.post("/v1/plans", json=plan_request(train_steps=200)).json()["id"]
    bad_job = client.post("/v1/jobs", json={"plan_id": bad}).json()["id"]
    good_job = client.post("/v1/jobs", json={"plan_id": good}).json()["id"]
    with client.app.state.db.write() as session:
        session.execute(update(PlanRow).where(PlanRow.id == bad).values(plan_json='{"id": 1}'))
    assert claim(worker)["job"]["id"] == good_job
    failed = client.get(f"/v1/jobs/{bad_job}").json()
    assert failed["state"] == "failed" and "unreadable" in failed["error"]
    assert worker("claim", worker_id="w2").status_code == 204
