"""Request and response bodies of the REST API (names follow `<Thing>Create`, `<Thing>Public`,
`<Things>Public(data, count)`). Plan documents are `planner.Plan`; plan requests `PlanRequest`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner import CheckLimits, Plan, PlanRequest
from planner.device import DeviceProfile
from planner.jobs import JobPublic
from planner.models import kept_to
from planner.validation import ValidationResult, ValidationSettings

# A stored id in a path (`p_...`, `j_...`, `dp_...`): as long as the database's key columns.
Id = Annotated[str, Path(min_length=1, max_length=64, description="A stored id.")]

MAX_OFFSET = 10**9  # list pages: beyond any table this service holds, inside every integer type

PLAN_REQUEST_EXAMPLE: dict[str, Any] = {
    "model": "gpt3-125m",
    "train_batch_size": 256,
    "train_tokens": 10_000_000_000,
    "hardware": {"gpu": "a100", "num_gpus": 8, "price_per_gpu_hour": 2.0},
}


class PlansPublic(BaseModel):
    data: list[Plan]
    count: int = Field(description="Plans stored in all (not only on this page).")


class CheckCreate(BaseModel):
    """A CI budget gate: plan `request`, hold it to `limits`, optionally against a stored plan."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "request": PLAN_REQUEST_EXAMPLE,
                    "limits": {"max_gpu_hours": 5000, "min_flops_saving": 0.2},
                }
            ]
        },
    )

    request: PlanRequest
    limits: CheckLimits = Field(default_factory=CheckLimits)
    compare_plan_id: str | None = Field(
        None, max_length=64, description="A stored plan to compare with (limit `max_growth`)."
    )


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

    plan_id: str | None = Field(None, max_length=64)
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


# The worker protocol ---------------------------------------------------------------------------


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_id: str = Field(min_length=1, max_length=200, description="Names the worker (logs).")


class ClaimPublic(BaseModel):
    """A claimed job: the worker owns it until `lease_expires_at` unless it heartbeats."""

    job: JobPublic
    plan: Plan
    lease_id: str
    lease_expires_at: datetime


class LeaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lease_id: str = Field(min_length=1, max_length=64)


class HeartbeatRequest(LeaseBody):
    progress: float = Field(ge=0, le=1, allow_inf_nan=False, description="Fraction done, 0..1.")
    message: Annotated[str | None, kept_to(2000)] = Field(
        None, description="What the worker is doing (kept to 2,000 characters)."
    )


class HeartbeatPublic(BaseModel):
    cancelled: bool = Field(description="True: the job was cancelled; stop and report nothing.")
    lease_expires_at: datetime | None


class CompleteRequest(LeaseBody):
    result: ValidationResult


class FailRequest(LeaseBody):
    error: Annotated[str, kept_to(20_000)] = Field(
        min_length=1, description="What went wrong (kept to 20,000 characters)."
    )
    retryable: bool = Field(False, description="True: a later attempt may succeed.")


class ReleaseRequest(LeaseBody):
    pass


# Device profiles ---------------------------------------------------------------------------------


class DeviceProfilePublic(BaseModel):
    """A stored device profile: use its `id` as a plan request's `hardware.device_profile`."""

    id: str
    profile: DeviceProfile
    created_at: datetime
    updated_at: datetime


class DeviceProfilesPublic(BaseModel):
    data: list[DeviceProfilePublic]
    count: int = Field(description="Profiles stored in all.")
