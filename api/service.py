"""What the routes do, between the planner and the data access: plans are computed once and
stored by id; a succeeded job calibrates its plan in the same transaction that stores its result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from api import crud, queue
from api.db import Database
from api.errors import FieldError, NotFoundError, plan_input_error
from api.models import DeviceProfileRow, JobRow
from planner import Plan, PlanInputError, PlanRequest, plan, resolve
from planner.calibration import calibrate
from planner.device import DeviceProfile
from planner.validation import ValidationResult, ValidationSettings
from wire.jobs import JobPublic, JobState
from wire.profiles import DeviceProfilePublic
from wire.worker import ClaimPublic

log = logging.getLogger("api")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def with_stored_profile(db: Database, request: PlanRequest, *, loc: Sequence[str]) -> PlanRequest:
    """The request with a stored device profile's id (`hardware.device_profile`) replaced by
    the profile itself, so that the plan (and its id) depend on the profile's numbers. An unknown
    id is a 422 at `loc.hardware.device_profile`."""
    profile_id = request.hardware.device_profile
    if not isinstance(profile_id, str):
        return request
    with db.read() as session:
        row = crud.get_device_profile(session, profile_id=profile_id)
        profile_json = row.profile_json if row is not None else None
    if profile_json is None:
        raise FieldError(
            [*loc, "hardware", "device_profile"],
            f"no stored device profile {profile_id!r} (GET /v1/device-profiles lists them)",
        )
    hardware = request.hardware.model_copy(
        update={"device_profile": DeviceProfile.model_validate_json(profile_json)}
    )
    return request.model_copy(update={"hardware": hardware})


def device_profile_public(row: DeviceProfileRow) -> DeviceProfilePublic:
    return DeviceProfilePublic(
        id=row.id,
        profile=DeviceProfile.model_validate_json(row.profile_json),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def plan_id_of(request: PlanRequest, *, loc: Sequence[str]) -> str:
    """The plan id of a request: a hash of its normalised form, without computing the plan
    (about 0.1 ms). The planner's refusal (`PlanInputError`) becomes a 422 located under `loc`;
    any other error is a bug, answered 500 (`api.errors`)."""
    try:
        return resolve(request).plan_id
    except PlanInputError as exc:
        raise plan_input_error(exc, loc) from None


def find_plan(db: Database, plan_id: str) -> str | None:
    """The stored plan document (JSON text), or None: one primary-key read that never waits for
    a lock (SQLite WAL readers, PostgreSQL MVCC)."""
    with db.read() as session:
        return crud.get_plan_json(session, plan_id=plan_id)


def get_or_create_plan(
    db: Database, request: PlanRequest, *, loc: Sequence[str], now: datetime
) -> tuple[str, str]:
    """The plan id and stored plan document (JSON text) for `request`, computed and stored on
    first use; later calls only hash the request and read the stored text."""
    request = with_stored_profile(db, request, loc=loc)
    plan_id = plan_id_of(request, loc=loc)
    stored = find_plan(db, plan_id)
    if stored is not None:
        return plan_id, stored
    try:
        document = plan(request)
    except PlanInputError as exc:
        raise plan_input_error(exc, loc) from None
    plan_json = document.model_dump_json()
    try:
        with db.write() as session:
            crud.insert_plan(
                session,
                plan_id=document.id,
                plan_json=plan_json,
                now=now,
                request_json=request.model_dump_json(exclude_unset=True),
            )
    except IntegrityError:  # another request stored the same plan first
        with db.read() as session:
            stored = crud.get_plan_json(session, plan_id=plan_id)
        assert stored is not None
        return plan_id, stored
    return plan_id, plan_json


def stored_plan(db: Database, plan_id: str) -> str:
    """The stored plan document (JSON text), or NotFoundError."""
    stored = find_plan(db, plan_id)
    if stored is None:
        raise NotFoundError("plan", plan_id)
    return stored


def job_public(job: JobRow, *, now: datetime | None = None) -> JobPublic:
    """A job as clients see it; with `now`, a lease that ran out shows as its outcome
    (`queue.lease_lapse`) without writing it."""
    public = JobPublic(
        id=job.id,
        plan_id=job.plan_id,
        state=JobState(job.state),
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        progress=job.progress,
        progress_message=job.progress_message,
        settings=ValidationSettings.model_validate_json(job.settings_json),
        result=(ValidationResult.model_validate_json(job.result_json) if job.result_json else None),
        error=job.error,
        worker_id=job.worker_id,
        lease_expires_at=job.lease_expires_at,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
    )
    return public if now is None else job_at(public, now=now)


def job_at(public: JobPublic, *, now: datetime) -> JobPublic:
    """`public` as of `now`: a lease that ran out shows as its outcome (`queue.lease_lapse`)."""
    lapse = queue.lease_lapse(public, now=now)
    if lapse is None:
        return public
    lapse.pop("lease_id", None)
    lapse["state"] = JobState(lapse["state"])
    return public.model_copy(update=lapse)


def claim_job(
    db: Database, *, worker_id: str, now: datetime, lease_seconds: float
) -> ClaimPublic | None:
    """The oldest queued job, claimed for `worker_id` under a fresh lease with its plan, or None
    when none waits. A job whose stored plan or settings no longer read (stored by an older
    version) fails with the reason, and the next job is claimed: one bad row never stalls the
    queue."""
    with db.write() as session:
        while True:
            job = queue.claim_next_job(
                session, worker_id=worker_id, now=now, lease_seconds=lease_seconds
            )
            if job is None:
                return None
            plan_json = crud.get_plan_json(session, plan_id=job.plan_id)
            assert plan_json is not None and job.lease_id and job.lease_expires_at
            try:
                return ClaimPublic(
                    job=job_public(job),
                    plan=Plan.model_validate_json(plan_json),
                    lease_id=job.lease_id,
                    lease_expires_at=job.lease_expires_at,
                )
            except ValidationError as exc:
                queue.fail_unreadable(job, f"stored plan or settings unreadable: {exc}", now=now)


def find_job(db: Database, job_id: str) -> JobPublic | None:
    """A stored job as stored (no lease view), or None."""
    with db.read() as session:
        job = crud.get_job(session, job_id=job_id)
        return job_public(job) if job is not None else None


def calibrated_plan_json(plan_json: str, result: ValidationResult, job_id: str) -> str | None:
    """The plan document with its `calibrated` projection from a job's result, or None when the
    result cannot calibrate this plan (logged; the job still succeeds)."""
    document = Plan.model_validate_json(plan_json)
    try:
        calibrated = calibrate(document, result, job_id=job_id)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        log.warning("job %s: result cannot calibrate plan %s: %s", job_id, document.id, exc)
        return None
    return document.model_copy(update={"calibrated": calibrated}).model_dump_json()


def complete_job(
    db: Database, *, job_id: str, lease_id: str, result: ValidationResult, now: datetime
) -> JobPublic:
    """Store a job's result, and in the same transaction calibrate its plan (a throughput
    measurement) or store the device profile it measured (mode "profile")."""
    with db.write() as session:
        job = queue.complete(
            session, job_id=job_id, lease_id=lease_id, now=now, result_json=result.model_dump_json()
        )
        if result.measured_wall_clock_saving is not None:
            plan_json = crud.get_plan_json(session, plan_id=job.plan_id)
            assert plan_json is not None
            updated = calibrated_plan_json(plan_json, result, job.id)
            if updated is not None:
                crud.set_plan_json(session, plan_id=job.plan_id, plan_json=updated)
        if result.device_profile is not None:
            crud.upsert_device_profile(session, profile=result.device_profile, now=now)
        return job_public(job)
