"""Sizing a validation job: what model a job measures, at which lengths, and for how long.

Pure arithmetic shared by the worker (which sizes its job to the device) and anything that wants
to predict a job: the device's memory, its measured matmul rate and the time budget come in as
numbers. The job keeps the plan's layer shape (hidden size, heads, FFN) and shrinks layers, then
the micro-batch, then (last resort) the sequence, and says what shrank and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from planner import flops as F
from planner.curriculum import CurriculumConfig
from planner.document import Plan
from planner.models import ModelShape
from planner.resolve import Runs
from planner.schedule import RandomLTDConfig, default_ltd_layer_ids
from planner.typed import changed
from planner.validation import ValidationSettings

STEP_EFFICIENCY = 0.35  # a training step reaches about this share of the matmul probe's FLOP/s
MIN_LAYERS = 3  # the first and the last layer never drop: 3 leaves one dropping layer
MIN_SEQ_LEN = 64
DEFAULT_NUM_LENGTHS = 5
EVAL_BATCHES = 4  # held-out batches each convergence run is evaluated on
VOCAB_MULTIPLE = 128


@dataclass(frozen=True)
class JobSize:
    """The model a job actually measures, and why it differs from the plan's."""

    num_layers: int
    micro_batch_size: int
    seq_len: int
    scaled_down: tuple[str, ...]


def padded_vocab_size(vocab_size: int, multiple: int = VOCAB_MULTIPLE) -> int:
    """The embedding and head width: the vocabulary rounded up to a multiple of 128, as
    Megatron's --make-vocab-size-divisible-by does (GPT-2's 50,257 -> 50,304). A width that is
    no multiple of 8 sends the head's matmuls, the largest of a small model's step, to slow
    fallback kernels (measured on an H100: 39 of 86 ms of a step at r = 128). Targets never
    reach the padding rows, which only learn to score low."""
    return -(-vocab_size // multiple) * multiple


def default_reserved_lengths(
    cfg: RandomLTDConfig, seq_len: int, count: int = DEFAULT_NUM_LENGTHS
) -> list[int]:
    """`count` lengths evenly from min_value to S, each rounded down to a multiple of
    seq_per_step (as the schedule rounds), the two ends included."""
    points = np.linspace(cfg.min_value, seq_len, count)
    rounded = [max(cfg.min_value, int(p) // cfg.seq_per_step * cfg.seq_per_step) for p in points]
    return sorted({*rounded[:-1], seq_len})


def scaled_lengths(lengths: list[int], seq_len: int, measured_seq_len: int) -> list[int]:
    """Plan lengths mapped onto a shortened sequence, keeping r / S."""
    return sorted(
        {max(1, min(measured_seq_len, round(r * measured_seq_len / seq_len))) for r in lengths}
    )


def measured_shape(m: ModelShape, size: JobSize) -> ModelShape:
    return changed(m, num_layers=size.num_layers, seq_len=size.seq_len)


def measured_ltd_layer_ids(plan: Plan, size: JobSize) -> tuple[int, ...]:
    """The plan's dropping layers when measuring every layer, else the default pattern."""
    if size.num_layers == plan.model.num_layers and plan.random_ltd_config.layer_ids:
        return tuple(plan.random_ltd_config.layer_ids)
    return default_ltd_layer_ids(size.num_layers)


def accumulation_steps(plan: Plan, micro_batch_size: int) -> int:
    """Micro-batches one device runs per optimizer step of the plan: G / (GPUs x micro-batch)."""
    per_device = plan.global_batch_size / plan.hardware.num_gpus
    return max(1, math.ceil(per_device / micro_batch_size))


def step_equivalents(settings: ValidationSettings, num_lengths: int) -> float:
    """Full-length steps a job runs, roughly: timed sweeps plus two training runs."""
    sweep = num_lengths * (settings.warmup_steps + settings.measure_steps)
    train = 2 * settings.train_steps + 2 * EVAL_BATCHES / 3
    return (sweep if settings.mode != "convergence" else 0) + (
        train if settings.mode != "throughput" else 0
    )


def estimate_job_s(
    shape: ModelShape, micro_batch_size: int, *, step_equivalents: float, flops_per_s: float
) -> float:
    """Seconds of `step_equivalents` full-length steps at STEP_EFFICIENCY of a measured rate."""
    step = F.step_flops(
        shape,
        reserved=shape.seq_len,
        rows=micro_batch_size,
        num_ltd_layers=len(default_ltd_layer_ids(shape.num_layers)),
    )
    return step_equivalents * float(step) / (flops_per_s * STEP_EFFICIENCY)


def estimate_job_bytes(shape: ModelShape, micro_batch_size: int) -> int:
    """Training memory: fp32 weights, grads and AdamW state (16 bytes a parameter), fp32
    activations (twice the planner's bf16 estimate; the model's scaled_dot_product_attention
    stores no attention scores) and the logits with their gradient."""
    acts = 2 * F.activation_bytes(
        shape.seq_len,
        shape,
        num_ltd_layers=0,
        micro_batch_size=micro_batch_size,
        activation_recompute=False,
        flash_attention=True,
    )
    logits = (
        3 * 4 * micro_batch_size * int(shape.head_tokens()) * padded_vocab_size(shape.vocab_size)
    )
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
        shape = changed(m, num_layers=L, seq_len=S)
        mem = estimate_job_bytes(shape, mb)
        if mem > memory_bytes:
            return False, f"needs ~{mem / 2**30:.1f} GiB of {memory_bytes / 2**30:.1f} GiB"
        secs = estimate_job_s(shape, mb, step_equivalents=step_equivalents, flops_per_s=flops_per_s)
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


def scaled_schedule(plan: Plan, *, seq_len: int, num_steps: int) -> RandomLTDConfig:
    """The plan's schedule compressed to a run of `num_steps` steps on sequences of `seq_len`:
    the same shape of ramp, in proportion."""
    cfg = plan.random_ltd_config
    k = seq_len / plan.model.seq_len
    seq_per_step = max(1, round(cfg.seq_per_step * k))
    ramp = cfg.require_steps / max(plan.random_ltd.steps, 1)
    return changed(
        cfg,
        min_value=max(seq_per_step, round(cfg.min_value * k)),
        max_value=seq_len,
        seq_per_step=seq_per_step,
        require_steps=max(1, round(ramp * num_steps)),
        layer_ids=None,
    )


def composed_pairs(runs: Runs, count: int = DEFAULT_NUM_LENGTHS + 2) -> list[tuple[int, int]]:
    """(c, r) pairs a composed (curriculum learning) schedule visits, at evenly spaced shares
    of its steps, and (S, S): what a validation job times to fit T(c, min(r, c))."""
    run = runs.ltd
    S = runs.resolved.model.seq_len
    steps = np.linspace(0, max(run.num_steps - 1, 0), count).astype(np.int64)
    seg = run.segment_of(steps)
    pairs = {(int(run.seqlens[i]), int(run.reserved[i])) for i in seg} | {(S, S)}
    return sorted(pairs)


def scaled_curriculum(plan: Plan, *, seq_len: int, num_steps: int) -> CurriculumConfig | None:
    """The plan's length curriculum compressed like `scaled_schedule`: lengths in proportion to
    `seq_len`, its steps in proportion to a run of `num_steps`."""
    section = plan.curriculum
    cl = section.config if section else None
    if cl is None:
        return None
    k, steps = seq_len / plan.model.seq_len, num_steps / max(plan.random_ltd.steps, 1)
    sc = cl.schedule_config

    def length(n: int) -> int:
        return max(1, min(seq_len, round(n * k)))

    update: dict[str, Any]
    if cl.schedule_type == "fixed_discrete":
        assert sc.difficulty is not None and sc.max_step is not None
        max_step = sorted({max(1, round(s * steps)) for s in sc.max_step})
        update = {
            "difficulty": [length(d) for d in sc.difficulty],
            "max_step": max_step,
        }
        if len(max_step) != len(sc.max_step):  # steps merged: keep a valid schedule
            update = {"difficulty": [length(sc.difficulty[-1])], "max_step": []}
    else:
        assert sc.total_curriculum_step is not None and sc.difficulty_step is not None
        update = {
            "total_curriculum_step": max(1, round(sc.total_curriculum_step * steps)),
            "difficulty_step": max(
                1, min(round(sc.difficulty_step * k), length(cl.min_difficulty))
            ),
        }
    return changed(
        cl,
        min_difficulty=length(cl.min_difficulty),
        max_difficulty=length(cl.max_difficulty),
        schedule_config=changed(sc, **update),
    )
