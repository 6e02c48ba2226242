"""Read, validate and write DeepSpeed's random-LTD configuration.

DeepSpeed accepts many broken `random_ltd` blocks and fails (or silently misbehaves) hours into a
run. Here every rule is checked up front, and each error names the key by its full path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from planner.errors import PlanInputError
from planner.schedule import RandomLTDConfig

ROOT = "deepspeed_config"
LTD_PATH = ("data_efficiency", "data_routing", "random_ltd")
LTD = ROOT + "." + ".".join(LTD_PATH)
SCHEDULE = LTD + ".random_ltd_schedule"


@dataclass(frozen=True)
class DeepSpeedRandomLTD:
    train_batch_size: int | None
    total_layer_num: int | None
    config: RandomLTDConfig


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


def parse_deepspeed_config(cfg: dict[str, Any]) -> DeepSpeedRandomLTD:
    """The batch size and random-LTD schedule of a whole DeepSpeed JSON config."""
    if not isinstance(cfg, dict):
        raise PlanInputError(ROOT, "must be a JSON object")
    batch = _int(cfg, "train_batch_size", ROOT) if "train_batch_size" in cfg else None
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
    return DeepSpeedRandomLTD(batch, total, config)


class _Block(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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


class DeepSpeedDataEfficiency(_Block):
    enabled: bool = True
    data_routing: DeepSpeedDataRouting


class DeepSpeedExport(_Block):
    """The DeepSpeed config keys of a plan: paste them into a DeepSpeed JSON config."""

    train_batch_size: int
    data_efficiency: DeepSpeedDataEfficiency


def export_deepspeed_config(
    cfg: RandomLTDConfig,
    *,
    num_layers: int,
    layer_ids: tuple[int, ...],
    train_batch_size: int,
    model_type: str = "decoder",
) -> DeepSpeedExport:
    """The DeepSpeed config keys that reproduce a plan's random-LTD run."""
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
    return DeepSpeedExport(
        train_batch_size=train_batch_size,
        data_efficiency=DeepSpeedDataEfficiency(
            data_routing=DeepSpeedDataRouting(random_ltd=block)
        ),
    )
