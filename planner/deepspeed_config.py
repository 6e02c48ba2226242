"""Read and validate DeepSpeed's random-LTD and curriculum-learning configuration.

DeepSpeed accepts many broken `random_ltd` blocks and fails (or silently misbehaves) hours into a
run. Here every rule is checked up front, and each error names the key by its full path: the
types and bounds of the keys by the models below, when the request is read; the keys DeepSpeed
requires and the rules between keys by `parse_deepspeed_config`, which reads the typed models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.curriculum import CurriculumConfig, CurriculumScheduleConfig
from planner.errors import PlanInputError, input_error_from
from planner.schedule import RandomLTDConfig

ROOT = "deepspeed_config"
LTD = ROOT + ".data_efficiency.data_routing.random_ltd"
SCHEDULE = LTD + ".random_ltd_schedule"
SCHEDULE_CONFIG = SCHEDULE + ".schedule_config"
LEGACY_CL = ROOT + ".curriculum_learning"
CL = ROOT + ".data_efficiency.data_sampling.curriculum_learning"


# The shape of a DeepSpeed config, as far as the planner reads it: the keys it reads are typed
# (so the OpenAPI document states them, and a string where a count belongs is refused before
# planning); every other key DeepSpeed has is allowed and ignored. A key left out, or null, is
# not given (as DeepSpeed reads a null).
Count = Annotated[int, Field(ge=1, le=10**10)]


class _Open(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", allow_inf_nan=False)


class DSScheduleConfig(_Open):
    require_steps: Count | None = Field(None, description="Steps to reach max_value.")
    seq_per_step: Count | None = Field(None, description="Lengths are multiples of this.")


class DSRandomLTDSchedule(_Open):
    min_value: Count | None = Field(None, description="Reserved length at step 0.")
    max_value: Count | None = Field(None, description="Reserved length at the end.")
    schedule_type: str | None = Field(None, max_length=100, description="fixed_linear.")
    schedule_config: DSScheduleConfig | None = None


class DSRandomLTD(_Open):
    enabled: bool | None = None
    total_layer_num: Count | None = Field(None, description="The model's layers.")
    random_ltd_layer_num: int | None = Field(None, ge=0, le=10_000)
    random_ltd_layer_id: list[Annotated[int, Field(ge=-(10**6), le=10**6)]] | None = Field(
        None, max_length=10_000, description="Dropping layers, 0-based."
    )
    random_ltd_schedule: DSRandomLTDSchedule | None = None


class DSDataRouting(_Open):
    random_ltd: DSRandomLTD | None = None


class DSCurriculumSchedule(CurriculumScheduleConfig):
    """A curriculum's `schedule_config`: the keys the planner runs, with their bounds (those of
    CurriculumScheduleConfig, one place for each limit); any other key allowed and ignored."""

    model_config = ConfigDict(extra="allow")

    def planned(self) -> dict[str, object]:
        """The keys the planner runs, without the ignored ones."""
        return self.model_dump(exclude=set(self.model_extra or ()))


class DSCurriculum(_Open):
    """One curriculum schedule (a metric's, or the legacy top-level block)."""

    enabled: bool | None = None
    curriculum_type: str | None = Field(None, max_length=100, description="Legacy: seqlen.")
    min_difficulty: int | None = Field(None, ge=-(10**9), le=10**9)
    max_difficulty: int | None = Field(None, ge=-(10**9), le=10**9)
    schedule_type: str | None = Field(None, max_length=100)
    schedule_config: DSCurriculumSchedule | None = None


class DSCurriculumLearning(_Open):
    enabled: bool | None = None
    curriculum_metrics: dict[str, DSCurriculum] | None = Field(None, max_length=100)


class DSDataSampling(_Open):
    curriculum_learning: DSCurriculumLearning | None = None


class DSDataEfficiency(_Open):
    data_routing: DSDataRouting | None = None
    data_sampling: DSDataSampling | None = None


class DeepSpeedConfig(_Open):
    """A whole DeepSpeed JSON config; the planner reads the batch size, random-LTD
    (`data_efficiency.data_routing.random_ltd`) and curriculum learning."""

    train_batch_size: Count | None = Field(None, description="Global batch size G.")
    data_efficiency: DSDataEfficiency | None = None
    curriculum_learning: DSCurriculum | None = Field(None, description="The legacy CL block.")


@dataclass(frozen=True)
class DeepSpeedRandomLTD:
    """What a DeepSpeed config says about a plan: batch size, random-LTD (None: not
    configured), and curriculum learning over sequence length (None: none)."""

    train_batch_size: int | None
    total_layer_num: int | None
    config: RandomLTDConfig | None
    curriculum: CurriculumConfig | None = None
    reorder_metrics: tuple[str, ...] = ()  # CL metrics that only reorder data


T = TypeVar("T")


def _required(value: T | None, path: str) -> T:
    """A key DeepSpeed requires, named by its path when it is not given."""
    if value is None:
        raise PlanInputError(path, "missing (DeepSpeed requires it)")
    return value


def _required_block(block: T | None, path: str) -> T:
    """A block a random-LTD config needs, named by its path when it is not given."""
    if block is None:
        raise PlanInputError(path, "missing: a random-LTD DeepSpeed config needs this block")
    return block


def parse_deepspeed_config(cfg: DeepSpeedConfig) -> DeepSpeedRandomLTD:
    """The batch size, random-LTD schedule and curriculum of a whole DeepSpeed JSON config."""
    curriculum, reorder = parse_curriculum(cfg)
    routing = cfg.data_efficiency.data_routing if cfg.data_efficiency else None
    if (routing is None or routing.random_ltd is None) and (curriculum is not None or reorder):
        return DeepSpeedRandomLTD(cfg.train_batch_size, None, None, curriculum, reorder)  # CL only
    ltd = _random_ltd_block(cfg)
    if ltd.enabled is False:
        raise PlanInputError(f"{LTD}.enabled", "is false: DeepSpeed would drop no tokens")
    sched = _required_block(ltd.random_ltd_schedule, f"{LTD}.random_ltd_schedule")
    kind = "fixed_linear" if sched.schedule_type is None else sched.schedule_type
    if kind != "fixed_linear":
        raise PlanInputError(
            f"{SCHEDULE}.schedule_type",
            f"{kind!r} is rejected by DeepSpeed at run time (only 'fixed_linear' runs); "
            "plan it with the request's random_ltd field instead",
        )
    sched_cfg = _required_block(sched.schedule_config, SCHEDULE_CONFIG)
    layer_ids = _layer_ids(ltd)
    min_value = _required(sched.min_value, f"{SCHEDULE}.min_value")
    max_value = _required(sched.max_value, f"{SCHEDULE}.max_value")
    if min_value > max_value:
        raise PlanInputError(
            f"{SCHEDULE}.min_value", f"({min_value}) must not exceed max_value ({max_value})"
        )
    config = RandomLTDConfig(
        min_value=min_value,
        max_value=max_value,
        schedule_type="fixed_linear",
        require_steps=_required(sched_cfg.require_steps, f"{SCHEDULE_CONFIG}.require_steps"),
        seq_per_step=_required(sched_cfg.seq_per_step, f"{SCHEDULE_CONFIG}.seq_per_step"),
        layer_ids=layer_ids,
    )
    return DeepSpeedRandomLTD(
        cfg.train_batch_size, ltd.total_layer_num, config, curriculum, reorder
    )


def _random_ltd_block(cfg: DeepSpeedConfig) -> DSRandomLTD:
    """`data_efficiency.data_routing.random_ltd`; the first level not given is named."""
    efficiency = _required_block(cfg.data_efficiency, f"{ROOT}.data_efficiency")
    routing = _required_block(efficiency.data_routing, f"{ROOT}.data_efficiency.data_routing")
    return _required_block(routing.random_ltd, LTD)


def _layer_ids(ltd: DSRandomLTD) -> tuple[int, ...] | None:
    """`random_ltd_layer_id`, sorted (None: not given): no layer twice, as many as
    `random_ltd_layer_num` says, each a layer of `total_layer_num`."""
    ids, total, num = ltd.random_ltd_layer_id, ltd.total_layer_num, ltd.random_ltd_layer_num
    if ids is None:
        return None
    if len(set(ids)) != len(ids):
        raise PlanInputError(f"{LTD}.random_ltd_layer_id", f"repeats a layer: {ids}")
    if num is not None and num != len(ids):
        raise PlanInputError(
            f"{LTD}.random_ltd_layer_num",
            f"is {num} but random_ltd_layer_id lists {len(ids)} layers",
        )
    bad = [i for i in ids if i < 0 or (total is not None and i >= total)]
    if bad:
        raise PlanInputError(
            f"{LTD}.random_ltd_layer_id",
            f"ids {bad} are out of range 0..{(total or 1) - 1} (total_layer_num {total})",
        )
    return tuple(sorted(ids))


def parse_curriculum(cfg: DeepSpeedConfig) -> tuple[CurriculumConfig | None, tuple[str, ...]]:
    """Curriculum learning of a DeepSpeed config: the legacy top-level `curriculum_learning`
    block, or `data_efficiency.data_sampling.curriculum_learning` with its metrics. Returns the
    length curriculum (seqlen, seqlen_truncate or seqlen_reshape; None if none) and the names of
    metrics that only reorder data."""
    legacy = cfg.curriculum_learning
    if legacy is not None and legacy.enabled:
        if legacy.curriculum_type is None:
            raise PlanInputError(
                f"{LEGACY_CL}.curriculum_type",
                'missing: DeepSpeed fails at the first forward without it (use "seqlen")',
            )
        if legacy.curriculum_type != "seqlen":
            return None, (legacy.curriculum_type,)
        return _curriculum(legacy, "seqlen", LEGACY_CL), ()
    sampling = cfg.data_efficiency.data_sampling if cfg.data_efficiency else None
    block = sampling.curriculum_learning if sampling else None
    if block is None or not block.enabled:
        return None, ()
    if not block.curriculum_metrics:
        raise PlanInputError(f"{CL}.curriculum_metrics", "missing: name at least one metric")
    length, reorder = None, []
    for name, metric in block.curriculum_metrics.items():
        path = f"{CL}.curriculum_metrics.{name}"
        parsed = _curriculum(metric, name, path)
        if parsed.sets_length:
            if length is not None:
                raise PlanInputError(path, f"a second length metric beside {length.metric!r}")
            length = parsed
        else:
            reorder.append(name)
    return length, tuple(reorder)


def _curriculum(block: DSCurriculum, metric: str, path: str) -> CurriculumConfig:
    """One CL schedule, checked as DeepSpeed does and beyond (CurriculumConfig's rules between
    keys); errors name the key's path."""
    data = {
        "metric": metric,
        "min_difficulty": _required(block.min_difficulty, f"{path}.min_difficulty"),
        "max_difficulty": _required(block.max_difficulty, f"{path}.max_difficulty"),
        "schedule_type": _required(block.schedule_type, f"{path}.schedule_type"),
        "schedule_config": block.schedule_config.planned() if block.schedule_config else {},
    }
    try:
        return CurriculumConfig.model_validate(data)
    except ValidationError as exc:
        raise input_error_from(exc, prefix=path) from None
