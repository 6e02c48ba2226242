"""`run_validation(plan, settings)`: measure what random-LTD saves on this device.

The job, stage by stage (DESIGN.md, "Validation jobs"):

1. Size: build the plan's layer shape with as many layers, as large a micro-batch and (last
   resort) as long a sequence as fit the device's memory and the time budget; say what shrank.
2. Throughput (`worker.throughput`): time whole optimizer steps at the (c, r) pairs the plan's
   schedule visits, fit T'(c, min(r, c)) and integrate it over the plan's own schedule, beside
   the planner's FLOPs saving and the step-time model's prediction.
3. Convergence (optional, `worker.convergence`): train a baseline and a random-LTD model from
   the same initialisation to equal LayerTokens and report both held-out losses.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from planner.calibration import runs_for_plan
from planner.document import Plan
from planner.models import ModelShape
from planner.sizing import (
    JobSize,
    measured_ltd_layer_ids,
    measured_shape,
    size_job,
    step_equivalents,
)
from planner.validation import ValidationResult, ValidationSettings
from worker import distributed, measure
from worker.convergence import run_convergence
from worker.data import load_corpus
from worker.profile import measure_profile
from worker.throughput import NO_THROUGHPUT, plan_points, run_throughput

Progress = Callable[[float, str], None]

CPU_BUDGET_S = 45.0  # on a CPU a job is a pipeline check: keep it to about a minute
BUDGET_FRACTION = 0.6  # share of max_minutes the timed and trained steps may fill


def _phase(
    progress: Progress | None, start: float, end: float, message: str
) -> Callable[[float], None]:
    """A [0, 1] progress callback mapped onto [start, end] of the whole job."""

    def report(fraction: float) -> None:
        if progress is not None:
            progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)

    return report


def _budget_s(settings: ValidationSettings, device: torch.device) -> float:
    """The share of max_minutes the steps may fill; on a CPU, CPU_BUDGET_S unless the job set
    max_minutes itself."""
    budget = settings.max_minutes * 60 * BUDGET_FRACTION
    capped = device.type == "cpu" and "max_minutes" not in settings.model_fields_set
    return min(budget, CPU_BUDGET_S) if capped else budget


def _size(
    plan: Plan,
    m: ModelShape,
    settings: ValidationSettings,
    device: torch.device,
    amp_dtype: torch.dtype,
    num_lengths: int,
) -> JobSize:
    """Stage 1. Every rank sizes from rank 0's probes, so all build the same model."""
    probe = distributed.agree(
        measure.matmul_flops_per_s(device, amp_dtype, min(m.hidden_size, 1024))
    )
    memory = int(distributed.agree(measure.available_memory_bytes(device)))
    return size_job(
        m,
        settings,
        plan_micro_batch_size=plan.hardware.micro_batch_size,
        budget_s=_budget_s(settings, device),
        memory_bytes=memory,
        flops_per_s=probe,
        step_equivalents=step_equivalents(settings, num_lengths),
    )


def profile_job(
    plan: Plan, settings: ValidationSettings, progress: Progress | None, started: float
) -> ValidationResult:
    """Mode "profile": measure this device (`ltd profile`); no model is built."""
    profile = measure_profile(settings.device, settings.dtype, progress=progress)
    device = measure.pick_device(settings.device)
    return ValidationResult(
        device=device.type,
        gpu_name=measure.gpu_name(device),
        torch_version=torch.__version__,
        dtype=profile.dtype,
        num_layers=None,
        num_ltd_layers=None,
        micro_batch_size=None,
        seq_len=None,
        scaled_down=[],
        flops_saving=plan.savings.flops,
        peak_memory_bytes=measure.peak_memory_bytes(device),
        device_profile=profile,
        seconds=time.perf_counter() - started,
        **NO_THROUGHPUT,
    )


def run_validation(
    plan: Plan, settings: ValidationSettings | None = None, progress: Progress | None = None
) -> ValidationResult:
    """Measure the plan's random-LTD saving on this machine (module docstring). `progress` is
    called with the fraction done, in [0, 1], and what is being done."""
    settings = settings or ValidationSettings()
    started = time.perf_counter()
    if settings.mode == "profile":
        return profile_job(plan, settings, progress, started)
    distributed.init_distributed(settings.device)  # a no-op unless launched by torchrun
    device = measure.pick_device(settings.device)
    amp_dtype = measure.pick_amp_dtype(device, settings.dtype)
    runs = runs_for_plan(plan)
    # 1. Size the job to the device's memory and the time budget.
    _phase(progress, 0, 0, "sizing the job")(0)
    size = _size(plan, plan.model, settings, device, amp_dtype, len(plan_points(runs, settings)))
    shape, ltd_ids = measured_shape(plan.model, size), measured_ltd_layer_ids(plan, size)
    corpus = load_corpus(settings.dataset)
    measure.reset_peak_memory(device)
    # 2. Throughput: step time at the schedule's (c, r), fit, integrate over the schedule.
    tp_end = 1.0 if settings.mode == "throughput" else 0.5
    tp = None
    if settings.mode != "convergence":
        timing = _phase(progress, 0.0, tp_end, "timing steps")
        tp = run_throughput(
            plan, runs, shape, size, ltd_ids, corpus=corpus, settings=settings, device=device,
            amp_dtype=amp_dtype, progress=timing,
        )  # fmt: skip
    # 3. Convergence: baseline and random-LTD trained to equal LayerTokens.
    convergence = None
    if settings.mode != "throughput":
        training = _phase(progress, tp_end if tp else 0.0, 1.0, "training both runs")
        convergence = run_convergence(
            plan, shape, ltd_ids, corpus=corpus, size=size, settings=settings, device=device,
            amp_dtype=amp_dtype, progress=training,
        )  # fmt: skip
    _phase(progress, 1, 1, "done")(1)
    return ValidationResult(
        device=device.type,
        gpu_name=measure.gpu_name(device),
        torch_version=torch.__version__,
        dtype=str(amp_dtype).removeprefix("torch."),
        num_layers=size.num_layers,
        num_ltd_layers=len(ltd_ids),
        micro_batch_size=size.micro_batch_size,
        seq_len=size.seq_len,
        scaled_down=list(size.scaled_down),
        flops_saving=plan.savings.flops,
        peak_memory_bytes=measure.peak_memory_bytes(device),
        convergence=convergence,
        seconds=time.perf_counter() - started,
        **(tp.result_fields(device) if tp else NO_THROUGHPUT),
    )
