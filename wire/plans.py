"""Plan and check bodies: `PlansPublic` (a page of stored plans) and `CheckCreate` (a CI budget
gate). A plan request is `planner.PlanRequest`, a plan `planner.Plan`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from planner import CheckLimits, Plan, PlanRequest
from wire.limits import ID_CHARS

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
        None, max_length=ID_CHARS, description="A stored plan to compare with (limit `max_growth`)."
    )
