"""Validation jobs as every party sees them: the state machine and the job document.

The API stores and serves jobs, the worker runs them, the CLI follows them; all three read the
same `JobState` and `JobPublic`, defined here once (pure pydantic, no database).
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, Field

from planner.validation import ValidationResult, ValidationSettings


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


class JobPublic(BaseModel):
    """A validation job as clients see it (the lease id stays with the worker)."""

    id: str
    plan_id: str
    state: JobState
    attempts: int = Field(description="Claims so far (a released claim is not counted).")
    max_attempts: int
    progress: float = Field(description="Fraction done, 0..1, as the worker last reported.")
    progress_message: str | None
    settings: ValidationSettings
    result: ValidationResult | None
    error: str | None
    worker_id: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
