"""The worker protocol's bodies (DESIGN.md, "Jobs and workers"): what a worker sends to claim,
renew, report and give back a job, and what the API answers.

    POST /v1/worker/claim                ClaimRequest      -> 200 ClaimPublic | 204
    POST /v1/worker/jobs/{id}/heartbeat  HeartbeatRequest  -> 200 HeartbeatPublic
    POST /v1/worker/jobs/{id}/complete   CompleteRequest   -> 200 JobPublic
    POST /v1/worker/jobs/{id}/fail       FailRequest       -> 200 JobPublic
    POST /v1/worker/jobs/{id}/release    ReleaseRequest    -> 200 JobPublic

Free text (a progress message, a failure's traceback) is kept to its limit by the model rather
than refused, on whichever side builds it: a worker never loses a report to its length.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from planner import Plan
from planner.models import kept_to
from planner.validation import ValidationResult
from wire.jobs import JobPublic
from wire.limits import ERROR_CHARS, LEASE_ID_CHARS, MESSAGE_CHARS, WORKER_ID_CHARS


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_id: str = Field(
        min_length=1, max_length=WORKER_ID_CHARS, description="Names the worker (logs)."
    )


class ClaimPublic(BaseModel):
    """A claimed job: the worker owns it until `lease_expires_at` unless it heartbeats."""

    job: JobPublic
    plan: Plan
    lease_id: str
    lease_expires_at: datetime


class LeaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lease_id: str = Field(min_length=1, max_length=LEASE_ID_CHARS)


class HeartbeatRequest(LeaseBody):
    progress: float = Field(ge=0, le=1, allow_inf_nan=False, description="Fraction done, 0..1.")
    message: Annotated[str | None, kept_to(MESSAGE_CHARS)] = Field(
        None, description=f"What the worker is doing (kept to {MESSAGE_CHARS:,} characters)."
    )


class HeartbeatPublic(BaseModel):
    cancelled: bool = Field(description="True: the job was cancelled; stop and report nothing.")
    lease_expires_at: datetime | None


class CompleteRequest(LeaseBody):
    result: ValidationResult


class FailRequest(LeaseBody):
    error: Annotated[str, kept_to(ERROR_CHARS)] = Field(
        min_length=1, description=f"What went wrong (kept to {ERROR_CHARS:,} characters)."
    )
    retryable: bool = Field(False, description="True: a later attempt may succeed.")


class ReleaseRequest(LeaseBody):
    pass
