"""Stored jobs and device profiles as the API serves them: whatever version stored them.

A job's settings and result, and a device profile, are JSON documents stored as text, exactly as
the version that stored them wrote them. Today's models are stricter than some earlier versions'
(bounds added to fields, NaN refused: the first release stored a diverged run's NaN loss as
`null`), so reads never validate them again: like plans (`api.routes.plans`), they are served as
stored, spliced into the typed part of the answer, which comes from the row's own columns. A read
thus never fails on a row an earlier version wrote, and costs no parse of its documents.

Where the API computes with a stored document (a claim hands a job to a worker, a plan names a
stored profile, the report page draws a result) it reads it with today's model, and a document
that no longer reads is refused there, with the reason, never answered with a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel

from api import queue
from api.models import DeviceProfileRow, JobRow
from wire.jobs import JobState, JobSummary


@dataclass(frozen=True)
class StoredJob:
    """A job as stored: its columns, typed (`summary`), and its two documents as their text."""

    summary: JobSummary
    settings_json: str
    result_json: str | None

    @property
    def owner(self) -> str | None:
        return self.summary.owner

    def at(self, lapse_at: datetime) -> StoredJob:
        """This job as of `lapse_at`: a lease that ran out by then shows as its outcome
        (`queue.lease_lapse`), without writing it; itself when nothing lapsed."""
        lapse = queue.lease_lapse(self.summary, now=lapse_at)
        if lapse is None:
            return self
        lapse.pop("lease_id", None)
        lapse["state"] = JobState(lapse["state"])
        return replace(self, summary=self.summary.model_copy(update=lapse))

    def json(self) -> str:
        """The job as `wire.jobs.JobPublic` JSON, its documents as stored."""
        columns = self.summary.model_dump_json()
        result = self.result_json if self.result_json is not None else "null"
        return f'{columns[:-1]},"settings":{self.settings_json},"result":{result}}}'


def stored_job(job: JobRow) -> StoredJob:
    summary = JobSummary(
        id=job.id,
        plan_id=job.plan_id,
        owner=job.owner,
        state=JobState(job.state),
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        progress=job.progress,
        progress_message=job.progress_message,
        error=job.error,
        worker_id=job.worker_id,
        lease_expires_at=job.lease_expires_at,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
    )
    return StoredJob(summary, job.settings_json, job.result_json)


def jobs_json(jobs: list[StoredJob], count: int) -> str:
    """A page of jobs as `wire.jobs.JobsPublic` JSON."""
    return '{"data":[' + ",".join(job.json() for job in jobs) + f'],"count":{count}}}'


class _ProfileColumns(BaseModel):
    """`wire.profiles.DeviceProfilePublic` but its profile."""

    id: str
    created_at: datetime
    updated_at: datetime


def device_profile_json(row: DeviceProfileRow) -> str:
    """A stored profile as `wire.profiles.DeviceProfilePublic` JSON, the profile as stored."""
    columns = _ProfileColumns(id=row.id, created_at=row.created_at, updated_at=row.updated_at)
    return f'{columns.model_dump_json()[:-1]},"profile":{row.profile_json}}}'


def device_profiles_json(rows: list[DeviceProfileRow], count: int) -> str:
    """A page of profiles as `wire.profiles.DeviceProfilesPublic` JSON."""
    return '{"data":[' + ",".join(map(device_profile_json, rows)) + f'],"count":{count}}}'
