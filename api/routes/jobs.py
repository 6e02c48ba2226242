"""`/v1/jobs`: submit, list, read and cancel validation jobs."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from api import crud, queue, service
from api.body import JsonBody
from api.db import Database
from api.deps import API_KEY_RESPONSES, ClockDep, DbDep, SettingsDep, require_api_key
from api.errors import NotFoundError
from api.routes import Id, json_text
from wire.jobs import JobCreate, JobPublic, JobsPublic, JobState
from wire.limits import MAX_OFFSET, PAGE_SIZE

BODY = JsonBody(JobCreate)

router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    dependencies=[Depends(require_api_key)],
    responses=API_KEY_RESPONSES,
)


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    responses={404: {"description": "plan_id names no stored plan"}},
    openapi_extra=BODY.openapi,
)
def create_job(
    body: Annotated[JobCreate, Depends(BODY)],
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
    response: Response,
) -> JobPublic:
    """Queue a validation job for a stored plan (`plan_id`) or a plan request (`plan_request`,
    planned and stored first). Answers 202 with the queued job."""
    now = clock()
    if body.plan_request is not None:
        plan_id, _ = service.get_or_create_plan(
            db, body.plan_request, loc=["body", "plan_request"], now=now
        )
    else:
        assert body.plan_id is not None
        plan_id = body.plan_id
    with db.write() as session:
        if crud.get_plan_json(session, plan_id=plan_id) is None:
            raise NotFoundError("plan", plan_id)
        job = crud.insert_job(
            session,
            plan_id=plan_id,
            now=now,
            settings_json=body.settings.model_dump_json(),
            max_attempts=settings.max_attempts,
        )
        public = service.job_public(job)
    response.headers["Location"] = f"/v1/jobs/{public.id}"
    return public


@router.get("", response_model=JobsPublic)
def list_jobs(
    db: DbDep,
    clock: ClockDep,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE, description="Jobs per page.")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Jobs to skip.")] = 0,
) -> JobsPublic:
    """Jobs, newest first: `{data: [job, ...], count}`. A job whose lease ran out shows as
    queued again (or failed, its attempts spent), as the next claim will record it."""
    now = clock()
    with db.read() as session:
        rows, count = crud.list_jobs(session, state=state, limit=limit, offset=offset, now=now)
        return JobsPublic(data=[service.job_public(r, now=now) for r in rows], count=count)


@router.get("/{job_id}", response_model=JobPublic, responses={404: {"description": "Unknown id"}})
async def get_job(job_id: Id, http: Request) -> Response:
    """A job: state, attempts, progress (0..1), result, error and timestamps. A job whose lease
    ran out shows as queued again (or failed, its attempts spent)."""
    state = http.app.state  # not dependencies: see routes/plans.py
    load, now = partial(_find_job, state.db, job_id), state.clock()
    cached = await state.cache.read(("job", job_id), load)
    if cached is not None and service.job_at(cached[0], now=now) is not cached[0]:
        # Its lease ran out as cached: another replica may have renewed it since.
        cached = await state.cache.reread(("job", job_id), load)
    if cached is None:
        raise NotFoundError("job", job_id)
    stored, text = cached
    shown = service.job_at(stored, now=now)
    return json_text(text if shown is stored else shown.model_dump_json())


def _find_job(db: Database, job_id: str) -> tuple[JobPublic, str] | None:
    job = service.find_job(db, job_id)
    return (job, job.model_dump_json()) if job is not None else None


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    responses={
        404: {"description": "Unknown id"},
        409: {"description": "The job already finished"},
    },
)
def cancel_job(job_id: Id, db: DbDep, clock: ClockDep) -> JobPublic:
    """Cancel a queued or running job (a running worker learns it from its next heartbeat)."""
    now = clock()
    with db.write() as session:
        queue.expire_leases(session, now=now)  # a lapsed job's outcome first, as claims do
        return service.job_public(queue.cancel(session, job_id=job_id, now=now))
