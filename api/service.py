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
from api.documents import StoredJob, stored_job
from api.errors import FieldError, NotFoundError, plan_input_error
from api.models import JobRow
from planner import Plan, PlanInputError, PlanRequest, plan, resolve
from planner.calibration import calibrate
from planner.device import DeviceProfile
from planner.validation import ValidationResult, ValidationSettings
from wire.jobs import JobPublic
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
    field = [*loc, "hardware", "device_profile"]
    if profile_json is None:
        raise FieldError(
            field, f"no stored device profile {profile_id!r} (GET /v1/device-profiles lists them)"
        )
    try:
        profile = DeviceProfile.model_validate_json(profile_json)
    except ValidationError as exc:  # stored by an earlier version, whose bounds were wider
        raise FieldError(
            field,
            f"the stored device profile {profile_id!r} no longer reads ({_first_error(exc)}): "
            "an earlier version stored it; measure the device again (ltd profile) and name "
            "the new profile",
        ) from None
    hardware = request.hardware.model_copy(update={"device_profile": profile})
    return request.model_copy(update={"hardware": hardware})


def _first_error(exc: ValidationError) -> str:
    """A ValidationError's first complaint, without the input (it may be long)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"


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


def claimed_job(job: JobRow) -> JobPublic:
    """A job as a worker runs it: its documents read with today's models (a ValidationError
    when one no longer reads)."""
    stored = stored_job(job)
    return JobPublic(
        **stored.summary.model_dump(),
        settings=ValidationSettings.model_validate_json(stored.settings_json),
        result=None,  # a claimed job has none yet
    )


def claim_job(
    db: Database, *, worker_id: str, now: datetime, lease_seconds: float, lapse_at: datetime
) -> ClaimPublic | None:
    """The oldest queued job, claimed for `worker_id` under a fresh lease with its plan, or None
    when none waits; leases are judged as of `lapse_at` (`api.db.Availability`). A job whose
    stored plan or settings no longer read (stored by an older version) fails with the reason,
    and the next job is claimed: one bad row never stalls the queue."""
    with db.write() as session:
        while True:
            job = queue.claim_next_job(
                session,
                worker_id=worker_id,
                now=now,
                lease_seconds=lease_seconds,
                lapse_at=lapse_at,
            )
            if job is None:
                return None
            plan_json = crud.get_plan_json(session, plan_id=job.plan_id)
            assert plan_json is not None and job.lease_id and job.lease_expires_at
            try:
                return ClaimPublic(
                    job=claimed_job(job),
                    plan=Plan.model_validate_json(plan_json),
                    lease_id=job.lease_id,
                    lease_expires_at=job.lease_expires_at,
                )
            except ValidationError as exc:
                queue.fail_unreadable(job, f"stored plan or settings unreadable: {exc}", now=now)


def find_job(db: Database, job_id: str) -> StoredJob | None:
    """A stored job as stored (no lease view), or None."""
    with db.read() as session:
        job = crud.get_job(session, job_id=job_id)
        return stored_job(job) if job is not None else None


def calibrated_plan_json(plan_json: str, result: ValidationResult, job_id: str) -> str | None:
    """The plan document with its `calibrated` projection from a job's result, or None when the
    result cannot calibrate this plan, or the plan no longer reads (logged; the job still
    succeeds)."""
    try:
        document = Plan.model_validate_json(plan_json)
    except ValidationError as exc:
        log.warning("job %s: its stored plan no longer reads: %s", job_id, _first_error(exc))
        return None
    try:
        calibrated = calibrate(document, result, job_id=job_id)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        log.warning("job %s: result cannot calibrate plan %s: %s", job_id, document.id, exc)
        return None
    return document.model_copy(update={"calibrated": calibrated}).model_dump_json()


def complete_job(
    db: Database,
    *,
    job_id: str,
    lease_id: str,
    result: ValidationResult,
    now: datetime,
    lapse_at: datetime,
) -> StoredJob:
    """Store a job's result, and in the same transaction calibrate its plan (a throughput
    measurement) or store the device profile it measured (mode "profile")."""
    with db.write() as session:
        job = queue.complete(
            session,
            job_id=job_id,
            lease_id=lease_id,
            now=now,
            lapse_at=lapse_at,
            result_json=result.model_dump_json(),
        )
        if result.measured_wall_clock_saving is not None:
            plan_json = crud.get_plan_json(session, plan_id=job.plan_id)
            assert plan_json is not None
            updated = calibrated_plan_json(plan_json, result, job.id)
            if updated is not None:
                crud.set_plan_json(session, plan_id=job.plan_id, plan_json=updated)
        if result.device_profile is not None:
            crud.store_device_profile(session, profile=result.device_profile, now=now)
        return stored_job(job)
