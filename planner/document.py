"""The plan document: what `plan()` returns, the API stores and serves, and the CLI renders.

Every section is a pydantic model, so a consumer reads fields and never strips keys or indexes
by string. `plan_from_runs` fills it from a resolved request's two runs; `request_from_plan`
reads a request back out of it (the same plan id), e.g. on a worker or from a plan file.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from planner import flops as F
from planner.curriculum import CurriculumConfig
from planner.deepspeed_export import DeepSpeedExport, export_deepspeed_config
from planner.gpus import GPUS
from planner.hardware import HardwareConfig, cost_usd, wall_clock_hours
from planner.lr import LRConfig
from planner.memory import MemoryEstimate, memory_estimate
from planner.models import ModelShape
from planner.projection import Projection, project
from planner.request import PlanRequest, RandomLTDRequest
from planner.resolve import LTDStop, Resolved, Runs
from planner.run import Run
from planner.schedule import RandomLTDConfig
from planner.typed import changed


class Conventions(BaseModel):
    """How the figures are counted, stated in every plan."""

    flops: str = "multiply-add = 2 FLOPs; training = 3x forward; model FLOPs exclude recompute"
    causal_attention: str = "full n*n score and value products counted (PaLM, Megatron convention)"
    head: str = "output head on the full sequence at every step (vit: CLS token only)"
    hardware_flops: str = "model FLOPs plus one more forward of the layers under full recompute"
    wall_clock: str = (
        "baseline: model FLOPs / (num_gpus x dense peak x MFU); random-LTD: the baseline's hours x "
        "sum_t T(r_t) / (n_baseline x T(S)), T from the step-time model (see projection)"
    )
    layer_tokens: str = "DeepSpeed: G * (r * L_ltd + max_value * (L - L_ltd)) per step"
    effective_tokens: str = "Megatron-DeepSpeed: G * ((S*(L-L_ltd) + r*L_ltd) // L) while r < S"
    memory: str = "one data-parallel replica, no ZeRO or tensor parallelism, bf16 + fp32 Adam"


class FlopsBreakdown(BaseModel):
    """Model FLOPs of a run by component."""

    projections: float
    mlp: float
    attention: float
    head: float


class RunSummary(BaseModel):
    steps: int = Field(description="Optimizer steps.")
    tokens: int = Field(description="Raw tokens read: steps x G x S.")
    layer_tokens: int = Field(description="DeepSpeed's LayerTokens.")
    effective_tokens: int = Field(description="Megatron-DeepSpeed's effective-token counter.")
    flops: float = Field(description="Model FLOPs of training.")
    hardware_flops: float = Field(description="FLOPs executed, with recompute if enabled.")
    flops_breakdown: FlopsBreakdown = Field(description="Model FLOPs by component.")
    wall_clock_hours: float
    gpu_hours: float
    cost_usd: float | None
    final_lr: float | None = None


class Savings(BaseModel):
    """Fractions of the baseline saved by the random-LTD run (negative if it costs more)."""

    layer_tokens: float
    flops: float
    wall_clock: float


class LayerFlops(BaseModel):
    """Forward FLOPs of one layer for one sequence of a given length."""

    projections: int
    mlp: int
    attention: int
    total: int


class Calibration(BaseModel):
    """The projection a plan shows once a validation job has measured it on real hardware."""

    label: str = Field(description="Which job, on which device.")
    job_id: str
    device: str
    gpu_name: str | None
    mfu: float = Field(description="The MFU the calibrated hours use.")
    mfu_source: Literal["measured", "plan default"]
    measured_wall_clock_saving: float
    flops_saving: float
    baseline_wall_clock_hours: float
    random_ltd_wall_clock_hours: float
    random_ltd_gpu_hours: float
    random_ltd_cost_usd: float | None


class CurriculumSection(BaseModel):
    """Curriculum learning composed with the random-LTD run (shared/curriculum.md)."""

    config: CurriculumConfig | None = Field(description="The length curriculum, if any.")
    effect: str = Field(description="What the curriculum does to the run's cost.")
    reorder_metrics: list[str] = Field(
        description="Metrics that only reorder data: no cost change."
    )
    seqlen_change_points: list[tuple[int, int]] = Field(
        description="[step, sequence length c] where c changes (CL is one step ahead of r)."
    )
    dropping_changes: list[tuple[int, bool]] = Field(
        description="[step, dropping] where random-LTD switches on (r < c) or off."
    )
    deepspeed_layer_tokens: int = Field(
        description="DeepSpeed's own consumed_layer_tokens, blind to CL (it overcounts); the "
        "run's layer_tokens are the actual ones."
    )


class Plan(BaseModel):
    id: str
    model: ModelShape
    global_batch_size: int
    random_ltd_config: RandomLTDConfig
    ltd_stop: LTDStop
    ltd_target: int = Field(description="Steps, effective tokens or LayerTokens, by ltd_stop.")
    hardware: HardwareConfig = Field(description="The request's hardware, peak_tflops filled in.")
    conventions: Conventions
    baseline: RunSummary
    random_ltd: RunSummary
    savings: Savings
    projection: Projection = Field(description="How wall-clock time was projected.")
    schedule: list[tuple[int, int]] = Field(description="[step, reserved_length] change points.")
    layer_flops: dict[str, LayerFlops] = Field(
        description="Forward FLOPs of one layer for one sequence, keyed by length: min_value, S."
    )
    memory: MemoryEstimate
    lr: LRConfig | None
    deepspeed_config: DeepSpeedExport
    curriculum: CurriculumSection | None = None
    calibrated: Calibration | None = None


def _summary(run: Run, res: Resolved, *, hours: float | None = None) -> RunSummary:
    """A run's figures; its wall-clock `hours` as projected, by default FLOPs / (GPUs x peak x
    MFU) (the baseline's)."""
    hw = res.hardware
    flops = run.flops(hw.activation_recompute)
    if hours is None:
        hours = wall_clock_hours(flops.model, hw)
    final_lr = None
    if res.lr is not None and run.num_steps:
        last = run.series(np.array([run.num_steps - 1]), res.lr)
        assert last.lr is not None  # asked for
        final_lr = float(last.lr[0])
    return RunSummary(
        steps=run.num_steps,
        tokens=run.tokens,
        layer_tokens=run.layer_tokens,
        effective_tokens=run.effective_tokens,
        flops=flops.model,
        hardware_flops=flops.hardware,
        flops_breakdown=FlopsBreakdown(
            projections=flops.projections, mlp=flops.mlp, attention=flops.attention, head=flops.head
        ),
        wall_clock_hours=hours,
        gpu_hours=hours * hw.num_gpus,
        cost_usd=cost_usd(hours * hw.num_gpus, hw),
        final_lr=final_lr,
    )


def _saving(base: float, ltd: float) -> float:
    return 1.0 - ltd / base if base else 0.0


def _layer_flops(n: int, m: ModelShape) -> LayerFlops:
    return LayerFlops(
        projections=int(F.projection_flops(n, m)),
        mlp=int(F.mlp_flops(n, m)),
        attention=int(F.attention_flops(n, m)),
        total=int(F.layer_flops(n, m)),
    )


def plan_from_runs(runs: Runs) -> Plan:
    res = runs.resolved
    m = res.model
    base = _summary(runs.baseline, res)
    projection = project(runs)
    ltd_hours = base.wall_clock_hours * projection.time_ratio
    ltd = _summary(runs.ltd, res, hours=ltd_hours)
    return Plan(
        id=res.plan_id,
        model=m,
        global_batch_size=res.global_batch_size,
        random_ltd_config=res.ltd,
        ltd_stop=res.ltd_stop,
        ltd_target=res.ltd_target,
        hardware=changed(res.hardware, peak_tflops=res.hardware.peak_flops_per_s / 1e12),
        conventions=Conventions(),
        baseline=base,
        random_ltd=ltd,
        savings=Savings(
            layer_tokens=_saving(base.layer_tokens, ltd.layer_tokens),
            flops=_saving(base.flops, ltd.flops),
            wall_clock=_saving(base.wall_clock_hours, ltd.wall_clock_hours),
        ),
        projection=projection,
        schedule=runs.ltd.change_points(),
        layer_flops={str(n): _layer_flops(n, m) for n in sorted({res.ltd.min_value, m.seq_len})},
        memory=memory_estimate(res),
        lr=res.lr,
        deepspeed_config=export_deepspeed_config(
            res.ltd,
            num_layers=m.num_layers,
            layer_ids=res.ltd.layer_ids or (),
            train_batch_size=res.global_batch_size,
            model_type="decoder" if m.arch == "gpt" else "encoder",
            curriculum=res.curriculum,
        ),
        curriculum=_curriculum_section(runs),
    )


def _curriculum_section(runs: Runs) -> CurriculumSection | None:
    res, run = runs.resolved, runs.ltd
    if res.curriculum is None and not res.reorder_metrics:
        return None
    if res.curriculum is None:
        effect = "no length curriculum: the metrics only reorder data, no cost change"
    else:
        how = "re-cut into rows of c" if res.curriculum.reshape else "cut to c"
        effect = (
            f"sequences {how} tokens ({res.curriculum.metric}); dropping "
            "layers keep min(r, c), so random-LTD drops only while r < c"
        )
    starts, seqlens = run.starts, run.seqlens
    c_change = np.concatenate(([True], seqlens[1:] != seqlens[:-1]))
    dropping = (run.reserved < seqlens) & (res.num_ltd_layers > 0)
    d_change = np.concatenate(([True], dropping[1:] != dropping[:-1]))
    return CurriculumSection(
        config=res.curriculum,
        effect=effect,
        reorder_metrics=list(res.reorder_metrics),
        seqlen_change_points=list(
            zip(starts[c_change].tolist(), seqlens[c_change].tolist(), strict=True)
        ),
        dropping_changes=list(
            zip(starts[d_change].tolist(), dropping[d_change].tolist(), strict=True)
        ),
        deepspeed_layer_tokens=run.total(run.counters.deepspeed_layer_tokens),
    )


def request_from_plan(p: Plan) -> PlanRequest:
    """A request that resolves to the same plan (same id): the plan document is enough to
    recompute it, e.g. on a worker or from a plan file."""
    hardware = p.hardware
    preset = GPUS.get(hardware.gpu)
    if preset is not None and preset.peak_tflops == hardware.peak_tflops:
        hardware = changed(hardware, peak_tflops=None)  # as the request had it
    return PlanRequest(
        model=p.model.model_dump(),
        train_batch_size=p.global_batch_size,
        train_steps=p.baseline.steps,
        random_ltd=RandomLTDRequest(**p.random_ltd_config.model_dump()),
        hardware=hardware,
        lr=p.lr,
        curriculum=p.curriculum.config if p.curriculum else None,
        ltd_train_steps=p.random_ltd.steps if p.ltd_stop == "ltd_train_steps" else None,
        ltd_train_tokens=p.ltd_target if p.ltd_stop == "ltd_train_tokens" else None,
        ltd_equal_compute=p.ltd_stop == "equal_compute",
    )
