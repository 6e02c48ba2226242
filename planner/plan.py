"""`plan(request)`: a baseline and a random-LTD run side by side, from one request.

The request is first resolved (`resolve`): the model becomes an explicit shape, the batch size and
the schedule are read from the DeepSpeed config or the request's own fields, and the layer ids are
made explicit. The plan id is a hash of that resolved request, so the same run asked for in two
spellings (a preset name or its explicit shape) is the same plan.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner import flops as F
from planner.budget import (
    Accounting,
    StepProfile,
    baseline_steps_for_tokens,
    constant_profile,
    profile_for_steps,
    profile_until,
)
from planner.deepspeed import export_deepspeed_config, parse_deepspeed_config
from planner.errors import PlanInputError, input_error_from
from planner.hardware import GPU_PRESETS, HardwareConfig, cost_usd, wall_clock_hours
from planner.lr import LRConfig, learning_rate
from planner.models import ModelShape, resolve_model
from planner.schedule import MAX_REQUIRE_STEPS, RandomLTDConfig, ScheduleType

MAX_TRAIN_TOKENS = 10**15  # 1,000T tokens: ~30x the largest runs published; more is a typo
MAX_TRAIN_STEPS = 10**10
MAX_BATCH_SIZE = 10**8

CONVENTIONS = {
    "flops": "multiply-add = 2 FLOPs; training = 3x forward; model FLOPs exclude recompute",
    "causal_attention": "full n*n score and value products counted (PaLM, Megatron convention)",
    "head": "output head on the full sequence at every step (vit: CLS token only)",
    "hardware_flops": "model FLOPs plus one more forward of the layers under full recompute",
    "wall_clock": "model FLOPs / (num_gpus x dense peak x MFU); FLOPs projection, uncalibrated",
    "layer_tokens": "DeepSpeed: G * (r * L_ltd + max_value * (L - L_ltd)) per step",
    "effective_tokens": "Megatron-DeepSpeed: G * ((S*(L-L_ltd) + r*L_ltd) // L) while r < S",
    "memory": "one data-parallel replica, no ZeRO or tensor parallelism, bf16 + fp32 Adam",
}


class RandomLTDRequest(BaseModel):
    """The request's schedule: any field left out comes from the DeepSpeed config, else from the
    defaults (min_value S/16 rounded to seq_per_step, max_value S, 16 a step, over half the
    baseline's steps, all layers but the first and the last)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    min_value: int | None = Field(None, ge=1, description="Reserved length at step 0, tokens.")
    max_value: int | None = Field(None, ge=1, description="Reserved length at the end.")
    schedule_type: ScheduleType | None = Field(
        None, description="fixed_linear, fixed_root or constant."
    )
    require_steps: int | None = Field(
        None, ge=1, le=MAX_REQUIRE_STEPS, description="Steps to reach max_value."
    )
    seq_per_step: int | None = Field(None, ge=1, description="Lengths are multiples of this.")
    root_degree: int | None = Field(None, ge=1, le=100, description="fixed_root's degree.")
    layer_ids: tuple[int, ...] | None = Field(None, description="Dropping layers, 0-based.")


class PlanRequest(BaseModel):
    """What to plan. Exactly one of train_tokens / train_steps sets the baseline; at most one of
    ltd_train_tokens / ltd_train_steps / ltd_equal_compute sets the random-LTD run (default: the
    baseline's number of steps)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    model: str | dict[str, Any] = Field(
        ...,
        description="Preset name, explicit shape, or a Hugging Face config.json object.",
        examples=["gpt3-1.3b"],
    )
    deepspeed_config: dict[str, Any] | None = Field(
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


@dataclass(frozen=True)
class Resolved:
    """A request with every default and indirection settled: what the numbers depend on."""

    model: ModelShape
    global_batch_size: int
    ltd: RandomLTDConfig  # layer_ids explicit
    baseline_steps: int
    ltd_stop: Literal["equal_steps", "ltd_train_tokens", "ltd_train_steps", "equal_compute"]
    ltd_target: int  # steps, effective tokens or LayerTokens, by ltd_stop
    hardware: HardwareConfig
    lr: LRConfig | None

    def canonical(self) -> dict[str, Any]:
        return {
            "model": self.model.model_dump(exclude={"name", "published_params"}),
            "global_batch_size": self.global_batch_size,
            "random_ltd": self.ltd.model_dump(),
            "baseline_steps": self.baseline_steps,
            "ltd_stop": self.ltd_stop,
            "ltd_target": self.ltd_target,
            "hardware": self.hardware.model_dump(),
            "lr": self.lr.model_dump() if self.lr else None,
        }

    @property
    def plan_id(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return "p_" + hashlib.sha256(blob.encode()).hexdigest()[:20]


def _default_ltd(model: ModelShape, baseline_steps: int) -> RandomLTDConfig:
    # The paper's GPT runs: 128 of 2048 (1/16) growing by 16 over about half the run.
    seq_per_step = 16 if model.seq_len >= 256 else 1
    min_value = max(seq_per_step, model.seq_len // 16 // seq_per_step * seq_per_step)
    return RandomLTDConfig(
        min_value=min_value,
        max_value=model.seq_len,
        seq_per_step=seq_per_step,
        require_steps=max(1, min(baseline_steps // 2, 100_000_000)),
    )


def _layer_ids(cfg: RandomLTDConfig, model: ModelShape, field: str) -> tuple[int, ...]:
    L = model.num_layers
    if cfg.layer_ids is None:
        return tuple(range(1, L - 1))  # all but the first and the last
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
    ds = parse_deepspeed_config(req.deepspeed_config) if req.deepspeed_config else None
    if ds and ds.total_layer_num is not None and ds.total_layer_num != model.num_layers:
        raise PlanInputError(
            "deepspeed_config.data_efficiency.data_routing.random_ltd.total_layer_num",
            f"is {ds.total_layer_num} but the model has {model.num_layers} layers",
        )
    G = req.train_batch_size or (ds.train_batch_size if ds else None)
    if G is None:
        raise PlanInputError(
            "train_batch_size", "required (or give a deepspeed_config with train_batch_size)"
        )
    S = model.seq_len
    if req.train_tokens is not None:
        baseline_steps = baseline_steps_for_tokens(req.train_tokens, G, S)
        if baseline_steps > MAX_TRAIN_STEPS:
            raise PlanInputError("train_tokens", f"implies {baseline_steps:,} steps (max 10^10)")
    else:
        baseline_steps = req.train_steps  # type: ignore[assignment]
    cfg = ds.config if ds else _default_ltd(model, baseline_steps)
    overrides = req.random_ltd.model_dump(exclude_none=True) if req.random_ltd else {}
    field = (
        "random_ltd"
        if overrides or ds is None
        else ("deepspeed_config.data_efficiency.data_routing.random_ltd")
    )
    if overrides:
        try:
            cfg = RandomLTDConfig.model_validate({**cfg.model_dump(), **overrides})
        except ValidationError as exc:
            raise input_error_from(exc, prefix="random_ltd") from None
    if cfg.max_value > S:
        raise PlanInputError(
            f"{field}.max_value", f"({cfg.max_value}) exceeds the model's seq_len ({S})"
        )
    cfg = cfg.model_copy(update={"layer_ids": _layer_ids(cfg, model, field)})
    if req.ltd_train_tokens is not None:
        stop, target = "ltd_train_tokens", req.ltd_train_tokens
    elif req.ltd_train_steps is not None:
        stop, target = "ltd_train_steps", req.ltd_train_steps
    elif req.ltd_equal_compute:
        stop, target = "equal_compute", baseline_steps * G * S * model.num_layers
    else:
        stop, target = "equal_steps", baseline_steps
    return Resolved(model, G, cfg, baseline_steps, stop, target, req.hardware, req.lr)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Runs:
    """The two runs of a plan as step profiles, with the counters each keeps."""

    resolved: Resolved
    baseline: StepProfile
    baseline_acc: Accounting
    ltd: StepProfile
    ltd_acc: Accounting


def build_runs(r: Resolved) -> Runs:
    m, G = r.model, r.global_batch_size
    base_acc = Accounting(G, m.seq_len, m.num_layers, 0, m.seq_len)
    ltd_acc = Accounting(G, m.seq_len, m.num_layers, len(r.ltd.layer_ids or ()), r.ltd.max_value)
    baseline = constant_profile(r.baseline_steps, m.seq_len)
    if r.ltd_stop in ("equal_steps", "ltd_train_steps"):
        ltd = profile_for_steps(r.ltd, r.ltd_target)
    elif r.ltd_stop == "ltd_train_tokens":
        ltd = profile_until(r.ltd, ltd_acc.effective_tokens, r.ltd_target)
    else:
        ltd = profile_until(r.ltd, ltd_acc.layer_tokens, r.ltd_target)
    if ltd.num_steps > MAX_TRAIN_STEPS:
        raise PlanInputError(r.ltd_stop, f"implies {ltd.num_steps:,} steps (max 10^10)")
    return Runs(r, baseline, base_acc, ltd, ltd_acc)


# The plan document ---------------------------------------------------------------------------


class RunSummary(BaseModel):
    steps: int = Field(description="Optimizer steps.")
    tokens: int = Field(description="Raw tokens read: steps x G x S.")
    layer_tokens: int = Field(description="DeepSpeed's LayerTokens.")
    effective_tokens: int = Field(description="Megatron-DeepSpeed's effective-token counter.")
    flops: float = Field(description="Model FLOPs of training.")
    hardware_flops: float = Field(description="FLOPs executed, with recompute if enabled.")
    flops_breakdown: dict[str, float] = Field(description="Model FLOPs by component.")
    wall_clock_hours: float
    gpu_hours: float
    cost_usd: float | None
    final_lr: float | None = None


class Savings(BaseModel):
    """Fractions of the baseline saved by the random-LTD run (negative if it costs more)."""

    layer_tokens: float
    flops: float
    wall_clock: float


class MemoryEstimate(BaseModel):
    micro_batch_size: int
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes_min: int = Field(description="Activations at the smallest reserved length.")
    activations_bytes_full: int = Field(description="Activations at the full sequence.")
    total_bytes_min: int
    total_bytes_full: int


class Plan(BaseModel):
    id: str
    model: dict[str, Any]
    global_batch_size: int
    random_ltd_config: RandomLTDConfig
    ltd_stop: str
    ltd_target: int = Field(description="Steps, effective tokens or LayerTokens, by ltd_stop.")
    hardware: dict[str, Any]
    conventions: dict[str, str]
    baseline: RunSummary
    random_ltd: RunSummary
    savings: Savings
    schedule: list[tuple[int, int]] = Field(description="[step, reserved_length] change points.")
    layer_flops: dict[str, dict[str, int]] = Field(
        description="Forward FLOPs of one layer for one sequence, at min_value and at S."
    )
    memory: MemoryEstimate
    lr: LRConfig | None
    deepspeed_config: dict[str, Any]
    calibrated: dict[str, Any] | None = None


def _summary(profile: StepProfile, acc: Accounting, r: Resolved) -> RunSummary:
    m, hw = r.model, r.hardware
    run = F.run_flops(
        m,
        global_batch_size=acc.global_batch_size,
        num_steps=profile.num_steps,
        num_ltd_layers=acc.num_ltd_layers,
        sum_r=profile.total(lambda x: x),
        sum_r2=profile.total(lambda x: x * x),
        activation_recompute=hw.activation_recompute,
    )
    hours = wall_clock_hours(run.model, hw)
    effective = profile.total(acc.effective_tokens)
    final_lr = None
    if r.lr is not None and profile.num_steps:
        last = profile.lengths(profile.num_steps - 1)[0]
        before_last = effective - int(acc.effective_tokens(np.array([last]))[0])
        final_lr = float(learning_rate(before_last, r.lr))
    return RunSummary(
        steps=profile.num_steps,
        tokens=profile.num_steps * acc.global_batch_size * m.seq_len,
        layer_tokens=profile.total(acc.layer_tokens),
        effective_tokens=effective,
        flops=run.model,
        hardware_flops=run.hardware,
        flops_breakdown={
            "projections": run.projections,
            "mlp": run.mlp,
            "attention": run.attention,
            "head": run.head,
        },
        wall_clock_hours=hours,
        gpu_hours=hours * hw.num_gpus,
        cost_usd=cost_usd(hours * hw.num_gpus, hw),
        final_lr=final_lr,
    )


def _saving(base: float, ltd: float) -> float:
    return 1.0 - ltd / base if base else 0.0


def _memory(r: Resolved) -> MemoryEstimate:
    m, hw = r.model, r.hardware
    n = m.num_params
    act = {
        length: F.activation_bytes(
            length,
            m,
            num_ltd_layers=len(r.ltd.layer_ids or ()),
            micro_batch_size=hw.micro_batch_size,
            activation_recompute=hw.activation_recompute,
        )
        for length in (r.ltd.min_value, m.seq_len)
    }
    states = n * (F.WEIGHT_BYTES + F.GRAD_BYTES + F.OPTIMIZER_BYTES)
    return MemoryEstimate(
        micro_batch_size=hw.micro_batch_size,
        weights_bytes=n * F.WEIGHT_BYTES,
        gradients_bytes=n * F.GRAD_BYTES,
        optimizer_bytes=n * F.OPTIMIZER_BYTES,
        activations_bytes_min=act[r.ltd.min_value],
        activations_bytes_full=act[m.seq_len],
        total_bytes_min=states + act[r.ltd.min_value],
        total_bytes_full=states + act[m.seq_len],
    )


def plan_from_runs(runs: Runs) -> Plan:
    r = runs.resolved
    m = r.model
    base = _summary(runs.baseline, runs.baseline_acc, r)
    ltd = _summary(runs.ltd, runs.ltd_acc, r)
    layer_ids = r.ltd.layer_ids or ()
    return Plan(
        id=r.plan_id,
        model={**m.model_dump(), "num_params": m.num_params},
        global_batch_size=r.global_batch_size,
        random_ltd_config=r.ltd,
        ltd_stop=r.ltd_stop,
        ltd_target=r.ltd_target,
        hardware={**r.hardware.model_dump(), "peak_tflops": r.hardware.peak_flops_per_s / 1e12},
        conventions=CONVENTIONS,
        baseline=base,
        random_ltd=ltd,
        savings=Savings(
            layer_tokens=_saving(base.layer_tokens, ltd.layer_tokens),
            flops=_saving(base.flops, ltd.flops),
            wall_clock=_saving(base.wall_clock_hours, ltd.wall_clock_hours),
        ),
        schedule=runs.ltd.change_points(),
        layer_flops={
            str(n): {
                "projections": int(F.projection_flops(n, m)),
                "mlp": int(F.mlp_flops(n, m)),
                "attention": int(F.attention_flops(n, m)),
                "total": int(F.layer_flops(n, m)),
            }
            for n in sorted({r.ltd.min_value, m.seq_len})
        },
        memory=_memory(r),
        lr=r.lr,
        deepspeed_config=export_deepspeed_config(
            r.ltd,
            num_layers=m.num_layers,
            layer_ids=layer_ids,
            train_batch_size=r.global_batch_size,
            model_type="decoder" if m.arch == "gpt" else "encoder",
        ),
    )


def request_from_plan(p: Plan) -> PlanRequest:
    """A request that resolves to the same plan (same id): the plan document is enough to
    recompute it, e.g. on a worker or from a plan file."""
    model = {k: v for k, v in p.model.items() if k != "num_params"}
    hardware = {k: v for k, v in p.hardware.items() if k in HardwareConfig.model_fields}
    if (
        hardware.get("peak_tflops") is not None
        and hardware.get("gpu") in GPU_PRESETS
        and (GPU_PRESETS[hardware["gpu"]][0] == hardware["peak_tflops"])
    ):
        hardware["peak_tflops"] = None  # the preset's own peak, as the request had it
    stops: dict[str, dict[str, Any]] = {
        "equal_steps": {},
        "ltd_train_steps": {"ltd_train_steps": p.random_ltd.steps},
        "ltd_train_tokens": {"ltd_train_tokens": p.ltd_target},
        "equal_compute": {"ltd_equal_compute": True},
    }
    stop = stops[p.ltd_stop]
    return PlanRequest(
        model=model,
        train_batch_size=p.global_batch_size,
        train_steps=p.baseline.steps,
        random_ltd=RandomLTDRequest(**p.random_ltd_config.model_dump()),
        hardware=HardwareConfig(**hardware),
        lr=p.lr,
        **stop,
    )


def plan(request: PlanRequest | dict[str, Any]) -> Plan:
    """The plan document for a request (a PlanRequest or its JSON form)."""
    req = request if isinstance(request, PlanRequest) else parse_request(request)
    return plan_from_runs(build_runs(resolve(req)))


def parse_request(data: dict[str, Any]) -> PlanRequest:
    """Validate a request's JSON form; pydantic's errors become a PlanInputError."""
    try:
        return PlanRequest.model_validate(data)
    except ValidationError as exc:
        raise input_error_from(exc) from None
