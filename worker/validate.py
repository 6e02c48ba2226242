"""`run_validation(plan, settings)`: measure what random-LTD saves on this device.

The job, stage by stage (DESIGN.md, "Validation jobs"):

1. Size: build the plan's layer shape with as many layers, as large a micro-batch and (last
   resort) as long a sequence as fit the device's memory and the time budget; say what shrank.
2. Throughput: time whole optimizer steps at a handful of reserved lengths from the schedule's
   smallest to S, fit T'(r) = c0 + c1 r + c2 r^2 and integrate it over the plan's own schedule
   (`planner.validation.measured_saving`), beside the planner's FLOPs saving.
3. Convergence (optional): train a baseline and a random-LTD model from the same initialisation to
   equal LayerTokens, each with the LayerToken LR schedule, and report both held-out losses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from planner.budget import Accounting, profile_until
from planner.device import BUILTIN, DeviceProfile, builtin_profile
from planner.document import Plan
from planner.flops import step_flops_composed
from planner.hardware import gpu_preset_for_name
from planner.lr import LRConfig
from planner.models import ModelShape
from planner.sizing import (
    EVAL_BATCHES,
    JobSize,
    accumulation_steps,
    composed_pairs,
    default_reserved_lengths,
    measured_ltd_layer_ids,
    measured_shape,
    scaled_curriculum,
    scaled_lengths,
    scaled_schedule,
    size_job,
    step_equivalents,
)
from planner.steptime import StepShape, step_time_s
from planner.validation import (
    ConvergenceResult,
    StepTime,
    ValidationResult,
    ValidationSettings,
    composed_measured_saving,
    fit_composed_step_time,
    fit_step_time,
    measured_saving,
    runs_for_plan,
)
from worker import distributed, measure
from worker.data import Corpus, load_corpus
from worker.model import Transformer, build_model
from worker.profile import measure_profile
from worker.train import make_optimizer, run_schedule, train, unwrap

Progress = Callable[[float, str], None]

CPU_BUDGET_S = 45.0  # on a CPU a job is a pipeline check: keep it to about a minute
BUDGET_FRACTION = 0.6  # share of max_minutes the timed and trained steps may fill
DEFAULT_PEAK_LR = 1e-3


# 2. Throughput --------------------------------------------------------------------------------


def measure_step_times(
    model: torch.nn.Module,
    lengths: list[int],
    *,
    corpus: Corpus,
    size: JobSize,
    accumulation: int,
    settings: ValidationSettings,
    device: torch.device,
    amp_dtype: torch.dtype,
    progress: Callable[[float], None],
    seqlens: list[int] | None = None,
) -> tuple[list[StepTime], float]:
    """Step time at each reserved length (of the measured model): `accumulation` forward-backward
    passes, timed after warm-up, plus one optimizer update; under DDP rank 0's figures. With
    `seqlens` (curriculum learning) each step's sequences are cut to its length.
    Returns the step times and the optimizer update's milliseconds."""
    core: Transformer = unwrap(model)
    shape, L_ltd, mb = core.shape, len(core.ltd_layer_ids), size.micro_batch_size
    rng = np.random.default_rng(settings.seed)
    inputs, targets = corpus.batch("train", mb, size.seq_len, shape.vocab_size, rng)
    model.train()
    fb_ms = measure.forward_backward_ms(
        model,
        (inputs.to(device), targets.to(device)),
        lengths,
        amp_dtype=amp_dtype,
        warmup=settings.warmup_steps,
        repeats=settings.measure_steps,
        progress=progress,
        seqlens=seqlens,
    )
    opt_ms = distributed.agree(measure.optimizer_step_ms(model, make_optimizer(model)))
    results = []
    cuts: list[int] = seqlens if seqlens is not None else [size.seq_len] * len(lengths)
    for r, c, ms in zip(lengths, cuts, fb_ms, strict=True):
        step_ms = accumulation * distributed.agree(ms) + opt_ms
        step_flops = accumulation * float(
            step_flops_composed(np.asarray(r), np.asarray(c), shape, rows=mb, num_ltd_layers=L_ltd)
        )
        results.append(
            StepTime(
                reserved_length=r,
                seqlen=c if seqlens is not None else None,
                step_time_ms=step_ms,
                tokens_per_s=accumulation * mb * c / (step_ms / 1e3),
                model_flops_per_s=step_flops / (step_ms / 1e3),
            )
        )
    return results, opt_ms


def gather_scatter_fraction(
    times: list[StepTime],
    *,
    size: JobSize,
    accumulation: int,
    hidden: int,
    num_ltd_layers: int,
    device: torch.device,
) -> float | None:
    """Share of the step at the smallest measured length spent sampling, gathering and
    scattering, in every micro-batch (where it weighs most)."""
    smallest = times[0]
    if smallest.reserved_length >= size.seq_len or num_ltd_layers == 0:
        return None
    # The residual stream the drop acts on stays fp32 under autocast (weights are fp32).
    ms = measure.gather_scatter_ms(
        batch=size.micro_batch_size,
        seq_len=size.seq_len,
        reserved_length=smallest.reserved_length,
        hidden=hidden,
        num_ltd_layers=num_ltd_layers,
        device=device,
        dtype=torch.float32,
    )
    return accumulation * ms / smallest.step_time_ms


# 3. Convergence -------------------------------------------------------------------------------


def run_convergence(
    plan: Plan,
    shape: ModelShape,
    ltd_layer_ids: tuple[int, ...],
    *,
    corpus: Corpus,
    size: JobSize,
    settings: ValidationSettings,
    device: torch.device,
    amp_dtype: torch.dtype,
    progress: Callable[[float], None],
) -> ConvergenceResult:
    """Baseline for `train_steps` steps; random-LTD until its LayerTokens reach the baseline's."""
    mb, S, L, L_ltd = size.micro_batch_size, size.seq_len, shape.num_layers, len(ltd_layer_ids)
    base_acc, ltd_acc = Accounting(mb, S, L, 0, S), Accounting(mb, S, L, L_ltd, S)
    tokens = settings.train_steps * mb * S
    # The plan's peak LR and decay shape, its warmup and decay budgets scaled to this run.
    peak = plan.lr.peak_lr if plan.lr else DEFAULT_PEAK_LR
    lr = LRConfig(
        peak_lr=peak,
        min_lr=plan.lr.min_lr if plan.lr else peak / 10,
        warmup_tokens=tokens // 20,
        decay_tokens=tokens,
        style=plan.lr.style if plan.lr else "cosine",
    )
    base = run_schedule(settings.train_steps, acc=base_acc, lr=lr)
    cfg = scaled_schedule(plan, seq_len=S, num_steps=settings.train_steps)
    cl = scaled_curriculum(plan, seq_len=S, num_steps=settings.train_steps)
    # Equal LayerTokens: with curriculum learning, the ones each layer really processed.
    counter = ltd_acc.layer_tokens if cl is None else ltd_acc.actual_layer_tokens
    ltd_steps = profile_until(cfg, counter, base.layer_tokens, cl).num_steps
    ltd = run_schedule(ltd_steps, acc=ltd_acc, lr=lr, ltd=cfg, curriculum=cl)
    share = base.num_steps / (base.num_steps + ltd.num_steps)
    losses = []
    for i, schedule in enumerate((base, ltd)):
        model = _build(shape, ltd_layer_ids, settings.seed, device)
        offset, width = (0.0, share) if i == 0 else (share, 1 - share)
        log = train(
            model,
            corpus,
            schedule,
            batch_size=mb,
            device=device,
            amp_dtype=amp_dtype,
            seed=settings.seed,
            eval_batches=EVAL_BATCHES,
            progress=_span(progress, offset, width),
        )
        if log.eval_loss is None:
            raise RuntimeError("a convergence run ended without an evaluation loss")
        if not math.isfinite(log.eval_loss):  # a diverged run: fail the job, do not retry it
            raise ValueError(
                f"the {'baseline' if i == 0 else 'random-LTD'} run diverged: evaluation loss "
                f"{log.eval_loss} (lower the learning rate)"
            )
        losses.append(log.eval_loss)
    return ConvergenceResult(
        layer_tokens=base.layer_tokens,
        baseline_steps=base.num_steps,
        random_ltd_steps=ltd.num_steps,
        baseline_eval_loss=float(losses[0]),
        random_ltd_eval_loss=float(losses[1]),
    )


def _span(
    progress: Callable[[float], None], offset: float, width: float
) -> Callable[[float], None]:
    """A [0, 1] progress callback mapped onto [offset, offset + width]."""

    def report(fraction: float) -> None:
        progress(offset + width * fraction)

    return report


def _build(
    shape: ModelShape, ltd_layer_ids: tuple[int, ...], seed: int, device: torch.device
) -> torch.nn.Module:
    """The same initialisation on every rank and for every run; then each rank's own drops."""
    torch.manual_seed(seed)
    model = distributed.wrap(build_model(shape, ltd_layer_ids=ltd_layer_ids).to(device), device)
    torch.manual_seed(seed + distributed.rank())
    return model


# The job --------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Throughput:
    """Stage 2's figures."""

    step_times: list[StepTime]
    fit: list[float]
    saving: float
    gather_scatter_fraction: float | None
    accumulation: int
    optimizer_step_ms: float
    predicted_saving: float
    prediction_profile: str

    def result_fields(self, device: torch.device) -> dict[str, Any]:
        """The throughput part of a ValidationResult."""
        full = self.step_times[-1]  # the full-length step
        return {
            "accumulation_steps": self.accumulation,
            "optimizer_step_ms": self.optimizer_step_ms,
            "step_times": self.step_times,
            "step_time_fit": self.fit,
            "measured_wall_clock_saving": self.saving,
            "predicted_wall_clock_saving": self.predicted_saving,
            "prediction_profile": self.prediction_profile,
            "mfu": measure.mfu(full.model_flops_per_s, device),
            "gather_scatter_fraction": self.gather_scatter_fraction,
        }


# The throughput part of a result where none was measured (convergence mode).
NO_THROUGHPUT: dict[str, Any] = {
    "accumulation_steps": 1,
    "optimizer_step_ms": None,
    "step_times": [],
    "step_time_fit": None,
    "measured_wall_clock_saving": None,
    "mfu": None,
    "gather_scatter_fraction": None,
}


def run_throughput(
    plan: Plan,
    m: ModelShape,
    size: JobSize,
    ltd_ids: tuple[int, ...],
    lengths_plan: list[int],
    *,
    corpus: Corpus,
    settings: ValidationSettings,
    device: torch.device,
    amp_dtype: torch.dtype,
    progress: Callable[[float], None],
) -> Throughput:
    """Time the measured model across reserved lengths, fit T'(r) in the plan's units of r and
    integrate it over the plan's own schedule."""
    shape = measured_shape(m, size)
    model = _build(shape, ltd_ids, settings.seed, device)
    lengths = scaled_lengths(lengths_plan, m.seq_len, size.seq_len)
    accumulation = accumulation_steps(plan, size.micro_batch_size)
    times, opt_ms = measure_step_times(
        model,
        lengths,
        corpus=corpus,
        size=size,
        accumulation=accumulation,
        settings=settings,
        device=device,
        amp_dtype=amp_dtype,
        progress=progress,
    )
    del model
    fit = fit_step_time(
        [t.reserved_length * m.seq_len / size.seq_len for t in times],
        [t.step_time_ms for t in times],
    )
    L_ltd = len(ltd_ids)
    flops_ratio = measure.step_model_flops(
        m.seq_len, m, micro_batch_size=1, num_ltd_layers=L_ltd
    ) / measure.step_model_flops(size.seq_len, shape, micro_batch_size=1, num_ltd_layers=L_ltd)
    runs = runs_for_plan(plan)
    saving = measured_saving(
        runs,
        fit,
        measured_num_layers=size.num_layers,
        measured_ltd_layers=L_ltd,
        flops_ratio=flops_ratio,
    )
    share = gather_scatter_fraction(
        times,
        size=size,
        accumulation=accumulation,
        hidden=m.hidden_size,
        num_ltd_layers=L_ltd,
        device=device,
    )
    # The step-time model's prediction for this very shape, integrated the same way.
    step = StepShape(
        shape, L_ltd, size.micro_batch_size, accumulation, num_gpus=distributed.world_size()
    )
    times, predicted_ms, label = with_predictions(plan, times, step, device, amp_dtype)
    predicted_fit = fit_step_time(
        [t.reserved_length * m.seq_len / size.seq_len for t in times], predicted_ms
    )
    predicted_saving = measured_saving(
        runs,
        predicted_fit,
        measured_num_layers=size.num_layers,
        measured_ltd_layers=L_ltd,
        flops_ratio=flops_ratio,
    )
    return Throughput(times, fit, saving, share, accumulation, opt_ms, predicted_saving, label)


def with_predictions(
    plan: Plan,
    times: list[StepTime],
    step: StepShape,
    device: torch.device,
    amp_dtype: torch.dtype,
) -> tuple[list[StepTime], list[float], str]:
    """The step-time model's T for the very shapes timed, beside each measurement, the
    predictions, and the profile's label. Rank 0 predicts (measuring a profile where needed);
    under DDP every rank reports its figures."""
    profile = prediction_profile(plan, device, amp_dtype) if distributed.rank() == 0 else None
    lengths = np.asarray([t.reserved_length for t in times])
    seqlens = [t.seqlen for t in times]
    seq = None if seqlens[0] is None else np.asarray(seqlens)
    own = step_time_s(lengths, step, profile, seq) * 1e3 if profile else [0.0] * len(times)
    predicted = [distributed.agree(float(t)) for t in own]
    updated = [
        t.model_copy(
            update={"predicted_step_time_ms": p, "prediction_error": p / t.step_time_ms - 1}
        )
        for t, p in zip(times, predicted, strict=True)
    ]
    label = f"{profile.device_name} ({profile.dtype}): {profile.source}" if profile else "rank 0's"
    return updated, predicted, label


def run_composed_throughput(
    plan: Plan,
    m: ModelShape,
    size: JobSize,
    ltd_ids: tuple[int, ...],
    *,
    corpus: Corpus,
    settings: ValidationSettings,
    device: torch.device,
    amp_dtype: torch.dtype,
    progress: Callable[[float], None],
) -> Throughput:
    """A plan composed with curriculum learning: time the (c, r) pairs its schedule visits
    (sequences cut to c), fit T(c, min(r, c)) and sum it over the schedule's segments; the
    step-time model predicts the same pairs."""
    runs = runs_for_plan(plan)
    shape = measured_shape(m, size)
    scale = size.seq_len / m.seq_len

    def measured(n: int) -> int:
        return max(1, min(size.seq_len, round(n * scale)))

    pairs_plan = composed_pairs(runs)
    seqlens = [measured(c) for c, _ in pairs_plan]
    lengths = [measured(r) for _, r in pairs_plan]
    model = _build(shape, ltd_ids, settings.seed, device)
    accumulation = accumulation_steps(plan, size.micro_batch_size)
    times, opt_ms = measure_step_times(
        model, lengths, corpus=corpus, size=size, accumulation=accumulation, settings=settings,
        device=device, amp_dtype=amp_dtype, progress=progress, seqlens=seqlens,
    )  # fmt: skip
    del model
    in_plan_units = [(c / scale, min(r, c) / scale) for r, c in zip(lengths, seqlens, strict=True)]
    fit = fit_composed_step_time(in_plan_units, [t.step_time_ms for t in times])
    step = StepShape(shape, len(ltd_ids), size.micro_batch_size, accumulation,
                     num_gpus=distributed.world_size())  # fmt: skip
    times, predicted, label = with_predictions(plan, times, step, device, amp_dtype)
    predicted_fit = fit_composed_step_time(in_plan_units, predicted)
    return Throughput(
        times,
        fit,
        composed_measured_saving(runs, fit),
        None,
        accumulation,
        opt_ms,
        composed_measured_saving(runs, predicted_fit),
        label,
    )


def prediction_profile(plan: Plan, device: torch.device, amp_dtype: torch.dtype) -> DeviceProfile:
    """The profile to predict a job with: the plan's own where it describes this device and
    dtype, else the built-in one of a known GPU in bfloat16, else measured now (`ltd profile`:
    about ten seconds on a CPU)."""
    name, dtype = measure.gpu_name(device) or "cpu", str(amp_dtype).removeprefix("torch.")
    given = plan.hardware.device_profile
    if isinstance(given, DeviceProfile) and (given.device_name, given.dtype) == (name, dtype):
        return given
    preset = gpu_preset_for_name(name)
    if preset in BUILTIN and dtype == "bfloat16":
        return builtin_profile(preset)
    return measure_profile(device.type, dtype)


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
    m = plan.model
    lengths_plan = settings.reserved_lengths or default_reserved_lengths(
        plan.random_ltd_config, m.seq_len
    )
    # 1. Size the job to the device's memory and the time budget.
    _phase(progress, 0, 0, "sizing the job")(0)
    size = _size(plan, m, settings, device, amp_dtype, len(lengths_plan))
    ltd_ids = measured_ltd_layer_ids(plan, size)
    corpus = load_corpus(settings.dataset)
    measure.reset_peak_memory(device)
    # 2. Throughput: step time by reserved length, fit, integrate over the plan's schedule.
    tp_end = 1.0 if settings.mode == "throughput" else 0.5
    tp = None
    if settings.mode != "convergence" and plan.curriculum and plan.curriculum.config:
        tp = run_composed_throughput(
            plan, m, size, ltd_ids, corpus=corpus, settings=settings, device=device,
            amp_dtype=amp_dtype, progress=_phase(progress, 0.0, tp_end, "timing (c, r) pairs"),
        )  # fmt: skip
    elif settings.mode != "convergence":
        tp = run_throughput(
            plan,
            m,
            size,
            ltd_ids,
            lengths_plan,
            corpus=corpus,
            settings=settings,
            device=device,
            amp_dtype=amp_dtype,
            progress=_phase(progress, 0.0, tp_end, "timing steps"),
        )
    # 3. Convergence: baseline and random-LTD trained to equal LayerTokens.
    convergence = None
    if settings.mode != "throughput":
        convergence = run_convergence(
            plan,
            measured_shape(m, size),
            ltd_ids,
            corpus=corpus,
            size=size,
            settings=settings,
            device=device,
            amp_dtype=amp_dtype,
            progress=_phase(progress, tp_end if tp else 0.0, 1.0, "training both runs"),
        )
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
