"""Data access for plans, jobs and device profiles: every query the API runs, keyword-only.

The job queue's state transitions (claim, heartbeat, complete, ...) live in `api.queue`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import row_key, touch
from api.models import DeviceProfileRow, JobRow, JobState, PlanRow
from planner.device import DeviceProfile

# Plans -----------------------------------------------------------------------------------------


def get_plan_json(session: Session, *, plan_id: str) -> str | None:
    """The stored plan document (JSON text), or None."""
    return session.scalar(select(PlanRow.plan_json).where(PlanRow.id == plan_id))


def insert_plan(
    session: Session, *, plan_id: str, request_json: str, plan_json: str, now: datetime
) -> None:
    session.add(PlanRow(id=plan_id, request_json=request_json, plan_json=plan_json, created_at=now))
    session.flush()


def set_plan_json(session: Session, *, plan_id: str, plan_json: str) -> None:
    result = session.execute(
        update(PlanRow).where(PlanRow.id == plan_id).values(plan_json=plan_json)
    )
    matched = getattr(result, "rowcount", 0)  # a CursorResult's: rows the UPDATE matched
    written = plan_json if matched == 1 else None  # (cached as written: api.db.touch)
    touch(session, row_key(PlanRow.__tablename__, plan_id), written)


def list_plan_json(session: Session, *, limit: int, offset: int) -> tuple[list[str], int]:
    """A page of plan documents, newest first, and the number of plans in all."""
    rows = session.scalars(
        select(PlanRow.plan_json)
        .order_by(PlanRow.created_at.desc(), PlanRow.id)
        .limit(limit)
        .offset(offset)
    ).all()
    count = session.scalar(select(func.count()).select_from(PlanRow)) or 0
    return list(rows), count


# Jobs ------------------------------------------------------------------------------------------


def new_job_id() -> str:
    return "j_" + uuid.uuid4().hex


def insert_job(
    session: Session,
    *,
    plan_id: str,
    settings_json: str,
    max_attempts: int,
    now: datetime,
    owner: str | None = None,
) -> JobRow:
    """A queued job for a stored plan, of `owner` (None: submitted to an open service)."""
    job = JobRow(
        id=new_job_id(),
        plan_id=plan_id,
        owner=owner,
        state=JobState.QUEUED.value,
        settings_json=settings_json,
        attempts=0,
        max_attempts=max_attempts,
        progress=0.0,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, *, job_id: str, for_update: bool = False) -> JobRow | None:
    """A job by id; `for_update` locks its row until the transaction ends (PostgreSQL)."""
    query = select(JobRow).where(JobRow.id == job_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


_RUNNING = JobRow.state == JobState.RUNNING.value
_SPENT = JobRow.attempts >= JobRow.max_attempts


def _lapsed(now: datetime) -> ColumnElement[bool]:
    return and_(_RUNNING, JobRow.lease_expires_at <= now)


def job_state_at(now: datetime) -> ColumnElement[str]:
    """A job's state as readers see it at `now`: a running job whose lease ran out is queued
    again, or failed when its attempts are spent (`api.queue.lease_lapse`, in SQL)."""
    return case(
        (and_(_lapsed(now), _SPENT), JobState.FAILED.value),
        (_lapsed(now), JobState.QUEUED.value),
        else_=JobRow.state,
    )


def in_state_at(state: JobState, now: datetime) -> ColumnElement[bool]:
    """`job_state_at(now) == state`, written so that the (state, created_at) index serves it."""
    if state == JobState.RUNNING:
        lease_left = or_(JobRow.lease_expires_at.is_(None), JobRow.lease_expires_at > now)
        return and_(_RUNNING, lease_left)
    if state == JobState.QUEUED:
        return or_(JobRow.state == state.value, and_(_lapsed(now), ~_SPENT))
    if state == JobState.FAILED:
        return or_(JobRow.state == state.value, and_(_lapsed(now), _SPENT))
    return JobRow.state == state.value


def list_jobs(
    session: Session,
    *,
    state: JobState | None,
    limit: int,
    offset: int,
    now: datetime,
    owner: str | None = None,
) -> tuple[list[JobRow], int]:
    """A page of jobs (newest first), optionally in one state as of `now` (`job_state_at`)
    and only of one `owner` (None: every owner's), and how many match in all."""
    query, count = select(JobRow), select(func.count()).select_from(JobRow)
    if owner is not None:
        query, count = query.where(JobRow.owner == owner), count.where(JobRow.owner == owner)
    if state is not None:
        query, count = query.where(in_state_at(state, now)), count.where(in_state_at(state, now))
    rows = session.scalars(
        query.order_by(JobRow.created_at.desc(), JobRow.id).limit(limit).offset(offset)
    ).all()
    return list(rows), session.scalar(count) or 0


def count_jobs_by_state(session: Session, *, now: datetime) -> dict[JobState, int]:
    """Jobs per state as of `now` (`job_state_at`; every state present, zero when none)."""
    state = job_state_at(now)
    rows = session.execute(select(state, func.count()).group_by(state)).all()
    counts = {s: 0 for s in JobState}
    for value, n in rows:
        counts[JobState(value)] = n
    return counts


def latest_succeeded_job(session: Session, *, plan_id: str) -> JobRow | None:
    """The most recently finished successful validation job of a plan, or None."""
    return session.scalars(
        select(JobRow)
        .where(JobRow.plan_id == plan_id, JobRow.state == JobState.SUCCEEDED.value)
        .order_by(JobRow.finished_at.desc())
        .limit(1)
    ).first()


# Device profiles --------------------------------------------------------------------------------


def get_device_profile(session: Session, *, profile_id: str) -> DeviceProfileRow | None:
    return session.get(DeviceProfileRow, profile_id)


def store_device_profile(
    session: Session, *, profile: DeviceProfile, now: datetime
) -> DeviceProfileRow:
    """Store a profile under its id, a hash of its content, unless it is stored already: a
    stored profile never changes (a new measurement has new numbers, so a new id)."""
    row = session.get(DeviceProfileRow, profile.id)
    if row is not None:
        return row
    row = DeviceProfileRow(
        id=profile.id, device_name=profile.device_name, dtype=profile.dtype,
        torch_version=profile.torch_version, profile_json=profile.model_dump_json(),
        created_at=now, updated_at=now,
    )  # fmt: skip
    try:
        with session.begin_nested():  # the same profile stored by a concurrent request first
            session.add(row)
    except IntegrityError:
        stored = session.get(DeviceProfileRow, profile.id)
        assert stored is not None
        return stored
    return row


def list_device_profiles(
    session: Session,
    *,
    limit: int,
    offset: int,
    device_name: str | None = None,
    dtype: str | None = None,
) -> tuple[list[DeviceProfileRow], int]:
    """A page of profiles, the most recently measured first (`updated_at`: when the numbers
    were stored), optionally of one device name and dtype (the first of those is the latest
    measurement), and how many match in all."""
    query, count = select(DeviceProfileRow), select(func.count()).select_from(DeviceProfileRow)
    wanted = ((DeviceProfileRow.device_name, device_name), (DeviceProfileRow.dtype, dtype))
    for column, value in wanted:
        if value is not None:
            query, count = query.where(column == value), count.where(column == value)
    rows = session.scalars(
        query.order_by(DeviceProfileRow.updated_at.desc(), DeviceProfileRow.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), session.scalar(count) or 0
