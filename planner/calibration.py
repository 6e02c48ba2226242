"""What a validation job's measurement means for its plan: the fitted step time, the wall-clock
saving it implies over the plan's own schedule, and the calibrated projection.

A job times steps of a possibly scaled-down model (L' layers, L'_ltd of them dropping, sequence
S') at a few pairs (c, k): sequence length c (S without curriculum learning) and kept length
k = min(r, c). It fits, in the plan's units of length (a measured length times S / S'),

    T'(c, k)  = a + b c + e k + d c^2 + f k^2      (least squares; fewer terms where the points
                                                    cannot tell them apart, e.g. c = S always)

The saving of random-LTD is a ratio that carries over to the full model when taken per layer:

    T(c, c)   = T'(c, c) x F(c) / F'(c)            full model's dense step, by its FLOPs ratio
    T(c, k)   = T(c, c) + L_ltd (T'(c, k) - T'(c, c)) / L'_ltd
    saving    = 1 - sum_t T(c_t, k_t) / (n_baseline x T(S, S))

With L' = L and S' = S this is exactly DESIGN.md's 1 - sum_t T(r_t) / (n_baseline T(S)), and a
run without curriculum learning is the case c = S. One fit and one integral serve both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from planner import flops as F
from planner.document import Calibration, Plan, request_from_plan
from planner.gpus import gpu_preset_for_name
from planner.hardware import cost_usd, wall_clock_hours
from planner.models import ModelShape
from planner.resolve import Runs, build_runs, resolve
from planner.validation import ValidationResult

FIT_TERMS = ("1", "c", "k", "c^2", "k^2")  # the order of `ValidationResult.step_time_fit`


def fit_step_time(points: Sequence[tuple[float, float]], times_ms: Sequence[float]) -> list[float]:
    """Least-squares T(c, k) = a + b c + e k + d c^2 + f k^2 over measured (c, k) points, as
    [a, b, e, d, f]. A term the points cannot tell apart from the earlier ones (c and c^2 when
    c never changes; k^2 with two lengths) is left out, its coefficient 0."""
    c = np.asarray([p[0] for p in points], dtype=np.float64)
    k = np.asarray([p[1] for p in points], dtype=np.float64)
    columns = [np.ones_like(c), k, k * k, c, c * c]  # k's terms first: they carry the saving
    order = (0, 2, 4, 1, 3)  # where each column goes in FIT_TERMS
    kept: list[int] = []
    for i in range(len(columns)):
        trial = np.stack([columns[j] / max(np.abs(columns[j]).max(), 1.0) for j in [*kept, i]], 1)
        if np.linalg.matrix_rank(trial) == len(kept) + 1:
            kept.append(i)
    design = np.stack([columns[j] for j in kept], axis=1)
    solved, *_ = np.linalg.lstsq(design, np.asarray(times_ms, dtype=np.float64), rcond=None)
    coeffs = [0.0] * len(FIT_TERMS)
    for j, value in zip(kept, solved, strict=True):
        coeffs[order[j]] = float(value)
    return coeffs


def fitted_ms(fit: Sequence[float], c: np.ndarray, k: np.ndarray) -> np.ndarray:
    """T'(c, k) from a fit (milliseconds)."""
    a, b, e, d, f = fit
    return a + b * c + e * k + d * c * c + f * k * k


def measured_saving(
    runs: Runs,
    fit: Sequence[float],
    *,
    measured: ModelShape,
    measured_ltd_layers: int,
) -> float:
    """The plan's wall-clock saving implied by a fitted T'(c, k) of the `measured` model
    (module docstring)."""
    res, run = runs.resolved, runs.ltd
    plan_model, S = res.model, res.model.seq_len
    to_measured = measured.seq_len / S

    def dense_ratio(c: np.ndarray) -> np.ndarray:
        """F(c) / F'(c): the full model's dense step over the measured model's, per sequence."""
        full = F.step_flops(plan_model, reserved=c, seqlen=c, num_ltd_layers=0)
        c_measured = c * to_measured
        part = F.step_flops(measured, reserved=c_measured, seqlen=c_measured, num_ltd_layers=0)
        return np.asarray(full / part)

    def full_model_ms(c: np.ndarray, k: np.ndarray) -> np.ndarray:
        dense = fitted_ms(fit, c, c)
        saved_per_layer = (fitted_ms(fit, c, k) - dense) / max(measured_ltd_layers, 1)
        return dense * dense_ratio(c) + res.num_ltd_layers * saved_per_layer

    c = run.seqlens.astype(np.float64)
    k = np.minimum(run.reserved, run.seqlens).astype(np.float64)
    ltd_time = float(np.dot(full_model_ms(c, k), run.counts.astype(np.float64)))
    full = np.asarray([float(S)])
    base_time = runs.baseline.num_steps * float(full_model_ms(full, full)[0])
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
