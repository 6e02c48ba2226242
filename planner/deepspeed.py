"""Read, validate and write DeepSpeed's random-LTD configuration.

DeepSpeed accepts many broken `random_ltd` blocks and fails (or silently misbehaves) hours into a
run. Here every rule is checked up front, and each error names the key by its full path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from planner.curriculum import CurriculumConfig, CurriculumScheduleConfig
from planner.errors import PlanInputError, input_error_from
from planner.schedule import RandomLTDConfig

ROOT = "deepspeed_config"
LTD_PATH = ("data_efficiency", "data_routing", "random_ltd")
LTD = ROOT + "." + ".".join(LTD_PATH)
SCHEDULE = LTD + ".random_ltd_schedule"


# The shape of a DeepSpeed config, as far as the planner reads it: the keys it reads are typed
# (so the OpenAPI document states them, and a string where a count belongs is refused before
# planning); every other key DeepSpeed has is allowed and ignored. `parse_deepspeed_config`
# then checks the rules between keys, naming each key by its full path.
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


class DSCurriculum(_Open):
    """One curriculum schedule (a metric's, or the legacy top-level block)."""

    enabled: bool | None = None
    curriculum_type: str | None = Field(None, max_length=100, description="Legacy: seqlen.")
    min_difficulty: int | None = Field(None, ge=-(10**9), le=10**9)
    max_difficulty: int | None = Field(None, ge=-(10**9), le=10**9)
    schedule_type: str | None = Field(None, max_length=100)
    schedule_config: dict[str, Any] | None = None


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

    def as_dict(self) -> dict[str, Any]:
        """The config as `parse_deepspeed_config` reads it (unset keys left out)."""
        return self.model_dump(exclude_unset=True)


@dataclass(frozen=True)
class DeepSpeedRandomLTD:
    """What a DeepSpeed config says about a plan: batch size, random-LTD (None: not
    configured), and curriculum learning over sequence length (None: none)."""

    train_batch_size: int | None
    total_layer_num: int | None
    config: RandomLTDConfig | None
    curriculum: CurriculumConfig | None = None
    reorder_metrics: tuple[str, ...] = ()  # CL metrics that only reorder data


def _int(block: dict[str, Any], key: str, path: str, *, minimum: int = 1) -> int:
    if key not in block:
        raise PlanInputError(f"{path}.{key}", "missing (DeepSpeed requires it)")
    value = block[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanInputError(f"{path}.{key}", f"must be an integer, got {value!r}")
    if value < minimum:
        raise PlanInputError(f"{path}.{key}", f"must be >= {minimum}, got {value}")
    return value


def _block(cfg: dict[str, Any], keys: tuple[str, ...], path: str) -> dict[str, Any]:
    node: Any = cfg
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            where = ".".join((path, *keys[: i + 1]))
            raise PlanInputError(where, "missing: a random-LTD DeepSpeed config needs this block")
        node = node[key]
    if not isinstance(node, dict):
        raise PlanInputError(".".join((path, *keys)), "must be an object")
    return node


def parse_deepspeed_config(cfg: dict[str, Any] | DeepSpeedConfig) -> DeepSpeedRandomLTD:
    """The batch size and random-LTD schedule of a whole DeepSpeed JSON config."""
    if isinstance(cfg, DeepSpeedConfig):
        cfg = cfg.as_dict()
    if not isinstance(cfg, dict):
        raise PlanInputError(ROOT, "must be a JSON object")
    batch = _int(cfg, "train_batch_size", ROOT) if "train_batch_size" in cfg else None
    curriculum, reorder = parse_curriculum(cfg)
    if curriculum is not None and not _has(cfg, LTD_PATH):
        return DeepSpeedRandomLTD(batch, None, None, curriculum, reorder)  # CL only
    if not _has(cfg, LTD_PATH) and reorder:
        return DeepSpeedRandomLTD(batch, None, None, None, reorder)
    ltd = _block(cfg, LTD_PATH, ROOT)
    if ltd.get("enabled") is False:
        raise PlanInputError(f"{LTD}.enabled", "is false: DeepSpeed would drop no tokens")
    sched = _block(ltd, ("random_ltd_schedule",), LTD)
    kind = sched.get("schedule_type", "fixed_linear")
    if kind != "fixed_linear":
        raise PlanInputError(
            f"{SCHEDULE}.schedule_type",
            f"{kind!r} is rejected by DeepSpeed at run time (only 'fixed_linear' runs); "
            "plan it with the request's random_ltd field instead",
        )
    sched_cfg = _block(sched, ("schedule_config",), SCHEDULE)
    total = _int(ltd, "total_layer_num", LTD) if "total_layer_num" in ltd else None
    ids = ltd.get("random_ltd_layer_id")
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise PlanInputError(f"{LTD}.random_ltd_layer_id", "must be a list of integers")
        if len(set(ids)) != len(ids):
            raise PlanInputError(f"{LTD}.random_ltd_layer_id", f"repeats a layer: {ids}")
        if "random_ltd_layer_num" in ltd and ltd["random_ltd_layer_num"] != len(ids):
            raise PlanInputError(
                f"{LTD}.random_ltd_layer_num",
                f"is {ltd['random_ltd_layer_num']} but random_ltd_layer_id lists {len(ids)} layers",
            )
        bad = [i for i in ids if i < 0 or (total is not None and i >= total)]
        if bad:
            raise PlanInputError(
                f"{LTD}.random_ltd_layer_id",
                f"ids {bad} are out of range 0..{(total or 1) - 1} (total_layer_num {total})",
            )
    min_value = _int(sched, "min_value", SCHEDULE)
    max_value = _int(sched, "max_value", SCHEDULE)
    if min_value > max_value:
        raise PlanInputError(
            f"{SCHEDULE}.min_value", f"({min_value}) must not exceed max_value ({max_value})"
        )
    config = RandomLTDConfig(
        min_value=min_value,
        max_value=max_value,
        schedule_type="fixed_linear",
        require_steps=_int(sched_cfg, "require_steps", f"{SCHEDULE}.schedule_config"),
        seq_per_step=_int(sched_cfg, "seq_per_step", f"{SCHEDULE}.schedule_config"),
        layer_ids=tuple(sorted(ids)) if ids is not None else None,
    )
    return DeepSpeedRandomLTD(batch, total, config, curriculum, reorder)


def _has(cfg: dict[str, Any], keys: tuple[str, ...]) -> bool:
    node: Any = cfg
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


LEGACY_CL = ROOT + ".curriculum_learning"
CL_PATH = ("data_efficiency", "data_sampling", "curriculum_learning")
CL = ROOT + "." + ".".join(CL_PATH)
CL_KEYS = ("min_difficulty", "max_difficulty", "schedule_type", "schedule_config")


def _curriculum(block: dict[str, Any], metric: str, path: str) -> CurriculumConfig:
    """One CL schedule, validated as DeepSpeed does and beyond; errors name the key's path."""
    for key in ("min_difficulty", "max_difficulty", "schedule_type"):
        if key not in block:
            raise PlanInputError(f"{path}.{key}", "missing (DeepSpeed requires it)")
    data = {k: block[k] for k in CL_KEYS if k in block}
    schedule = data.get("schedule_config", {})
    if not isinstance(schedule, dict):
        raise PlanInputError(f"{path}.schedule_config", "must be an object")
    known = set(CurriculumScheduleConfig.model_fields)
    data["schedule_config"] = {k: v for k, v in schedule.items() if k in known}
    try:
        return CurriculumConfig.model_validate({"metric": metric, **data})
    except ValidationError as exc:
        raise input_error_from(exc, prefix=path) from None


def parse_curriculum(cfg: dict[str, Any]) -> tuple[CurriculumConfig | None, tuple[str, ...]]:
    """Curriculum learning of a DeepSpeed config: the legacy top-level `curriculum_learning`
    block, or `data_efficiency.data_sampling.curriculum_learning` with its metrics. Returns the
    length curriculum (seqlen, seqlen_truncate or seqlen_reshape; None if none) and the names of
    metrics that only reorder data."""
    legacy = cfg.get("curriculum_learning")
    if isinstance(legacy, dict) and legacy.get("enabled", False):
        kind = legacy.get("curriculum_type")
        if kind is None:
            raise PlanInputError(
                f"{LEGACY_CL}.curriculum_type",
                'missing: DeepSpeed fails at the first forward without it (use "seqlen")',
            )
        if kind != "seqlen":
            return None, (str(kind),)
        return _curriculum(legacy, "seqlen", LEGACY_CL), ()
    if not _has(cfg, CL_PATH):
        return None, ()
    block = _block(cfg, CL_PATH, ROOT)
    if not block.get("enabled", False):
        return None, ()
    metrics = block.get("curriculum_metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise PlanInputError(f"{CL}.curriculum_metrics", "missing: name at least one metric")
    length, reorder = None, []
    for name, metric in metrics.items():
        path = f"{CL}.curriculum_metrics.{name}"
        if not isinstance(metric, dict):
            raise PlanInputError(path, "must be an object")
        parsed = _curriculum(metric, name, path)
        if parsed.sets_length:
            if length is not None:
                raise PlanInputError(path, f"a second length metric beside {length.metric!r}")
            length = parsed
        else:
            reorder.append(name)
    return length, tuple(reorder)


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
