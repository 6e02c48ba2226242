"""The DeepSpeed config keys of a plan, ready to paste into a DeepSpeed JSON config.

`export_deepspeed_config` writes a plan's random-LTD schedule (and its curriculum, if any) with
DeepSpeed's key names; reading the export back (`planner.deepspeed_config`) gives the same plan.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from planner.curriculum import CurriculumConfig
from planner.schedule import RandomLTDConfig


class _Block(BaseModel):
    """A block of DeepSpeed's JSON: keys left unset (None) are left out, as DeepSpeed expects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_serializer(mode="wrap")
    def _without_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class DeepSpeedScheduleConfig(_Block):
    require_steps: int
    seq_per_step: int


class DeepSpeedSchedule(_Block):
    min_value: int
    max_value: int
    schedule_type: str = "fixed_linear"
    schedule_config: DeepSpeedScheduleConfig


class DeepSpeedRandomLTDBlock(_Block):
    """`data_efficiency.data_routing.random_ltd`, with DeepSpeed's key names."""

    enabled: bool = True
    total_layer_num: int
    random_ltd_layer_num: int
    random_ltd_layer_id: list[int]
    model_mask_name: str = "attention_mask"
    model_type: str = Field(description="decoder or encoder")
    hidden_state_order: str = "batch_seq_dim"
    random_ltd_schedule: DeepSpeedSchedule


class DeepSpeedDataRouting(_Block):
    enabled: bool = True
    random_ltd: DeepSpeedRandomLTDBlock


class DeepSpeedCurriculumMetric(_Block):
    """One metric of `data_sampling.curriculum_learning.curriculum_metrics`."""

    difficulty_type: str = "value"
    clustering_type: str = "single_cluster"
    min_difficulty: int
    max_difficulty: int
    schedule_type: str
    schedule_config: dict[str, int | list[int]]


class DeepSpeedCurriculumLearning(_Block):
    enabled: bool = True
    curriculum_metrics: dict[str, DeepSpeedCurriculumMetric]


class DeepSpeedDataSampling(_Block):
    enabled: bool = True
    curriculum_learning: DeepSpeedCurriculumLearning


class DeepSpeedDataEfficiency(_Block):
    enabled: bool = True
    data_sampling: DeepSpeedDataSampling | None = None
    data_routing: DeepSpeedDataRouting | None = None


class DeepSpeedLegacyCurriculum(_Block):
    """The legacy top-level `curriculum_learning` block (curriculum_type "seqlen")."""

    enabled: bool = True
    curriculum_type: str = "seqlen"
    min_difficulty: int
    max_difficulty: int
    schedule_type: str
    schedule_config: dict[str, int | list[int]]


class DeepSpeedExport(_Block):
    """The DeepSpeed config keys of a plan: paste them into a DeepSpeed JSON config."""

    train_batch_size: int
    curriculum_learning: DeepSpeedLegacyCurriculum | None = None
    data_efficiency: DeepSpeedDataEfficiency


def _curriculum_block(cl: CurriculumConfig) -> dict[str, Any]:
    return {
        "min_difficulty": cl.min_difficulty,
        "max_difficulty": cl.max_difficulty,
        "schedule_type": cl.schedule_type,
        "schedule_config": cl.schedule_config.model_dump(exclude_none=True),
    }


def export_deepspeed_config(
    cfg: RandomLTDConfig,
    *,
    num_layers: int,
    layer_ids: tuple[int, ...],
    train_batch_size: int,
    model_type: str = "decoder",
    curriculum: CurriculumConfig | None = None,
) -> DeepSpeedExport:
    """The DeepSpeed config keys that reproduce a plan's random-LTD run (and its curriculum:
    the legacy block for metric "seqlen", else data_sampling's)."""
    schedule = DeepSpeedSchedule(
        min_value=cfg.min_value,
        max_value=cfg.max_value,
        schedule_config=DeepSpeedScheduleConfig(
            require_steps=cfg.require_steps, seq_per_step=cfg.seq_per_step
        ),
    )
    block = DeepSpeedRandomLTDBlock(
        total_layer_num=num_layers,
        random_ltd_layer_num=len(layer_ids),
        random_ltd_layer_id=list(layer_ids),
        model_type=model_type,
        random_ltd_schedule=schedule,
    )
    routing = DeepSpeedDataRouting(random_ltd=block) if layer_ids else None  # none: CL only
    legacy = sampling = None
    if curriculum is not None and curriculum.metric == "seqlen":
        legacy = DeepSpeedLegacyCurriculum(**_curriculum_block(curriculum))
    elif curriculum is not None:
        metric = DeepSpeedCurriculumMetric(**_curriculum_block(curriculum))
        sampling = DeepSpeedDataSampling(
            curriculum_learning=DeepSpeedCurriculumLearning(
                curriculum_metrics={curriculum.metric: metric}
            )
        )
    return DeepSpeedExport(
        train_batch_size=train_batch_size,
        curriculum_learning=legacy,
        data_efficiency=DeepSpeedDataEfficiency(data_sampling=sampling, data_routing=routing),
    )
