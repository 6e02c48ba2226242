"""Validation jobs: their settings, their result, and how a measurement calibrates a plan.

Shared by `api/` (which stores and serves them) and `worker/` (which measures them); pure numbers.

A job measures step time T'(r) of a possibly scaled-down model (L' layers, L'_ltd of them
dropping) at a few reserved lengths r. The saving of random-LTD is a ratio that carries over to the
full model when taken per layer:

    d(r)      = (T'(r) - T'(S)) / L'_ltd            time a dropping layer saves at length r
    T(S)      = T'(S) * F(S) / F'(S)                full model's step, scaled by its FLOPs ratio
    T(r)      = T(S) + L_ltd * d(r)
    saving    = 1 - sum_t T(r_t) / (n_baseline * T(S))

With L' = L this is exactly DESIGN.md's `1 - sum_t T(r_t) / (n_baseline * T(S))`. T'(r) is fitted
by least squares as c0 + c1 r + c2 r^2, so the sum over a run is exact from sum(r), sum(r^2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from planner.device import DeviceProfile
from planner.document import Calibration, Plan, request_from_plan
from planner.hardware import cost_usd, gpu_preset_for_name, wall_clock_hours
from planner.resolve import Runs, build_runs, resolve

# Bounds of what a worker measures: beyond any run, inside every number type the API stores.
Length = Annotated[int, Field(ge=1, le=10**7)]  # tokens in a sequence
Count = Annotated[int, Field(ge=0, le=10**18)]
Ms = Annotated[float, Field(ge=0, le=1e9)]
Rate = Annotated[float, Field(ge=0, le=1e21)]
Signed = Annotated[float, Field(ge=-1e12, le=1e12)]
Saving = Annotated[float, Field(ge=-1e3, le=1)]  # a fraction; negative: slower with dropping
Loss = Annotated[float, Field(ge=0, le=1e6)]
Name = Annotated[str, Field(max_length=200)]


class ValidationSettings(BaseModel):
    """How a validation job measures; every field has a default sized for about a minute on a
    CPU with a small model."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mode: Literal["throughput", "convergence", "both", "profile"] = Field(
        "throughput",
        description="Measure step time, train both runs to equal LayerTokens, or both; or "
        "measure the device into a device profile (`ltd profile`) that the API stores.",
    )
    num_layers: int | None = Field(
        None, ge=3, le=1000, description="Layers to build; default: the plan's, scaled to fit."
    )
    micro_batch_size: int | None = Field(None, ge=1, le=4096, description="Sequences per step.")
    reserved_lengths: list[Length] | None = Field(
        None,
        min_length=2,
        max_length=32,
        description="Reserved lengths to time; default 5 points from min_value to S.",
    )
    warmup_steps: int = Field(3, ge=0, le=1000, description="Untimed steps per length.")
    measure_steps: int = Field(5, ge=1, le=10000, description="Timed steps per length.")
    train_steps: int = Field(60, ge=1, le=1_000_000, description="Convergence mode: steps.")
    dataset: str = Field(
        "stdlib", max_length=255, description="'stdlib' (Python's own sources) or a file path."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds data, init and token drops.")
    device: Literal["auto", "cuda", "cpu"] = Field("auto", description="Where to run.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto: bfloat16 autocast on CUDA, float32 on the CPU."
    )
    max_minutes: float = Field(10.0, gt=0, le=24 * 60, description="Time cap; scale to fit it.")


class StepTime(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)  # NaN is no measurement: refused

    reserved_length: Length
    seqlen: Length | None = Field(
        None, description="Curriculum learning: the sequence length c the step ran at."
    )
    step_time_ms: Ms
    tokens_per_s: Rate
    model_flops_per_s: Rate
    predicted_step_time_ms: Ms | None = Field(
        None, description="The step-time model's T(r) for the very shape measured."
    )
    prediction_error: Signed | None = Field(
        None, description="predicted / measured - 1 (0.05: the model says 5% slower)."
    )


class ConvergenceResult(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)  # NaN is no measurement: refused

    layer_tokens: Count = Field(description="LayerTokens both runs were trained to.")
    baseline_steps: Count
    random_ltd_steps: Count
    baseline_eval_loss: Loss
    random_ltd_eval_loss: Loss


class ValidationResult(BaseModel):
    """What a validation job reports back (no NaN or infinity anywhere: refused with a 422)."""

    model_config = ConfigDict(allow_inf_nan=False)

    device: Name
    gpu_name: Name | None
    torch_version: Name
    dtype: Name
    num_layers: Count | None = Field(
        description="Layers of the model actually measured (L'); None in profile mode."
    )
    num_ltd_layers: Count | None = Field(description="Its dropping layers (L'_ltd).")
    micro_batch_size: Count | None
    seq_len: Length | None
    accumulation_steps: Count = Field(
        1,
        description="Micro-batches per optimizer step (the plan's G / (GPUs x micro-batch)): "
        "step_time_ms is this many forward-backward passes plus one optimizer "
        "update.",
    )
    optimizer_step_ms: Ms | None = Field(
        None, description="Once per optimizer step: gradient clipping and AdamW, milliseconds."
    )
    scaled_down: list[Annotated[str, Field(max_length=2000)]] = Field(
        max_length=100, description="What was made smaller than the plan, and why."
    )
    step_times: list[StepTime] = Field(max_length=1000)
    step_time_fit: list[Signed] | None = Field(
        None,
        max_length=10,
        description="T'(r) = c0 + c1 r + c2 r^2, milliseconds; composed with curriculum "
        "learning, T(c, k) = a + b c + e k + d c^2 + f k^2 as [a, b, e, d, f], k = min(r, c); "
        "None: no step timed.",
    )
    measured_wall_clock_saving: Saving | None = Field(
        None, description="The plan's saving from the measured T'(r); None: nothing was timed."
    )
    predicted_wall_clock_saving: Saving | None = Field(
        None,
        description="The same integration over the step-time model's T(r) for the shape "
        "measured: what the model predicted for this measurement.",
    )
    prediction_profile: Name | None = Field(
        None, description="The device profile the prediction used."
    )
    flops_saving: Saving = Field(description="The planner's FLOPs saving for the same schedule.")
    mfu: Annotated[float, Field(ge=0, le=1e3)] | None = Field(
        description="Model FLOPs utilisation of the full-length step."
    )
    peak_memory_bytes: Annotated[int, Field(ge=0, le=10**18)] | None
    gather_scatter_fraction: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="Share of the step spent gathering and scattering tokens."
    )
    convergence: ConvergenceResult | None = None
    device_profile: DeviceProfile | None = Field(
        None, description="Mode profile: the device measured (the API stores it)."
    )
    seconds: Annotated[float, Field(ge=0, le=1e8)] = Field(
        description="Wall-clock seconds the job took."
    )


def fit_step_time(
    lengths: Sequence[float] | np.ndarray,
    times_ms: Sequence[float] | np.ndarray,
) -> list[float]:
    """Least-squares T(r) = c0 + c1 r + c2 r^2 (fewer terms when there are fewer points)."""
    r = np.asarray(lengths, dtype=np.float64)
    t = np.asarray(times_ms, dtype=np.float64)
    degree = min(2, len(np.unique(r)) - 1)
    coeffs = np.polynomial.polynomial.polyfit(r, t, degree)
    return [float(c) for c in np.pad(coeffs, (0, 3 - len(coeffs)))]


def measured_saving(
    runs: Runs,
    fit: list[float],
    *,
    measured_num_layers: int,
    measured_ltd_layers: int,
    flops_ratio: float,
) -> float:
    """The plan's wall-clock saving implied by a fitted T'(r) (module docstring).

    `flops_ratio` is F(S) / F'(S): a full model step's FLOPs over the measured model's, at S.
    """
    c0, c1, c2 = fit
    S = runs.resolved.model.seq_len
    L_ltd = len(runs.resolved.ltd.layer_ids or ())

    def t_measured(r: float) -> float:
        return c0 + c1 * r + c2 * r * r

    t_full_S = t_measured(S) * flops_ratio
    # sum_t d(r_t) over the random-LTD run, from the moments of its schedule.
    n = runs.ltd.num_steps
    sum_r, sum_r2 = runs.ltd.total(lambda r, c: r), runs.ltd.total(lambda r, c: r * r)
    sum_d = (c0 * n + c1 * sum_r + c2 * sum_r2 - n * t_measured(S)) / max(measured_ltd_layers, 1)
    ltd_time = n * t_full_S + L_ltd * sum_d
    base_time = runs.baseline.num_steps * t_full_S
    return 1.0 - ltd_time / base_time


def fit_composed_step_time(
    pairs: Sequence[tuple[float, float]], times_ms: Sequence[float]
) -> list[float]:
    """Least-squares T(c, k) = a + b c + d c^2 + e k + f k^2 over measured (c, k) pairs, k =
    min(r, c) (fewer terms when there are fewer distinct pairs)."""
    c = np.asarray([p[0] for p in pairs], dtype=np.float64)
    k = np.asarray([p[1] for p in pairs], dtype=np.float64)
    columns = [np.ones_like(c), c, k, c * c, k * k]
    terms = min(len(columns), len(set(pairs)))
    design = np.stack(columns[:terms], axis=1)
    coeffs, *_ = np.linalg.lstsq(design, np.asarray(times_ms, dtype=np.float64), rcond=None)
    return [float(x) for x in np.pad(coeffs, (0, len(columns) - terms))]


def composed_step_time(fit: list[float], c: np.ndarray, k: np.ndarray) -> np.ndarray:
    a, b, e, d, f = fit
    return a + b * c + e * k + d * c * c + f * k * k


def composed_measured_saving(runs: Runs, fit: list[float]) -> float:
    """The plan's wall-clock saving implied by a measured T(c, k), summed over the run's
    segments of constant (c, r) against n_baseline x T(S, S). Exact when the job measured every
    layer; with fewer layers, approximate (the fixed parts weigh more)."""
    prof = runs.ltd
    assert prof.seqlens is not None  # a composed plan
    S = float(runs.resolved.model.seq_len)
    c = prof.seqlens.astype(np.float64)
    k = np.minimum(prof.values, prof.seqlens).astype(np.float64)
    ltd_time = float(np.dot(composed_step_time(fit, c, k), prof.counts.astype(np.float64)))
    base_time = runs.baseline.num_steps * float(
        composed_step_time(fit, np.asarray(S), np.asarray(S))
    )
    return 1.0 - ltd_time / base_time


def runs_for_plan(plan: Plan) -> Runs:
    """The two runs of a stored plan document, rebuilt exactly (the same plan id)."""
    runs = build_runs(resolve(request_from_plan(plan)))
    assert runs.ltd.num_steps == plan.random_ltd.steps  # internal invariant
    return runs


def calibrate(plan: Plan, result: ValidationResult, *, job_id: str) -> Calibration:
    """The calibrated projection a plan shows once a validation job has succeeded: the
    baseline's hours (with the measured MFU where the job ran on the plan's GPU type), and the
    random-LTD run's as those times (1 - measured saving)."""
    if result.measured_wall_clock_saving is None:
        raise ValueError("the result timed no steps: nothing to calibrate with")
    hw = plan.hardware
    same_gpu = gpu_preset_for_name(result.gpu_name) == hw.gpu
    mfu = result.mfu if same_gpu and result.mfu else hw.mfu
    base_hours = wall_clock_hours(plan.baseline.flops, hw, mfu=mfu)
    ltd_hours = base_hours * (1.0 - result.measured_wall_clock_saving)
    return Calibration(
        label=f"calibrated by job {job_id} on {result.gpu_name or result.device}",
        job_id=job_id,
        device=result.device,
        gpu_name=result.gpu_name,
        mfu=mfu,
        mfu_source="measured" if mfu != hw.mfu else "plan default",
        measured_wall_clock_saving=result.measured_wall_clock_saving,
        flops_saving=plan.savings.flops,
        baseline_wall_clock_hours=base_hours,
        random_ltd_wall_clock_hours=ltd_hours,
        random_ltd_gpu_hours=ltd_hours * hw.num_gpus,
        random_ltd_cost_usd=cost_usd(ltd_hours * hw.num_gpus, hw),
    )


__all__ = [
    "ConvergenceResult",
    "StepTime",
    "ValidationResult",
    "ValidationSettings",
    "calibrate",
    "composed_measured_saving",
    "fit_composed_step_time",
    "fit_step_time",
    "measured_saving",
    "runs_for_plan",
]
