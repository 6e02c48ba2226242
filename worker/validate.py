"""`run_validation(plan, settings)`: measure what random-LTD saves on this device, and (mode
quality) whether the saving is worth taking.

The job, stage by stage (DESIGN.md, "Validation jobs"):

1. Size (`planner.sizing`): the plan's model at full size where the step-time model, on this
   device's profile (measured once, then cached), predicts that the job fits `max_minutes` and
   memory; else as many layers, as large a micro-batch and (last resort) as long a sequence as
   fit; the result says what shrank and why, and `predicted_job_seconds` beside `seconds`.
2. Throughput (`worker.throughput`): time whole optimizer steps at the (c, r) pairs the plan's
   schedule visits, fit T'(c, min(r, c)) and integrate it over the plan's own schedule, beside
   the planner's FLOPs saving and the step-time model's prediction.
3. Quality (mode quality, `worker.quality`): baseline and random-LTD trained on paired seeds,
   at equal time (from stage 2's step times) or equal LayerTokens, compared with a noise band.

`max_minutes` is a hard cap: every step checks the clock. A job that reaches it while timing
fails with the reason; while training, it ends with the seed pairs it finished and says so. It is
never retried for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from planner.calibration import runs_for_plan
from planner.device import DeviceProfile, ideal_profile
from planner.document import Plan
from planner.models import ModelShape
from planner.resolve import Runs
from planner.sizing import (
    BUDGET_FRACTION,
    JobSize,
    measured_ltd_layer_ids,
    measured_shape,
    size_job,
)
from planner.validation import ValidationResult, ValidationSettings
from worker import distributed, measure
from worker.data import load_corpus
from worker.predict import device_profile
from worker.profile import measure_profile
from worker.quality import TimeCapReachedError, run_quality
from worker.throughput import NO_THROUGHPUT, implementation_for, run_throughput

Progress = Callable[[float, str], None]


class TimeCapError(ValueError):
    """max_minutes ran out while timing steps: the job fails with the reason (a ValueError:
    the worker does not retry it)."""


class Clock:
    """The job's hard cap: `phase(...)` makes a stage's progress callback that reports to the
    job's own callback and stops the stage once `max_minutes` have passed."""

    def __init__(self, max_minutes: float, progress: Progress | None) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + max_minutes * 60
        self.progress = progress

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def phase(self, start: float, end: float, message: str) -> Callable[[float], None]:
        """A [0, 1] progress callback mapped onto [start, end] of the whole job."""

        def report(fraction: float) -> None:
            if self.progress is not None:
                self.progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)
            if time.monotonic() > self.deadline:
                raise TimeCapReachedError(message)

        return report


def _size(
    plan: Plan,
    runs: Runs,
    settings: ValidationSettings,
    profile: DeviceProfile,
    device: torch.device,
) -> JobSize:
    """Stage 1. Every rank builds the model rank 0 sized (from its profile and memory)."""
    memory = int(distributed.agree(measure.available_memory_bytes(device)))
    size = size_job(
        plan.model,
        runs,
        settings,
        plan_micro_batch_size=plan.hardware.micro_batch_size,
        budget_s=settings.max_minutes * 60 * BUDGET_FRACTION,
        memory_bytes=memory,
        profile=profile,
    )
    agreed = [int(distributed.agree(float(n))) for n in (size.num_layers, size.micro_batch_size,
                                                         size.seq_len)]  # fmt: skip
    return replace(size, num_layers=agreed[0], micro_batch_size=agreed[1], seq_len=agreed[2])


def implementation_label(shape: ModelShape, implementation: str) -> str:
    """What a result says was measured: native, or hf with its Transformers class."""
    if implementation != "hf":
        return "native"
    from worker.hf import architecture_for

    return f"hf: {architecture_for(shape)}"


def profile_job(
    plan: Plan, settings: ValidationSettings, progress: Progress | None
) -> ValidationResult:
    """Mode "profile": measure this device (`ltd profile`); no model is built."""
    started = time.perf_counter()
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
    plan: Plan,
    settings: ValidationSettings | None = None,
    progress: Progress | None = None,
    *,
    profile_cache: Path | None = None,
) -> ValidationResult:
    """Measure the plan's random-LTD saving on this machine (module docstring). `progress` is
    called with the fraction done, in [0, 1], and what is being done; `profile_cache` is the
    folder this device's measured profile is kept in (None: measured each time)."""
    settings = settings or ValidationSettings()
    if settings.mode == "profile":
        return profile_job(plan, settings, progress)
    clock = Clock(settings.max_minutes, progress)
    distributed.init_distributed(settings.device)  # a no-op unless launched by torchrun
    device = measure.pick_device(settings.device)
    amp_dtype = measure.pick_amp_dtype(device, settings.dtype)
    runs = runs_for_plan(plan)
    # 1. Size the job to the device's memory and max_minutes, by the step-time model.
    clock.phase(0, 0, "sizing the job")(0)
    if distributed.rank() == 0:
        measuring = clock.phase(0.0, 0.0, "measuring this device's profile (once)")
        profile, measured_now = device_profile(
            plan, device, amp_dtype, profile_cache, lambda f, _: measuring(f)
        )
    else:  # under torchrun only rank 0 predicts; the others build what it sized
        profile, measured_now = ideal_profile(1.0), False
    size = _size(plan, runs, settings, profile, device)
    shape, ltd_ids = measured_shape(plan.model, size), measured_ltd_layer_ids(plan, size)
    implementation = implementation_for(shape, settings.implementation)
    corpus = load_corpus(settings.dataset)
    measure.reset_peak_memory(device)
    # 2. Throughput: step time at the schedule's (c, r), fit, integrate over the schedule.
    quality = settings.mode == "quality"
    tp_end = 0.15 if quality else 1.0
    try:
        tp = run_throughput(
            plan, runs, shape, size, ltd_ids, corpus=corpus, settings=settings, device=device,
            amp_dtype=amp_dtype, profile=profile if distributed.rank() == 0 else None,
            implementation=implementation, progress=clock.phase(0.0, tp_end, "timing steps"),
        )  # fmt: skip
    except TimeCapReachedError:
        raise TimeCapError(
            f"max_minutes ({settings.max_minutes:g}) reached while timing steps: the model "
            f"({size.num_layers} layers, micro-batch {size.micro_batch_size}, S {size.seq_len}) "
            "is too slow here; raise max_minutes or set num_layers / micro_batch_size"
        ) from None
    # 3. Quality: baseline and random-LTD on paired seeds.
    outcome = None
    if quality:
        outcome = run_quality(
            plan, shape, ltd_ids, tp, size, corpus=corpus, settings=settings, device=device,
            amp_dtype=amp_dtype, seconds_left=distributed.agree(clock.left()),
            implementation=implementation,
            progress=clock.phase(tp_end, 1.0, "training baseline and random-LTD"),
        )  # fmt: skip
    if clock.progress is not None:
        clock.progress(1.0, "done")
    return ValidationResult(
        device=device.type,
        gpu_name=measure.gpu_name(device),
        torch_version=torch.__version__,
        dtype=str(amp_dtype).removeprefix("torch."),
        implementation=implementation_label(shape, implementation),
        num_layers=size.num_layers,
        num_ltd_layers=len(ltd_ids),
        micro_batch_size=size.micro_batch_size,
        seq_len=size.seq_len,
        scaled_down=list(size.scaled_down),
        flops_saving=plan.savings.flops,
        peak_memory_bytes=measure.peak_memory_bytes(device),
        quality=outcome.result if outcome else None,
        device_profile=profile if measured_now else None,
        prediction_device_profile=profile,
        predicted_job_seconds=size.predicted_seconds + (outcome.planned_seconds if outcome else 0),
        stopped_early=outcome.stopped_early if outcome else None,
        seconds=clock.seconds(),
        **tp.result_fields(device),
    )
