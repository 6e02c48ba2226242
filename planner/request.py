"""What a user asks the planner for: `PlanRequest`, the same body for REST and the CLI.

Every field says what it is and in which unit; a bad value raises an error that names the field.
The CLI derives its flags from these fields (`ltd/flags.py`), so a new field appears in the CLI,
the API and the OpenAPI document at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner.curriculum import CurriculumConfig
from planner.deepspeed_config import DeepSpeedConfig
from planner.errors import input_error_from
from planner.hardware import HardwareConfig
from planner.hf_config import ModelSpec
from planner.lr import LRConfig
from planner.models import MAX_LAYERS, MAX_SEQ_LEN
from planner.schedule import MAX_REQUIRE_STEPS, ScheduleType

MAX_TRAIN_TOKENS = 10**15  # 1,000T tokens: ~30x the largest runs published; more is a typo
MAX_TRAIN_STEPS = 10**10
MAX_BATCH_SIZE = 10**8


class RandomLTDRequest(BaseModel):
    """The request's schedule: any field left out comes from the DeepSpeed config, else from the
    defaults (min_value S/16 rounded to seq_per_step, max_value S, 16 a step, over half the
    baseline's steps, all layers but the first and the last)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enabled: bool | None = Field(
        None, description="False: no token dropping (a curriculum-only plan); default on."
    )
    min_value: int | None = Field(
        None, ge=1, le=MAX_SEQ_LEN, description="Reserved length at step 0, tokens."
    )
    max_value: int | None = Field(
        None, ge=1, le=MAX_SEQ_LEN, description="Reserved length at the end, tokens."
    )
    schedule_type: ScheduleType | None = Field(
        None, description="fixed_linear, fixed_root or constant."
    )
    require_steps: int | None = Field(
        None, ge=1, le=MAX_REQUIRE_STEPS, description="Steps to reach max_value."
    )
    seq_per_step: int | None = Field(
        None, ge=1, le=MAX_SEQ_LEN, description="Lengths are multiples of this."
    )
    root_degree: int | None = Field(None, ge=1, le=100, description="fixed_root's degree.")
    layer_ids: tuple[Annotated[int, Field(ge=0, le=MAX_LAYERS)], ...] | None = Field(
        None, max_length=MAX_LAYERS, description="Dropping layers, 0-based."
    )


def _given(*fields: str, value: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON Schema: every one of `fields` is present and not null (or equals `value`)."""
    shape = value or {"not": {"type": "null"}}
    return {"required": list(fields), "properties": {f: shape for f in fields}}


def _budget_rules(schema: dict[str, Any]) -> None:
    """`_one_budget_each`, in the OpenAPI schema too: exactly one of train_tokens and
    train_steps, at most one of the three ways to size the random-LTD run."""
    equal = {"const": True}
    schema["allOf"] = [
        {"oneOf": [_given("train_tokens"), _given("train_steps")]},
        {
            "not": {
                "anyOf": [
                    _given("ltd_train_tokens", "ltd_train_steps"),
                    {
                        "allOf": [
                            _given("ltd_train_tokens"),
                            _given("ltd_equal_compute", value=equal),
                        ]
                    },
                    {
                        "allOf": [
                            _given("ltd_train_steps"),
                            _given("ltd_equal_compute", value=equal),
                        ]
                    },
                ]
            }
        },
    ]


class PlanRequest(BaseModel):
    """What to plan. Exactly one of train_tokens / train_steps sets the baseline; at most one of
    ltd_train_tokens / ltd_train_steps / ltd_equal_compute sets the random-LTD run (default: the
    baseline's number of steps)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, json_schema_extra=_budget_rules
    )

    model: ModelSpec = Field(
        ...,
        description="Preset name, explicit shape, or a Hugging Face config.json object.",
        examples=["gpt3-1.3b"],
    )
    deepspeed_config: DeepSpeedConfig | None = Field(
        None, description="A whole DeepSpeed config: train_batch_size and the random_ltd block."
    )
    train_batch_size: int | None = Field(
        None, ge=1, le=MAX_BATCH_SIZE, description="Global batch size G, in sequences."
    )
    random_ltd: RandomLTDRequest | None = Field(
        None, description="The drop schedule (DeepSpeed's key names); partial is fine."
    )
    train_tokens: int | None = Field(
        None, ge=1, le=MAX_TRAIN_TOKENS, description="Baseline's token budget."
    )
    train_steps: int | None = Field(
        None, ge=1, le=MAX_TRAIN_STEPS, description="Baseline's optimizer steps."
    )
    ltd_train_tokens: int | None = Field(
        None,
        ge=1,
        le=MAX_TRAIN_TOKENS,
        description="Random-LTD run's budget in effective tokens (Megatron-DeepSpeed's counter).",
    )
    ltd_train_steps: int | None = Field(
        None, ge=1, le=MAX_TRAIN_STEPS, description="Random-LTD run's optimizer steps."
    )
    ltd_equal_compute: bool = Field(
        False, description="Random-LTD run stops at the baseline's LayerTokens."
    )
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    lr: LRConfig | None = Field(None, description="The LayerToken learning-rate schedule.")
    curriculum: CurriculumConfig | None = Field(
        None,
        description="Curriculum learning over sequence length (DeepSpeed's data efficiency), "
        "composed with random-LTD; overrides the deepspeed_config's.",
    )

    @model_validator(mode="after")
    def _one_budget_each(self) -> PlanRequest:
        if (self.train_tokens is None) == (self.train_steps is None):
            raise ValueError("train_tokens: give exactly one of train_tokens and train_steps")
        ltd = [
            self.ltd_train_tokens is not None,
            self.ltd_train_steps is not None,
            self.ltd_equal_compute,
        ]
        if sum(ltd) > 1:
            raise ValueError(
                "ltd_train_tokens: give at most one of ltd_train_tokens, ltd_train_steps and "
                "ltd_equal_compute"
            )
        return self


def parse_request(data: dict[str, Any]) -> PlanRequest:
    """Validate a request's JSON form; pydantic's errors become a PlanInputError."""
    try:
        return PlanRequest.model_validate(data)
    except ValidationError as exc:
        raise input_error_from(exc) from None
