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

import numpy as np
import torch

from planner.budget import Accounting, profile_until
from planner.flops import activation_bytes
from planner.lr import LRConfig
from planner.models import ModelShape
from planner.plan import Plan
from planner.schedule import RandomLTDConfig
from planner.validation import (
    ConvergenceResult,
    StepTime,
    ValidationResult,
    ValidationSettings,
    fit_step_time,
    measured_saving,
    runs_for_plan,
)
from worker import distributed, measure
from worker.data import Corpus, load_corpus
from worker.model import Transformer, build_model, default_ltd_layer_ids, padded_vocab_size
from worker.train import make_optimizer, run_schedule, train, unwrap

Progress = Callable[[float, str], None]

CPU_BUDGET_S = 45.0  # on a CPU a job is a pipeline check: keep it to about a minute
BUDGET_FRACTION = 0.6  # share of max_minutes the timed and trained steps may fill
STEP_EFFICIENCY = 0.35  # a training step reaches about this share of the matmul probe's FLOP/s
MIN_LAYERS = 3  # the first and the last layer never drop: 3 leaves one dropping layer
MIN_SEQ_LEN = 64
DEFAULT_NUM_LENGTHS = 5
EVAL_BATCHES = 4
DEFAULT_PEAK_LR = 1e-3


@dataclass(frozen=True)
class JobSize:
    """The model a job actually measures, and why it differs from the plan's."""

    num_layers: int
    micro_batch_size: int
    seq_len: int
    scaled_down: tuple[str, ...]


def default_reserved_lengths(
    cfg: RandomLTDConfig, seq_len: int, count: int = DEFAULT_NUM_LENGTHS
) -> list[int]:
    """`count` lengths evenly from min_value to S, each rounded down to a multiple of
    seq_per_step (as the schedule rounds), the two ends included."""
    points = np.linspace(cfg.min_value, seq_len, count)
    rounded = [max(cfg.min_value, int(p) // cfg.seq_per_step * cfg.seq_per_step) for p in points]
    return sorted({*rounded[:-1], seq_len})


def _scaled_lengths(lengths: list[int], seq_len: int, measured_seq_len: int) -> list[int]:
    """Plan lengths mapped onto a shortened sequence, keeping r / S."""
    return sorted(
        {max(1, min(measured_seq_len, round(r * measured_seq_len / seq_len))) for r in lengths}
    )


def measured_shape(m: ModelShape, size: JobSize) -> ModelShape:
    return m.model_copy(update={"num_layers": size.num_layers, "seq_len": size.seq_len})


def _ltd_layer_ids(plan: Plan, size: JobSize) -> tuple[int, ...]:
    """The plan's dropping layers when measuring every layer, else the default pattern."""
    if size.num_layers == plan.model["num_layers"] and plan.random_ltd_config.layer_ids:
        return tuple(plan.random_ltd_config.layer_ids)
    return default_ltd_layer_ids(size.num_layers)


# 1. Size --------------------------------------------------------------------------------------


def _estimate_s(
    m: ModelShape,
    num_layers: int,
    mb: int,
    seq_len: int,
    *,
    step_equivalents: float,
    flops_per_s: float,
) -> float:
    shape = m.model_copy(update={"num_layers": num_layers, "seq_len": seq_len})
    step = measure.step_model_flops(
        seq_len, shape, micro_batch_size=mb, num_ltd_layers=len(default_ltd_layer_ids(num_layers))
    )
    return step_equivalents * step / (flops_per_s * STEP_EFFICIENCY)


def _estimate_bytes(m: ModelShape, num_layers: int, mb: int, seq_len: int) -> int:
    """Training memory: fp32 weights, grads and AdamW state (16 bytes a parameter), fp32
    activations (twice the planner's bf16 estimate; the model's scaled_dot_product_attention
    stores no attention scores) and the logits with their gradient."""
    shape = m.model_copy(update={"num_layers": num_layers, "seq_len": seq_len})
    acts = 2 * activation_bytes(
        seq_len,
        shape,
        num_ltd_layers=0,
        micro_batch_size=mb,
        activation_recompute=False,
        flash_attention=True,
    )
    logits = 3 * 4 * mb * shape.head_tokens * padded_vocab_size(shape.vocab_size)
    return 16 * shape.num_params + acts + logits


def size_job(
    m: ModelShape,
    settings: ValidationSettings,
    *,
    plan_micro_batch_size: int,
    budget_s: float,
    memory_bytes: int,
    flops_per_s: float,
    step_equivalents: float,
) -> JobSize:
    """Shrink layers, then micro-batch, then sequence until the job fits time and memory.
    Sizes the user set in `settings` are kept."""
    L = settings.num_layers or m.num_layers
    mb = settings.micro_batch_size or plan_micro_batch_size
    S = m.seq_len
    reasons: list[str] = []

    def fits() -> tuple[bool, str]:
        mem = _estimate_bytes(m, L, mb, S)
        if mem > memory_bytes:
            return False, f"needs ~{mem / 2**30:.1f} GiB of {memory_bytes / 2**30:.1f} GiB"
        secs = _estimate_s(m, L, mb, S, step_equivalents=step_equivalents, flops_per_s=flops_per_s)
        if secs > budget_s:
            return False, f"~{secs:.0f} s of steps exceed the {budget_s:.0f} s budget"
        return True, ""

    ok, why = fits()
    while not ok:
        if settings.num_layers is None and L > MIN_LAYERS:
            new = max(MIN_LAYERS, L // 2)
            reasons.append(f"num_layers {L} -> {new}: {why}")
            L = new
        elif settings.micro_batch_size is None and mb > 1:
            reasons.append(f"micro_batch_size {mb} -> {mb // 2}: {why}")
            mb //= 2
        elif S > MIN_SEQ_LEN:
            new = max(MIN_SEQ_LEN, S // 2)
            reasons.append(
                f"seq_len {S} -> {new} (reserved lengths scaled alike; attention's "
                f"share is smaller, so the saving is approximate): {why}"
            )
            S = new
        elif why.startswith("needs"):
            raise RuntimeError(
                f"the smallest model ({L} layers, micro-batch {mb}, seq {S}) "
                f"{why} of memory on this device"
            )
        else:
            break  # the smallest job: run it even if it takes longer than the budget
        ok, why = fits()
    return JobSize(L, mb, S, tuple(reasons))


# 2. Throughput --------------------------------------------------------------------------------


def accumulation_steps(plan: Plan, micro_batch_size: int) -> int:
    """Micro-batches one device runs per optimizer step of the plan: G / (GPUs x micro-batch)."""
    per_device = plan.global_batch_size / max(int(plan.hardware.get("num_gpus", 1)), 1)
    return max(1, math.ceil(per_device / micro_batch_size))


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
) -> tuple[list[StepTime], float]:
    """Step time at each reserved length (of the measured model): `accumulation` forward-backward
    passes, timed after warm-up, plus one optimizer update; under DDP rank 0's figures.
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
    )
    opt_ms = distributed.agree(measure.optimizer_step_ms(model, make_optimizer(model)))
    results = []
    for r, ms in zip(lengths, fb_ms, strict=True):
        step_ms = accumulation * distributed.agree(ms) + opt_ms
        step_flops = accumulation * measure.step_model_flops(
            r, shape, micro_batch_size=mb, num_ltd_layers=L_ltd
        )
        results.append(
            StepTime(
                reserved_length=r,
                step_time_ms=step_ms,
                tokens_per_s=accumulation * mb * size.seq_len / (step_ms / 1e3),
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


def scaled_schedule(plan: Plan, *, seq_len: int, num_steps: int) -> RandomLTDConfig:
    """The plan's schedule compressed to a run of `num_steps` steps on sequences of `seq_len`:
    the same shape of ramp, in proportion."""
    cfg = plan.random_ltd_config
    k = seq_len / plan.model["seq_len"]
    seq_per_step = max(1, round(cfg.seq_per_step * k))
    ramp = cfg.require_steps / max(plan.random_ltd.steps, 1)
    return cfg.model_copy(
        update={
            "min_value": max(seq_per_step, round(cfg.min_value * k)),
            "max_value": seq_len,
            "seq_per_step": seq_per_step,
            "require_steps": max(1, round(ramp * num_steps)),
            "layer_ids": None,
        }
    )


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
    ltd_steps = profile_until(cfg, ltd_acc.layer_tokens, base.layer_tokens).num_steps
    ltd = run_schedule(ltd_steps, acc=ltd_acc, lr=lr, ltd=cfg)
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
            progress=lambda f, o=offset, w=width: progress(o + w * f),
        )
        losses.append(log.eval_loss)
    return ConvergenceResult(
        layer_tokens=base.layer_tokens,
        baseline_steps=base.num_steps,
        random_ltd_steps=ltd.num_steps,
        baseline_eval_loss=float(losses[0]),
        random_ltd_eval_loss=float(losses[1]),
    )


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
    budget = settings.max_minutes * 60 * BUDGET_FRACTION
    return min(budget, CPU_BUDGET_S) if device.type == "cpu" else budget


def _step_equivalents(settings: ValidationSettings, num_lengths: int) -> float:
    """Full-length steps a job runs, roughly: timed sweeps plus two training runs."""
    sweep = num_lengths * (settings.warmup_steps + settings.measure_steps)
    train = 2 * settings.train_steps + 2 * EVAL_BATCHES / 3
    return (sweep if settings.mode != "convergence" else 0) + (
        train if settings.mode != "throughput" else 0
    )


@dataclass(frozen=True)
class Throughput:
    """Stage 2's figures."""

    step_times: list[StepTime]
    fit: list[float]
    saving: float
    gather_scatter_fraction: float | None
    accumulation: int
    optimizer_step_ms: float


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
    lengths = _scaled_lengths(lengths_plan, m.seq_len, size.seq_len)
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
    saving = measured_saving(
        runs_for_plan(plan),
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
    return Throughput(times, fit, saving, share, accumulation, opt_ms)


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
        plan_micro_batch_size=plan.hardware.get("micro_batch_size", 1),
        budget_s=_budget_s(settings, device),
        memory_bytes=memory,
        flops_per_s=probe,
        step_equivalents=_step_equivalents(settings, num_lengths),
    )


def run_validation(
    plan: Plan, settings: ValidationSettings | None = None, progress: Progress | None = None
) -> ValidationResult:
    """Measure the plan's random-LTD saving on this machine (module docstring). `progress` is
    called with the fraction done, in [0, 1], and what is being done."""
    settings = settings or ValidationSettings()
    started = time.perf_counter()
    distributed.init_distributed(settings.device)  # a no-op unless launched by torchrun
    device = measure.pick_device(settings.device)
    amp_dtype = measure.pick_amp_dtype(device, settings.dtype)
    m = ModelShape.model_validate({k: v for k, v in plan.model.items() if k != "num_params"})
    lengths_plan = settings.reserved_lengths or default_reserved_lengths(
        plan.random_ltd_config, m.seq_len
    )
    # 1. Size the job to the device's memory and the time budget.
    _phase(progress, 0, 0, "sizing the job")(0)
    size = _size(plan, m, settings, device, amp_dtype, len(lengths_plan))
    ltd_ids = _ltd_layer_ids(plan, size)
    corpus = load_corpus(settings.dataset)
    measure.reset_peak_memory(device)
    # 2. Throughput: step time by reserved length, fit, integrate over the plan's schedule.
    tp_end = 1.0 if settings.mode == "throughput" else 0.5
    tp = None
    if settings.mode != "convergence":
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
    full = tp.step_times[-1] if tp else None  # the full-length step
    return ValidationResult(
        device=device.type,
        gpu_name=measure.gpu_name(device),
        torch_version=torch.__version__,
        dtype=str(amp_dtype).removeprefix("torch."),
        num_layers=size.num_layers,
        num_ltd_layers=len(ltd_ids),
        micro_batch_size=size.micro_batch_size,
        seq_len=size.seq_len,
        accumulation_steps=tp.accumulation if tp else 1,
        optimizer_step_ms=tp.optimizer_step_ms if tp else None,
        scaled_down=list(size.scaled_down),
        step_times=tp.step_times if tp else [],
        step_time_fit=tp.fit if tp else [0.0, 0.0, 0.0],
        measured_wall_clock_saving=tp.saving if tp else 0.0,
        flops_saving=plan.savings.flops,
        mfu=measure.mfu(full.model_flops_per_s, device) if full else None,
        peak_memory_bytes=measure.peak_memory_bytes(device),
        gather_scatter_fraction=tp.gather_scatter_fraction if tp else None,
        convergence=convergence,
        seconds=time.perf_counter() - started,
    )
