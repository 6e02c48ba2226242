"""`/v1/worker`: the protocol GPU workers speak (DESIGN.md, "Jobs and workers").

Every endpoint needs `Authorization: Bearer <LTD_WORKER_TOKEN>` (401 without it; 503 when the
service has no worker token). A report under a lease that is not current answers 409 and changes
nothing.

    POST /v1/worker/claim                {worker_id}                  -> 200 ClaimPublic | 204
    POST /v1/worker/jobs/{id}/heartbeat  {lease_id, progress, message?} -> 200 HeartbeatPublic
    POST /v1/worker/jobs/{id}/complete   {lease_id, result}           -> 200 JobPublic
    POST /v1/worker/jobs/{id}/fail       {lease_id, error, retryable} -> 200 JobPublic
    POST /v1/worker/jobs/{id}/release    {lease_id}                   -> 200 JobPublic
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import ValidationError

from api import crud, queue, service
from api.deps import (
    WORKER_RESPONSES,
    ClockDep,
    DbDep,
    SettingsDep,
    require_worker_token,
    strict_json,
)
from api.schemas import (
    ClaimPublic,
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    HeartbeatPublic,
    HeartbeatRequest,
    Id,
    JobPublic,
    ReleaseRequest,
)
from planner import Plan
from planner.jobs import JobState

router = APIRouter(
    prefix="/v1/worker",
    tags=["worker"],
    dependencies=[Depends(require_worker_token)],
    responses=WORKER_RESPONSES,
)

STALE: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "The lease is not current (expired, reclaimed) or the job is not "
        "running; nothing changed"
    },
    404: {"description": "Unknown job id"},
}


def _expire(db: DbDep, clock: ClockDep) -> None:
    """Apply lease expiry before a report, so a report under an expired lease sees it."""
    with db.write() as session:
        queue.expire_leases(session, now=clock())


@router.post(
    "/claim",
    response_model=ClaimPublic,
    responses={204: {"description": "No job is queued"}},
    dependencies=[strict_json(ClaimRequest)],
)
def claim(
    body: ClaimRequest,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ClaimPublic | Response:
    """Claim the oldest queued job under a fresh lease (attempts + 1); 204 when none waits.
    A job whose stored plan or settings no longer read (stored by an older version) fails with
    the reason, and the next job is claimed: one bad row never stalls the queue."""
    with db.write() as session:
        while True:
            now = clock()
            job = queue.claim_next_job(
                session, worker_id=body.worker_id, now=now, lease_seconds=settings.lease_seconds
            )
            if job is None:
                return Response(status_code=204)
            plan_json = crud.get_plan_json(session, plan_id=job.plan_id)
            assert plan_json is not None and job.lease_id and job.lease_expires_at
            try:
                return ClaimPublic(
                    job=service.job_public(job),
                    plan=Plan.model_validate_json(plan_json),
                    lease_id=job.lease_id,
                    lease_expires_at=job.lease_expires_at,
                )
            except ValidationError as exc:
                queue.fail_unreadable(job, f"stored plan or settings unreadable: {exc}", now=now)


@router.post(
    "/jobs/{job_id}/heartbeat",
    response_model=HeartbeatPublic,
    responses=STALE,
    dependencies=[strict_json(HeartbeatRequest)],
)
def heartbeat(
    job_id: Id, body: HeartbeatRequest, db: DbDep, clock: ClockDep, settings: SettingsDep
) -> HeartbeatPublic:
    """Renew the lease and report progress (0..1); `cancelled: true` means stop now."""
    _expire(db, clock)
    with db.write() as session:
        job = queue.heartbeat(
            session,
            job_id=job_id,
            lease_id=body.lease_id,
            now=clock(),
            progress=body.progress,
            message=body.message,
            lease_seconds=settings.lease_seconds,
        )
        return HeartbeatPublic(
            cancelled=job.state == JobState.CANCELLED, lease_expires_at=job.lease_expires_at
        )


@router.post(
    "/jobs/{job_id}/complete",
    response_model=JobPublic,
    responses=STALE,
    dependencies=[strict_json(CompleteRequest)],
)
def complete(job_id: Id, body: CompleteRequest, db: DbDep, clock: ClockDep) -> JobPublic:
    """Store the job's result (succeeded); the plan gains its calibrated projection."""
    _expire(db, clock)
    return service.complete_job(
        db, job_id=job_id, lease_id=body.lease_id, result=body.result, now=clock()
    )


@router.post(
    "/jobs/{job_id}/fail",
    response_model=JobPublic,
    responses=STALE,
    dependencies=[strict_json(FailRequest)],
)
def fail(job_id: Id, body: FailRequest, db: DbDep, clock: ClockDep) -> JobPublic:
    """Report an error: requeued when `retryable` and attempts remain, else failed."""
    _expire(db, clock)
    with db.write() as session:
        return service.job_public(
            queue.fail(
                session,
                job_id=job_id,
                lease_id=body.lease_id,
                error=body.error,
                retryable=body.retryable,
                now=clock(),
            )
        )


@router.post(
    "/jobs/{job_id}/release",
    response_model=JobPublic,
    responses=STALE,
    dependencies=[strict_json(ReleaseRequest)],
)
def release(job_id: Id, body: ReleaseRequest, db: DbDep, clock: ClockDep) -> JobPublic:
    """Give the job back (e.g. on SIGTERM): queued again, this attempt not counted."""
    _expire(db, clock)
    with db.write() as session:
        return service.job_public(
            queue.release(session, job_id=job_id, lease_id=body.lease_id, now=clock())
        )
