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

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from api import queue, service
from api.body import JsonBody
from api.deps import WORKER_RESPONSES, ClockDep, DbDep, SettingsDep, require_worker_token
from api.routes import Id
from wire.jobs import JobPublic, JobState
from wire.worker import (
    ClaimPublic,
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    HeartbeatPublic,
    HeartbeatRequest,
    ReleaseRequest,
)

CLAIM_BODY = JsonBody(ClaimRequest)
HEARTBEAT_BODY = JsonBody(HeartbeatRequest)
COMPLETE_BODY = JsonBody(CompleteRequest)
FAIL_BODY = JsonBody(FailRequest)
RELEASE_BODY = JsonBody(ReleaseRequest)

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
    openapi_extra=CLAIM_BODY.openapi,
)
def claim(
    body: Annotated[ClaimRequest, Depends(CLAIM_BODY)],
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ClaimPublic | Response:
    """Claim the oldest queued job under a fresh lease (attempts + 1); 204 when none waits.
    A job whose stored plan or settings no longer read (stored by an older version) fails with
    the reason, and the next job is claimed: one bad row never stalls the queue."""
    claimed = service.claim_job(
        db, worker_id=body.worker_id, now=clock(), lease_seconds=settings.lease_seconds
    )
    return claimed if claimed is not None else Response(status_code=204)


@router.post(
    "/jobs/{job_id}/heartbeat",
    response_model=HeartbeatPublic,
    responses=STALE,
    openapi_extra=HEARTBEAT_BODY.openapi,
)
def heartbeat(
    job_id: Id,
    body: Annotated[HeartbeatRequest, Depends(HEARTBEAT_BODY)],
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
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
    openapi_extra=COMPLETE_BODY.openapi,
)
def complete(
    job_id: Id,
    body: Annotated[CompleteRequest, Depends(COMPLETE_BODY)],
    db: DbDep,
    clock: ClockDep,
) -> JobPublic:
    """Store the job's result (succeeded); the plan gains its calibrated projection."""
    _expire(db, clock)
    return service.complete_job(
        db, job_id=job_id, lease_id=body.lease_id, result=body.result, now=clock()
    )


@router.post(
    "/jobs/{job_id}/fail",
    response_model=JobPublic,
    responses=STALE,
    openapi_extra=FAIL_BODY.openapi,
)
def fail(
    job_id: Id, body: Annotated[FailRequest, Depends(FAIL_BODY)], db: DbDep, clock: ClockDep
) -> JobPublic:
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
    openapi_extra=RELEASE_BODY.openapi,
)
def release(
    job_id: Id,
    body: Annotated[ReleaseRequest, Depends(RELEASE_BODY)],
    db: DbDep,
    clock: ClockDep,
) -> JobPublic:
    """Give the job back (e.g. on SIGTERM): queued again, this attempt not counted."""
    _expire(db, clock)
    with db.write() as session:
        return service.job_public(
            queue.release(session, job_id=job_id, lease_id=body.lease_id, now=clock())
        )
