"""The job queue: leases and state transitions, one small function per protocol step.

A worker claims the oldest queued job and gets a lease (`lease_id`, valid `lease_seconds`);
heartbeats renew it; the worker reports under it. A report whose lease is not the job's current
one (expired and requeued, reclaimed by another worker, or simply wrong) raises ConflictError and
changes nothing, because every function here runs inside one write transaction that the caller
rolls back on an exception.

Row locking: PostgreSQL takes queue rows with `FOR UPDATE SKIP LOCKED`, so concurrent claimers
never wait for each other's rows nor take the same one; SQLite ignores the clause, and its
`BEGIN IMMEDIATE` transactions (`api.db.Database.write`) serialise claims instead.

Times are aware UTC datetimes passed in by the caller (`now`), so tests control the clock.
Leases are judged as of `lapse_at` (default `now`): the API passes the start of a database outage
that ended less than a lease ago (`api.db.Availability`), so a lease that ran out while its
worker could not reach the database is not held against it: its next heartbeat renews it.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import crud
from api.errors import ConflictError, NotFoundError
from api.models import JobRow
from wire.jobs import JobState, JobSummary
from wire.limits import ERROR_CHARS

RUNNING = JobState.RUNNING.value
QUEUED = JobState.QUEUED.value


def _requeue(job: JobRow, *, now: datetime) -> None:
    job.state = QUEUED
    job.lease_id = None
    job.lease_expires_at = None
    job.worker_id = None
    job.progress = 0.0
    job.progress_message = None
    job.updated_at = now


def _finish(job: JobRow, state: JobState, *, now: datetime, error: str | None = None) -> None:
    job.state = state.value
    job.error = error
    job.lease_expires_at = None  # lease_id stays: a late heartbeat learns the outcome
    job.finished_at = now
    job.updated_at = now


def lease_lapse(job: JobRow | JobSummary, *, now: datetime) -> dict[str, Any] | None:
    """What a running job whose lease ran out by `now` becomes: requeued (its progress and
    worker cleared), or failed when its attempts are spent; None for any other job. Claims and
    writes apply it (`expire_leases`); reads show it without writing (`StoredJob.at`),
    so a GET never writes and never disagrees with the next claim (`crud.job_state_at` is
    the same rule in SQL, for filters and counts)."""
    if job.state != RUNNING or job.lease_expires_at is None or job.lease_expires_at > now:
        return None
    if job.attempts >= job.max_attempts:
        return {
            "state": JobState.FAILED.value,
            "error": f"lease expired after {job.attempts} attempts",
            "lease_expires_at": None,
            "finished_at": job.lease_expires_at,
            "updated_at": job.lease_expires_at,
        }
    return {
        "state": QUEUED,
        "error": f"lease of attempt {job.attempts} expired",
        "lease_id": None,
        "lease_expires_at": None,
        "worker_id": None,
        "progress": 0.0,
        "progress_message": None,
        "updated_at": job.lease_expires_at,
    }


def expire_leases(session: Session, *, now: datetime) -> int:
    """Apply `lease_lapse` to every running job whose lease ran out. Returns how many jobs were
    touched."""
    expired = session.scalars(
        select(JobRow)
        .where(JobRow.state == RUNNING, JobRow.lease_expires_at <= now)
        .with_for_update(skip_locked=True)
    ).all()
    for job in expired:
        for name, value in (lease_lapse(job, now=now) or {}).items():
            setattr(job, name, value)
    return len(expired)


def claim_next_job(
    session: Session,
    *,
    worker_id: str,
    now: datetime,
    lease_seconds: float,
    lapse_at: datetime | None = None,
) -> JobRow | None:
    """Claim the oldest queued job for `worker_id`: running, attempts + 1, a fresh lease."""
    expire_leases(session, now=lapse_at or now)
    job = session.scalars(
        select(JobRow)
        .where(JobRow.state == QUEUED)
        .order_by(JobRow.created_at, JobRow.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if job is None:
        return None
    job.state = RUNNING
    job.attempts += 1
    job.worker_id = worker_id
    job.lease_id = secrets.token_hex(16)
    job.lease_expires_at = now + timedelta(seconds=lease_seconds)
    job.progress = 0.0
    job.progress_message = None
    job.started_at = now
    job.updated_at = now
    return job


def _job(session: Session, job_id: str) -> JobRow:
    job = crud.get_job(session, job_id=job_id, for_update=True)
    if job is None:
        raise NotFoundError("job", job_id)
    return job


def _same_lease(job: JobRow, lease_id: str) -> bool:
    # Bytes, not str: compare_digest refuses non-ASCII str (a lease id a client made up).
    return job.lease_id is not None and hmac.compare_digest(
        job.lease_id.encode(), lease_id.encode()
    )


def _leased_job(session: Session, *, job_id: str, lease_id: str, now: datetime) -> JobRow:
    """The running job that `lease_id` currently holds as of `now` (a `lapse_at`), or
    ConflictError."""
    job = _job(session, job_id)
    if not _same_lease(job, lease_id):
        raise ConflictError(
            f"lease is not the current lease of job {job_id} "
            f"(it expired, or another worker holds the job)"
        )
    if job.state != RUNNING:
        raise ConflictError(f"job {job_id} is {job.state}, not running")
    assert job.lease_expires_at is not None
    if job.lease_expires_at <= now:
        raise ConflictError(f"lease of job {job_id} expired at {job.lease_expires_at}")
    return job


def heartbeat(
    session: Session,
    *,
    job_id: str,
    lease_id: str,
    progress: float,
    message: str | None,
    now: datetime,
    lease_seconds: float,
    lapse_at: datetime | None = None,
) -> JobRow:
    """Renew the lease and record progress (a fraction, 0..1). A job cancelled while running is
    returned unchanged: the caller tells the worker to stop."""
    job = _job(session, job_id)
    if job.state == JobState.CANCELLED.value and _same_lease(job, lease_id):
        return job
    job = _leased_job(session, job_id=job_id, lease_id=lease_id, now=lapse_at or now)
    job.progress = progress
    job.progress_message = message
    job.lease_expires_at = now + timedelta(seconds=lease_seconds)
    job.updated_at = now
    return job


def complete(
    session: Session,
    *,
    job_id: str,
    lease_id: str,
    result_json: str,
    now: datetime,
    lapse_at: datetime | None = None,
) -> JobRow:
    """Store the result of a running job: succeeded."""
    job = _leased_job(session, job_id=job_id, lease_id=lease_id, now=lapse_at or now)
    job.result_json = result_json
    job.progress = 1.0
    _finish(job, JobState.SUCCEEDED, now=now)
    return job


def fail(
    session: Session,
    *,
    job_id: str,
    lease_id: str,
    error: str,
    retryable: bool,
    now: datetime,
    lapse_at: datetime | None = None,
) -> JobRow:
    """A running job failed: back to the queue if retryable with attempts left, else failed."""
    job = _leased_job(session, job_id=job_id, lease_id=lease_id, now=lapse_at or now)
    if retryable and job.attempts < job.max_attempts:
        _requeue(job, now=now)
        job.error = error
    else:
        spent = "" if not retryable else f" (after {job.attempts} attempts)"
        _finish(job, JobState.FAILED, now=now, error=error + spent)
    return job


def release(
    session: Session,
    *,
    job_id: str,
    lease_id: str,
    now: datetime,
    lapse_at: datetime | None = None,
) -> JobRow:
    """A worker gives a running job back (e.g. shutting down): queued, its attempt uncounted."""
    job = _leased_job(session, job_id=job_id, lease_id=lease_id, now=lapse_at or now)
    _requeue(job, now=now)
    job.attempts = max(0, job.attempts - 1)
    return job


def fail_unreadable(job: JobRow, error: str, *, now: datetime) -> None:
    """A claimed job that cannot be handed out (its stored documents do not read): failed."""
    _finish(job, JobState.FAILED, now=now, error=error[:ERROR_CHARS])


def cancel(session: Session, *, job_id: str, now: datetime) -> JobRow:
    """A user cancels a queued or running job; a finished one raises ConflictError."""
    job = _job(session, job_id)
    if JobState(job.state).terminal:
        raise ConflictError(f"job {job_id} is already {job.state}")
    _finish(job, JobState.CANCELLED, now=now)
    return job
