"""Resolution: a request with every default and indirection settled, and the two runs it implies.

The model becomes an explicit shape, the batch size and the schedule are read from the DeepSpeed
config or the request's own fields, and the layer ids are made explicit. The plan id is a hash of
that resolved request, so the same run asked for in two spellings (a preset name or its explicit
shape) is the same plan.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from planner.curriculum import CurriculumConfig
from planner.deepspeed_config import LTD as DS_RANDOM_LTD
from planner.deepspeed_config import DeepSpeedConfig, DeepSpeedRandomLTD, parse_deepspeed_config
from planner.errors import PlanInputError
from planner.hardware import HardwareConfig
from planner.hf_config import resolve_model
from planner.lr import LRConfig
from planner.models import ModelShape
from planner.request import MAX_TRAIN_STEPS, PlanRequest
from planner.run import (
    Counters,
    Run,
    baseline_steps_for_tokens,
    constant_run,
    run_for_steps,
    run_until,
)
from planner.schedule import MAX_SCHEDULE_LEVELS, RandomLTDConfig, default_ltd_layer_ids
from planner.typed import changed

# Part of every plan id: a change to how figures are projected gives new ids, so that plans
# stored under the old method are not served as if they were computed with the new one.
PROJECTION_VERSION = "step-time-v1"
BERT_SEQLEN_MULTIPLE = 8  # Megatron-DeepSpeed's BERT rounds CL's length up to a multiple of 8
LTDStop = Literal["equal_steps", "ltd_train_tokens", "ltd_train_steps", "equal_compute"]


@dataclass(frozen=True)
class Resolved:
    """A request with every default and indirection settled: what the numbers depend on."""

    model: ModelShape
    global_batch_size: int
    ltd: RandomLTDConfig  # layer_ids explicit
    baseline_steps: int
    ltd_stop: LTDStop
    ltd_target: int  # steps, effective tokens or LayerTokens, by ltd_stop
    hardware: HardwareConfig
    lr: LRConfig | None
    curriculum: CurriculumConfig | None = None  # a length curriculum composed with the run
    reorder_metrics: tuple[str, ...] = ()  # CL metrics that only reorder data

    def canonical(self) -> dict[str, Any]:
        # Plans without a length curriculum keep their ids; metrics that only reorder data
        # change no figure and are left out.
        extra = {"curriculum": self.curriculum.model_dump()} if self.curriculum else {}
        hardware = self.hardware.model_dump()
        profile = hardware.get("device_profile")
        if isinstance(profile, dict) and profile.get("first_touch_gbps") is None:
            del profile["first_touch_gbps"]  # a field added later: unset, ids stay as they were
        return extra | {
            "model": self.model.model_dump(exclude={"name", "published_params", "num_params"}),
            "global_batch_size": self.global_batch_size,
            "random_ltd": self.ltd.model_dump(),
            "baseline_steps": self.baseline_steps,
            "ltd_stop": self.ltd_stop,
            "ltd_target": self.ltd_target,
            "hardware": hardware,
            "lr": self.lr.model_dump() if self.lr else None,
            "projection": PROJECTION_VERSION,
        }

    @property
    def num_ltd_layers(self) -> int:
        """Layers that drop tokens (the ids are explicit once resolved; none: CL alone)."""
        return len(self.ltd.layer_ids or ())

    @property
    def plan_id(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return "p_" + hashlib.sha256(blob.encode()).hexdigest()[:20]


def _default_ltd(model: ModelShape, baseline_steps: int) -> RandomLTDConfig:
    # The paper's GPT runs: 128 of 2048 (1/16) growing by 16 over about half the run; past
    # S ~ 170k tokens, by as many tokens a step as keep the schedule within its levels' cap.
    S = model.seq_len
    seq_per_step = 16 if S >= 256 else 1
    if (S - S // 16) // seq_per_step + 1 > MAX_SCHEDULE_LEVELS:
        seq_per_step = -(-S // (MAX_SCHEDULE_LEVELS - 2) // 16) * 16
    min_value = max(seq_per_step, S // 16 // seq_per_step * seq_per_step)
    return RandomLTDConfig(
        min_value=min_value,
        max_value=model.seq_len,
        seq_per_step=seq_per_step,
        require_steps=max(1, min(baseline_steps // 2, 100_000_000)),
    )


def _layer_ids(cfg: RandomLTDConfig, model: ModelShape, field: str) -> tuple[int, ...]:
    L = model.num_layers
    if cfg.layer_ids is None:
        return default_ltd_layer_ids(L)
    ids = cfg.layer_ids
    bad = [i for i in ids if not 0 <= i < L]
    if bad:
        raise PlanInputError(f"{field}.layer_ids", f"ids {bad} are out of range 0..{L - 1}")
    if len(set(ids)) != len(ids):
        raise PlanInputError(f"{field}.layer_ids", f"repeats a layer: {list(ids)}")
    return tuple(sorted(ids))


def resolve(req: PlanRequest) -> Resolved:
    """Settle every default of a request; raises PlanInputError naming the field."""
    model = resolve_model(req.model)
    ds = _deepspeed(req, model)
    G = _batch_size(req, ds)
    baseline_steps = _baseline_steps(req, G, model.seq_len)
    curriculum, reorder = _curriculum(req, ds, model.seq_len, G)
    cfg = _schedule(req, ds, model, baseline_steps)
    baseline_layer_tokens = baseline_steps * G * model.seq_len * model.num_layers
    stop, target = _ltd_stop(req, baseline_layer_tokens, baseline_steps)
    return Resolved(
        model, G, cfg, baseline_steps, stop, target, req.hardware, req.lr, curriculum, reorder
    )


def _deepspeed(req: PlanRequest, model: ModelShape) -> DeepSpeedRandomLTD | None:
    """What the request's DeepSpeed config says (None: no config, or one that gives nothing,
    `{}`); its layer count must be the model's."""
    if req.deepspeed_config is None or req.deepspeed_config == DeepSpeedConfig():
        return None
    ds = parse_deepspeed_config(req.deepspeed_config)
    if ds.total_layer_num is not None and ds.total_layer_num != model.num_layers:
        raise PlanInputError(
            f"{DS_RANDOM_LTD}.total_layer_num",
            f"is {ds.total_layer_num} but the model has {model.num_layers} layers",
        )
    return ds


def _batch_size(req: PlanRequest, ds: DeepSpeedRandomLTD | None) -> int:
    """G: the request's, else the DeepSpeed config's."""
    G = req.train_batch_size or (ds.train_batch_size if ds else None)
    if G is None:
        raise PlanInputError(
            "train_batch_size", "required (or give a deepspeed_config with train_batch_size)"
        )
    return G


def _baseline_steps(req: PlanRequest, G: int, S: int) -> int:
    """The baseline's optimizer steps: given, or enough for its token budget."""
    if req.train_tokens is None:
        assert req.train_steps is not None  # PlanRequest holds exactly one of the two
        return req.train_steps
    steps = baseline_steps_for_tokens(req.train_tokens, G, S)
    if steps > MAX_TRAIN_STEPS:
        raise PlanInputError("train_tokens", f"implies {steps:,} steps (max 10^10)")
    return steps


def _curriculum(
    req: PlanRequest, ds: DeepSpeedRandomLTD | None, S: int, G: int
) -> tuple[CurriculumConfig | None, tuple[str, ...]]:
    """The length curriculum (the request's over the DeepSpeed config's; None: none) and the
    metrics that only reorder data."""
    curriculum = req.curriculum or (ds.curriculum if ds else None)
    reorder = ds.reorder_metrics if ds else ()
    if curriculum is not None and not curriculum.sets_length:  # a metric that only reorders
        reorder = (*reorder, curriculum.metric)
        curriculum = None
    if curriculum is not None and curriculum.max_difficulty > S:
        where = "curriculum" if req.curriculum else "deepspeed_config (curriculum_learning)"
        raise PlanInputError(
            f"{where}.max_difficulty",
            f"({curriculum.max_difficulty}) exceeds the model's seq_len ({S})",
        )
    mbs = req.hardware.micro_batch_size
    if curriculum is not None and curriculum.reshape and mbs > G:
        raise PlanInputError(
            "hardware.micro_batch_size",
            f"({mbs}) exceeds the global batch ({G}): seqlen_reshape re-cuts each micro-batch, "
            "so a step must hold at least one",
        )
    return curriculum, reorder


def _schedule(
    req: PlanRequest, ds: DeepSpeedRandomLTD | None, model: ModelShape, baseline_steps: int
) -> RandomLTDConfig:
    """The random-LTD schedule, layer ids explicit: the request's fields over the DeepSpeed
    config's over the defaults. None dropped (S kept in no layer) when the request turns
    random-LTD off, or a DeepSpeed config gives only a curriculum and the request no schedule."""
    S = model.seq_len
    asked = req.random_ltd.model_dump(exclude_none=True) if req.random_ltd else {}
    if asked.get("enabled") is False or (ds is not None and ds.config is None and not asked):
        return RandomLTDConfig(
            min_value=S, max_value=S, schedule_type="constant", require_steps=1, layer_ids=()
        )
    cfg = ds.config if ds and ds.config else _default_ltd(model, baseline_steps)
    overrides = {key: value for key, value in asked.items() if key != "enabled"}
    field = "random_ltd" if overrides or ds is None else DS_RANDOM_LTD
    if overrides:
        cfg = changed(cfg, field="random_ltd", **overrides)
    if cfg.max_value > S:
        raise PlanInputError(
            f"{field}.max_value", f"({cfg.max_value}) exceeds the model's seq_len ({S})"
        )
    return changed(cfg, field=field, layer_ids=_layer_ids(cfg, model, field))


def _ltd_stop(
    req: PlanRequest,
    baseline_layer_tokens: int,
    baseline_steps: int,
) -> tuple[LTDStop, int]:
    """How the random-LTD run ends, and its target in that rule's unit."""
    if req.ltd_train_tokens is not None:
        return "ltd_train_tokens", req.ltd_train_tokens
    if req.ltd_train_steps is not None:
        return "ltd_train_steps", req.ltd_train_steps
    if req.ltd_equal_compute:
        return "equal_compute", baseline_layer_tokens
    return "equal_steps", baseline_steps


@dataclass(frozen=True)
class Runs:
    """The two runs of a plan."""

    resolved: Resolved
    baseline: Run
    ltd: Run


def build_runs(res: Resolved) -> Runs:
    """The baseline (dense, `baseline_steps`) and the random-LTD run (stopped by `ltd_stop`)."""
    m, G, cl = res.model, res.global_batch_size, res.curriculum
    baseline = constant_run(res.baseline_steps, Counters(m, G, 0, m.seq_len))
    counters = Counters(
        m,
        G,
        res.num_ltd_layers,
        res.ltd.max_value,
        length_curriculum=cl is not None,
        reshape_micro_batch=res.hardware.micro_batch_size
        if cl is not None and cl.reshape
        else None,
    )
    multiple = BERT_SEQLEN_MULTIPLE if m.arch == "bert" else 1
    if res.ltd_stop in ("equal_steps", "ltd_train_steps"):
        ltd = run_for_steps(res.ltd, counters, res.ltd_target, cl, multiple)
    elif res.ltd_stop == "ltd_train_tokens":
        ltd = run_until(res.ltd, counters, counters.effective_tokens, res.ltd_target, cl, multiple)
    else:  # equal compute: the LayerTokens the plan reports (the actual ones with CL)
        ltd = run_until(res.ltd, counters, counters.layer_tokens, res.ltd_target, cl, multiple)
    if ltd.num_steps > MAX_TRAIN_STEPS:
        raise PlanInputError(res.ltd_stop, f"implies {ltd.num_steps:,} steps (max 10^10)")
    return Runs(res, baseline, ltd)
