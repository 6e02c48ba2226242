"""`/v1/worker`: the protocol GPU workers speak (DESIGN.md, "Jobs and workers").

Every endpoint needs `Authorization: Bearer <LTD_WORKER_TOKEN>` (401 without it; 503 when the
service has no worker token). A report under a lease that is not current answers 409 and changes
nothing. The routes run on threads of their own (`LTD_WORKER_THREADS`, `on_worker_threads`), not
on the pool the plan, job and check routes share: plan traffic never starves a heartbeat.

    POST /v1/worker/claim                {worker_id}                  -> 200 ClaimPublic | 204
    POST /v1/worker/jobs/{id}/heartbeat  {lease_id, progress, message?} -> 200 HeartbeatPublic
    POST /v1/worker/jobs/{id}/complete   {lease_id, result}           -> 200 JobPublic
    POST /v1/worker/jobs/{id}/fail       {lease_id, error, retryable} -> 200 JobPublic
    POST /v1/worker/jobs/{id}/release    {lease_id}                   -> 200 JobPublic
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from functools import partial, wraps
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Request, Response

from api import queue, service
from api.body import JsonBody
from api.db import Database
from api.deps import WORKER_RESPONSES, ClockDep, DbDep, SettingsDep, require_worker_token
from api.documents import stored_job
from api.routes import Id, json_text
from api.settings import Settings
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


R = TypeVar("R")


def on_worker_threads(route: Callable[..., R]) -> Callable[..., Any]:
    """A blocking route run on the worker protocol's own threads (`app.state.worker_threads`,
    a CapacityLimiter of LTD_WORKER_THREADS) rather than the shared pool; FastAPI sees the
    route's own parameters, and the request."""

    @wraps(route)
    async def run(*args: Any, _http: Request, **kwargs: Any) -> R:
        limiter = getattr(_http.app.state, "worker_threads", None)  # None: no lifespan (tests)
        return await anyio.to_thread.run_sync(partial(route, *args, **kwargs), limiter=limiter)

    params = list(inspect.signature(route).parameters.values())
    http = inspect.Parameter("_http", inspect.Parameter.KEYWORD_ONLY, annotation=Request)
    run.__signature__ = inspect.signature(route).replace(parameters=[*params, http])  # type: ignore[attr-defined]
    return run


def _lapse_at(db: Database, now: datetime, settings: Settings) -> datetime:
    """The time leases are judged by: `now`, or the start of a database outage that ended less
    than a lease ago (`api.db.Availability`: a lease that ran out while its worker could not
    reach the database is not held against it)."""
    return db.availability.lapse_at(now, grace_s=settings.lease_seconds)


def _expire(db: Database, lapse_at: datetime) -> None:
    """Apply lease expiry before a report, so a report under an expired lease sees it."""
    with db.write() as session:
        queue.expire_leases(session, now=lapse_at)


@router.post(
    "/claim",
    response_model=ClaimPublic,
    responses={204: {"description": "No job is queued"}},
    openapi_extra=CLAIM_BODY.openapi,
)
@on_worker_threads
def claim(
    body: Annotated[ClaimRequest, Depends(CLAIM_BODY)],
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ClaimPublic | Response:
    """Claim the oldest queued job under a fresh lease (attempts + 1); 204 when none waits.
    A job whose stored plan or settings no longer read (stored by an older version) fails with
    the reason, and the next job is claimed: one bad row never stalls the queue."""
    now = clock()
    claimed = service.claim_job(
        db,
        worker_id=body.worker_id,
        now=now,
        lease_seconds=settings.lease_seconds,
        lapse_at=_lapse_at(db, now, settings),
    )
    return claimed if claimed is not None else Response(status_code=204)


@router.post(
    "/jobs/{job_id}/heartbeat",
    response_model=HeartbeatPublic,
    responses=STALE,
    openapi_extra=HEARTBEAT_BODY.openapi,
)
@on_worker_threads
def heartbeat(
    job_id: Id,
    body: Annotated[HeartbeatRequest, Depends(HEARTBEAT_BODY)],
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> HeartbeatPublic:
    """Renew the lease and report progress (0..1); `cancelled: true` means stop now. A lease
    that ran out while the database was unreachable is renewed, unless another claim took the
    job meanwhile."""
    now = clock()
    lapse_at = _lapse_at(db, now, settings)
    _expire(db, lapse_at)
    with db.write() as session:
        job = queue.heartbeat(
            session,
            job_id=job_id,
            lease_id=body.lease_id,
            now=now,
            lapse_at=lapse_at,
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
@on_worker_threads
def complete(
    job_id: Id,
    body: Annotated[CompleteRequest, Depends(COMPLETE_BODY)],
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> Response:
    """Store the job's result (succeeded); the plan gains its calibrated projection."""
    now = clock()
    lapse_at = _lapse_at(db, now, settings)
    _expire(db, lapse_at)
    done = service.complete_job(
        db, job_id=job_id, lease_id=body.lease_id, result=body.result, now=now, lapse_at=lapse_at
    )
    return json_text(done.json())


@router.post(
    "/jobs/{job_id}/fail",
    response_model=JobPublic,
    responses=STALE,
    openapi_extra=FAIL_BODY.openapi,
)
@on_worker_threads
def fail(
    job_id: Id,
    body: Annotated[FailRequest, Depends(FAIL_BODY)],
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> Response:
    """Report an error: requeued when `retryable` and attempts remain, else failed."""
    now = clock()
    lapse_at = _lapse_at(db, now, settings)
    _expire(db, lapse_at)
    with db.write() as session:
        job = queue.fail(
            session,
            job_id=job_id,
            lease_id=body.lease_id,
            error=body.error,
            retryable=body.retryable,
            now=now,
            lapse_at=lapse_at,
        )
        return json_text(stored_job(job).json())


@router.post(
    "/jobs/{job_id}/release",
    response_model=JobPublic,
    responses=STALE,
    openapi_extra=RELEASE_BODY.openapi,
)
@on_worker_threads
def release(
    job_id: Id,
    body: Annotated[ReleaseRequest, Depends(RELEASE_BODY)],
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> Response:
    """Give the job back (e.g. on SIGTERM): queued again, this attempt not counted."""
    now = clock()
    lapse_at = _lapse_at(db, now, settings)
    _expire(db, lapse_at)
    with db.write() as session:
        job = queue.release(
            session, job_id=job_id, lease_id=body.lease_id, now=now, lapse_at=lapse_at
        )
        return json_text(stored_job(job).json())
