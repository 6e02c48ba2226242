"""`/v1/jobs`: submit, list, read and cancel validation jobs."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from api import crud, queue, service
from api.body import JsonBody
from api.db import Database, row_key
from api.deps import (
    API_KEY_RESPONSES,
    CallerDep,
    ClockDep,
    DbDep,
    Responses,
    SettingsDep,
    require_api_key,
)
from api.documents import StoredJob, jobs_json, stored_job
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
NOT_FOUND: Responses = {404: {"description": "Unknown id, or a job of another key's owner"}}


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
    caller: CallerDep,
) -> Response:
    """Queue a validation job for a stored plan (`plan_id`) or a plan request (`plan_request`,
    planned and stored first). Answers 202 with the queued job, which belongs to the caller's
    key: only its owner and admin keys see it."""
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
            owner=caller.owner,
            settings_json=body.settings.model_dump_json(),
            max_attempts=settings.max_attempts,
        )
        created = stored_job(job)
    return json_text(created.json(), 202, {"Location": f"/v1/jobs/{created.summary.id}"})


@router.get("", response_model=JobsPublic)
def list_jobs(
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
    caller: CallerDep,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE, description="Jobs per page.")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Jobs to skip.")] = 0,
) -> Response:
    """The caller's jobs (an admin key's: every job), newest first: `{data: [job, ...],
    count}`. A job whose lease ran out shows as queued again (or failed, its attempts spent),
    as the next claim will record it."""
    lapse_at = db.availability.lapse_at(clock(), grace_s=settings.lease_seconds)
    with db.read() as session:
        rows, count = crud.list_jobs(
            session,
            state=state,
            limit=limit,
            offset=offset,
            now=lapse_at,
            owner=None if caller.admin else caller.owner,
        )
        jobs = [stored_job(row).at(lapse_at) for row in rows]
    return json_text(jobs_json(jobs, count))


@router.get("/{job_id}", response_model=JobPublic, responses=NOT_FOUND)
async def get_job(job_id: Id, http: Request) -> Response:
    """A job: state, attempts, progress (0..1), result, error and timestamps. A job whose lease
    ran out shows as queued again (or failed, its attempts spent). Another owner's job is
    "not found", as an unknown id is."""
    state = http.app.state  # not dependencies: see routes/plans.py
    db: Database = state.db
    load = partial(_find_job, db, job_id)
    lapse_at = db.availability.lapse_at(state.clock(), grace_s=state.settings.lease_seconds)
    cached = await state.cache.read(row_key("jobs", job_id), load)
    if cached is not None and cached[0].at(lapse_at) is not cached[0]:
        # Its lease ran out as cached: another replica may have renewed it since.
        cached = await state.cache.reread(row_key("jobs", job_id), load)
    if cached is None or not http.state.caller.sees(cached[0].owner):
        raise NotFoundError("job", job_id)
    stored, text = cached
    shown = stored.at(lapse_at)
    return json_text(text if shown is stored else shown.json())


def _find_job(db: Database, job_id: str) -> tuple[StoredJob, str] | None:
    job = service.find_job(db, job_id)
    return (job, job.json()) if job is not None else None


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    responses={**NOT_FOUND, 409: {"description": "The job already finished"}},
)
def cancel_job(
    job_id: Id, db: DbDep, clock: ClockDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    """Cancel a queued or running job (a running worker learns it from its next heartbeat).
    Only its owner and admin keys may; to any other key it is "not found"."""
    now = clock()
    lapse_at = db.availability.lapse_at(now, grace_s=settings.lease_seconds)
    with db.write() as session:
        job = crud.get_job(session, job_id=job_id)
        if job is None or not caller.sees(job.owner):
            raise NotFoundError("job", job_id)
        queue.expire_leases(session, now=lapse_at)  # a lapsed job's outcome first, as claims do
        return json_text(stored_job(queue.cancel(session, job_id=job_id, now=now)).json())
