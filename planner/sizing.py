"""Sizing a validation job: what model a job measures, at which lengths, and for how long.

Pure arithmetic shared by the worker (which sizes its job to the device) and anything that wants
to predict a job. A job's time is predicted by the step-time model (`planner.steptime`) on the
worker's own device profile: the timed micro-batches at each (c, r) pair, the optimizer updates,
and (quality mode) the training and evaluation it will give each run. The job keeps the plan's
layer shape (hidden size, heads, FFN) and shrinks only when that prediction or the memory
estimate does not fit: layers first, then the micro-batch, then (last resort) the sequence, and
it says what shrank and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from planner import flops as F
from planner.curriculum import CurriculumConfig
from planner.device import DeviceProfile
from planner.document import Plan
from planner.models import ModelShape
from planner.resolve import Runs
from planner.schedule import RandomLTDConfig, default_ltd_layer_ids
from planner.steptime import StepShape
from planner.steptime_table import StepTimes
from planner.typed import changed
from planner.validation import ValidationSettings

MIN_LAYERS = 3  # the first and the last layer never drop: 3 leaves one dropping layer
MIN_SEQ_LEN = 64
DEFAULT_NUM_LENGTHS = 5
VOCAB_MULTIPLE = 128
BUDGET_FRACTION = 0.9  # of max_minutes the predicted work may fill: the rest is set-up
OPTIMIZER_TIMINGS = 4  # `worker.measure.optimizer_step_ms`: one warm-up and three timed updates
MIN_QUALITY_STEPS = 50  # a quality run shorter than this compares little but noise
FORWARD_SHARE = 1 / 3  # an evaluation's forward pass: a third of a training micro-batch


@dataclass(frozen=True)
class JobSize:
    """The model a job actually measures, and why it differs from the plan's."""

    num_layers: int
    micro_batch_size: int
    seq_len: int
    scaled_down: tuple[str, ...]
    predicted_seconds: float = 0.0  # the step-time model's seconds of the job's timed steps


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


def plan_points(runs: Runs, settings: ValidationSettings) -> list[tuple[int, int]]:
    """The (c, r) pairs a job times, in the plan's lengths: the settings' reserved lengths at
    S; by default, five lengths from min_value to S, or with curriculum learning the pairs its
    schedule visits. Sorted, so that the full-length step (S, S) comes last."""
    res = runs.resolved
    S = res.model.seq_len
    if settings.reserved_lengths is None and runs.ltd.counters.length_curriculum:
        return composed_pairs(runs)
    lengths = settings.reserved_lengths or default_reserved_lengths(res.ltd, S)
    return sorted({(S, min(r, S)) for r in lengths} | {(S, S)})


def measured_points(
    points: list[tuple[int, int]], S: int, measured_S: int
) -> list[tuple[int, int]]:
    """Plan lengths mapped onto the measured (possibly shorter) sequence, keeping n / S."""

    def scaled(n: int) -> int:
        return max(1, min(measured_S, round(n * measured_S / S)))

    return sorted({(scaled(c), scaled(r)) for c, r in points})


def quality_batch(settings: ValidationSettings, micro_batch_size: int) -> int:
    """Sequences per optimizer step of a quality run: at least the settings' batch, a whole
    number of micro-batches."""
    return -(-max(settings.batch_size, micro_batch_size) // micro_batch_size) * micro_batch_size


def predict_job_s(
    shape: ModelShape,
    num_ltd_layers: int,
    micro_batch_size: int,
    points: list[tuple[int, int]],
    settings: ValidationSettings,
    profile: DeviceProfile,
) -> dict[str, float]:
    """Seconds of a job's work by the step-time model, by part: `timing` (warm-up and timed
    micro-batches at each measured (c, r), and the optimizer updates), and in quality mode
    the least `training` it needs (two runs of MIN_QUALITY_STEPS, or of train_steps when set,
    per seed) and its `evaluation` (eval_points x eval_batches forward passes per run)."""
    step = StepShape(shape, num_ltd_layers, micro_batch_size, accumulation=1, num_gpus=1)
    c = np.asarray([p[0] for p in points])
    r = np.asarray([p[1] for p in points])
    table = StepTimes(step, profile, np.concatenate((c, r)))
    micro = table.micro_batch_s(r, c)  # one micro-batch, forward and backward
    repeats = settings.warmup_steps + settings.measure_steps
    parts = {"timing": float(repeats * micro.sum() + OPTIMIZER_TIMINGS * table.optimizer)}
    if settings.mode != "quality":
        return parts
    S = np.asarray([shape.seq_len])
    full_micro = float(table.micro_batch_s(S, S)[0])
    accumulation = quality_batch(settings, micro_batch_size) // micro_batch_size
    full_step = accumulation * full_micro + table.optimizer
    steps = (
        settings.train_steps if "train_steps" in settings.model_fields_set else MIN_QUALITY_STEPS
    )
    runs = 2 * settings.seeds
    parts["training"] = runs * steps * full_step
    parts["evaluation"] = (
        runs * settings.eval_points * settings.eval_batches * accumulation * full_micro
    ) * FORWARD_SHARE
    return parts


def size_job(
    m: ModelShape,
    runs: Runs,
    settings: ValidationSettings,
    *,
    plan_micro_batch_size: int,
    budget_s: float,
    memory_bytes: int,
    profile: DeviceProfile,
) -> JobSize:
    """The plan's model at full size where the step-time model's prediction of the job
    (`predict_job_s`) fits `budget_s` and its memory fits; else shrink layers, then micro-batch,
    then sequence until both do (sizes the user set in `settings` are kept). The smallest job
    runs even if predicted over the budget: max_minutes stops it (the worker's hard cap)."""
    L = settings.num_layers or m.num_layers
    mb = settings.micro_batch_size or plan_micro_batch_size
    S = m.seq_len
    plan_pts = plan_points(runs, settings)
    reasons: list[str] = []

    def fits() -> tuple[bool, str, float]:
        shape = changed(m, num_layers=L, seq_len=S)
        mem = estimate_job_bytes(shape, mb)
        if mem > memory_bytes:
            return False, f"needs ~{mem / 2**30:.1f} GiB of {memory_bytes / 2**30:.1f} GiB", 0.0
        points = measured_points(plan_pts, m.seq_len, S)
        ltd = len(default_ltd_layer_ids(L)) if m.num_layers != L else runs.resolved.num_ltd_layers
        parts = predict_job_s(shape, ltd, mb, points, settings, profile)
        total = sum(parts.values())
        if total > budget_s:
            return False, f"~{total:.0f} s predicted, over the {budget_s:.0f} s budget", 0.0
        return True, "", parts["timing"]

    ok, why, timing = fits()
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
            break  # the smallest job: max_minutes stops it if the prediction is right
        ok, why, timing = fits()
    if not ok:  # the smallest job, over the budget: its timing predicted all the same
        shape = changed(m, num_layers=L, seq_len=S)
        points = measured_points(plan_pts, m.seq_len, S)
        ltd = len(default_ltd_layer_ids(L)) if m.num_layers != L else runs.resolved.num_ltd_layers
        timing = predict_job_s(shape, ltd, mb, points, settings, profile)["timing"]
    return JobSize(L, mb, S, tuple(reasons), timing)


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
