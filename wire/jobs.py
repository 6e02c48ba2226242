"""Validation jobs as every party sees them: the state machine, the job document, and the
bodies that submit and list jobs.

The API stores and serves jobs, the worker runs them, the CLI follows them; all three read the
same `JobState` and `JobPublic`, defined here once (pure pydantic, no database).
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner import PlanRequest
from planner.validation import ValidationResult, ValidationSettings
from wire.limits import ID_CHARS
from wire.plans import PLAN_REQUEST_EXAMPLE


class JobState(enum.StrEnum):
    """A validation job's life: ``queued -> running -> succeeded | failed | cancelled``.

    - ``queued``: waiting for a worker; a running job returns here when its worker releases it,
      fails with a retryable error, or its lease expires, while attempts remain.
    - ``running``: claimed by a worker under a lease (``lease_id``, ``lease_expires_at``).
    - ``succeeded``: the worker reported a result; the plan shows its calibrated projection.
    - ``failed``: a non-retryable error, or attempts exhausted (``error`` says why).
    - ``cancelled``: cancelled by a user while queued or running; a running worker learns it
      from its next heartbeat.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class JobSummary(BaseModel):
    """A validation job but its two documents (settings, result): what the API reads from a
    job's columns (the lease id stays with the worker)."""

    id: str
    plan_id: str
    owner: str | None = Field(
        None,
        description="The owner of the API key that submitted it (a name of LTD_API_KEYS); "
        "None: submitted while the service had no keys.",
    )
    state: JobState
    attempts: int = Field(description="Claims so far (a released claim is not counted).")
    max_attempts: int
    progress: float = Field(description="Fraction done, 0..1, as the worker last reported.")
    progress_message: str | None
    error: str | None
    worker_id: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class JobPublic(JobSummary):
    """A validation job as clients see it (the lease id stays with the worker). Only its owner
    and admin keys see it; a job an earlier version stored shows its settings and result as
    that version wrote them."""

    settings: ValidationSettings
    result: ValidationResult | None


class JobCreate(BaseModel):
    """A validation job for a stored plan (`plan_id`) or for a plan request (`plan_request`,
    planned and stored first): exactly one of the two."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "plan_request": PLAN_REQUEST_EXAMPLE,
                    "settings": {"mode": "throughput"},
                }
            ]
        },
    )

    plan_id: str | None = Field(None, max_length=ID_CHARS)
    plan_request: PlanRequest | None = None
    settings: ValidationSettings = Field(default_factory=ValidationSettings)

    @model_validator(mode="after")
    def _exactly_one_plan(self) -> JobCreate:
        if (self.plan_id is None) == (self.plan_request is None):
            raise ValueError("give exactly one of plan_id and plan_request")
        return self


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int = Field(description="Jobs matching the filter in all.")
