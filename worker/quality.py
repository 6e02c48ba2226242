"""Stage 3 of a validation job (mode quality): is the saving worth taking?

For each of `seeds` paired seeds (each pair shares its initialisation, its data order and the
held-out set), a baseline and a random-LTD run of the measured model are trained and evaluated
at several points; the paired differences of their final held-out losses give the verdict
(`planner.quality`). The comparison a careful reviewer asks for:

- **Equal time** (default): each run gets the same time on this device. Step counts come from
  the step times the job measured first (stage 2's fit), so the comparison is deterministic
  given those measurements and does not depend on noise during training. `equal_layer_tokens`
  is the paper's basis: the random-LTD run trains until its LayerTokens reach the baseline's.
- **Each run its own learning-rate schedule**, warmed up and fully decayed over its own budget:
  the baseline by tokens, random-LTD by LayerTokens (Megatron-DeepSpeed's effective-token
  counter, the paper's LayerToken schedule).
- **A real batch**: at least `batch_size` sequences a step, accumulated over micro-batches.
- Composed plans (curriculum learning + random-LTD) train their composed schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from planner.calibration import fitted_ms
from planner.document import Plan
from planner.lr import LRConfig
from planner.models import ModelShape
from planner.quality import compare_paired
from planner.run import Counters, Run, constant_run, run_for_steps, run_until
from planner.sizing import (
    FORWARD_SHARE,
    JobSize,
    quality_batch,
    scaled_curriculum,
    scaled_schedule,
)
from planner.validation import QualityCurve, QualityResult, ValidationSettings
from worker.data import Corpus
from worker.throughput import Throughput, build
from worker.train import TrainLog, run_schedule, train

DEFAULT_PEAK_LR = 1e-3
WARMUP_SHARE = 0.05  # of each run's own token budget
QUALITY_TIME_SHARE = 0.9  # of the time left after timing: the rest is set-up and slack


class TimeCapReachedError(Exception):
    """max_minutes ran out (raised from the progress callback, caught per seed pair)."""


@dataclass(frozen=True)
class QualityOutcome:
    """What stage 3 gives the job's result."""

    result: QualityResult | None  # None: max_minutes left fewer than two seed pairs
    stopped_early: str | None
    planned_seconds: float  # the training and evaluation planned, by the measured step times


@dataclass(frozen=True)
class StepCost:
    """The measured step time of a quality run's optimizer step at (c, k) in the plan's
    units, from stage 2's fit: its forward-backward part scaled to this batch's micro-batches,
    plus one optimizer update."""

    fit: Sequence[float]
    optimizer_ms: float
    timed_accumulation: int  # micro-batches in the steps stage 2 timed
    accumulation: int  # micro-batches in a quality step
    to_plan: float  # plan length / measured length

    def ms(self, c: np.ndarray, k: np.ndarray) -> np.ndarray:
        c_plan, k_plan = c * self.to_plan, k * self.to_plan
        micro = (fitted_ms(self.fit, c_plan, k_plan) - self.optimizer_ms) / self.timed_accumulation
        return self.accumulation * np.maximum(micro, 0.0) + self.optimizer_ms

    def run_ms(self, run: Run) -> float:
        """The run's time: its steps' costs summed over its segments."""
        c = run.seqlens.astype(np.float64)
        k = np.minimum(run.reserved, run.seqlens).astype(np.float64)
        return float(np.dot(self.ms(c, k), run.counts.astype(np.float64)))

    def elapsed_ms(self, run: Run, steps: Sequence[int]) -> list[float]:
        """The run's time after each of `steps` steps."""
        c = run.seqlens.astype(np.float64)
        k = np.minimum(run.reserved, run.seqlens).astype(np.float64)
        per = self.ms(c, k)
        out = []
        for n in steps:
            counts = np.clip(np.minimum(np.append(run.starts[1:], run.num_steps), n) - run.starts,
                             0, None)  # fmt: skip
            out.append(float(np.dot(per, counts)))
        return out


@dataclass(frozen=True)
class PairPlan:
    """The baseline and random-LTD runs every seed pair trains, each with its own LR."""

    baseline: Run
    random_ltd: Run
    baseline_lr: LRConfig
    random_ltd_lr: LRConfig
    cost: StepCost


def random_ltd_run(
    plan: Plan, shape: ModelShape, num_ltd_layers: int, batch: int, num_steps: int
) -> Run:
    """A random-LTD run of `num_steps` steps of the measured model: the plan's schedule (and
    curriculum) compressed to that many steps on the measured sequence."""
    S = shape.seq_len
    cfg = scaled_schedule(plan, seq_len=S, num_steps=num_steps)
    cl = scaled_curriculum(plan, seq_len=S, num_steps=num_steps)
    counters = Counters(shape, batch, num_ltd_layers, S, length_curriculum=cl is not None)
    return run_for_steps(cfg, counters, num_steps, cl)


def plan_pair(
    plan: Plan,
    shape: ModelShape,
    num_ltd_layers: int,
    settings: ValidationSettings,
    cost: StepCost,
    *,
    batch: int,
    per_run_ms: float,
) -> PairPlan:
    """The two runs: the baseline's steps from its time (or `train_steps` when set), the
    random-LTD run's from the basis."""
    S = shape.seq_len
    full = float(cost.ms(np.asarray([float(S)]), np.asarray([float(S)]))[0])
    if "train_steps" in settings.model_fields_set:
        n_base = settings.train_steps
    else:
        n_base = max(1, int(per_run_ms // full))
    baseline = constant_run(n_base, Counters(shape, batch, 0, S))

    def ltd_run(n: int) -> Run:
        return random_ltd_run(plan, shape, num_ltd_layers, batch, n)

    if settings.basis == "equal_layer_tokens":  # the schedule of a run as long as the baseline
        cfg = scaled_schedule(plan, seq_len=S, num_steps=n_base)
        cl = scaled_curriculum(plan, seq_len=S, num_steps=n_base)
        counters = Counters(shape, batch, num_ltd_layers, S, length_curriculum=cl is not None)
        ltd = run_until(cfg, counters, counters.layer_tokens, baseline.layer_tokens, cl)
        return PairPlan(baseline, ltd, run_lr(plan, baseline), run_lr(plan, ltd), cost)
    # Equal time: the most steps whose measured time fits the baseline's (a run's time grows
    # with its steps: its schedule stretches with it, so every share of it costs the same).
    budget = n_base * full

    def fits(n: int) -> bool:
        return cost.run_ms(ltd_run(n)) <= budget

    if fits(n_base):  # random-LTD is faster here: look above
        lo, hi = n_base, 2 * n_base
        while fits(hi) and hi < 1_000 * n_base:
            lo, hi = hi, 2 * hi
    else:  # slower here (gather and scatter cost more than dropping saves): look below
        lo, hi = 1, n_base
    while lo + 1 < hi:  # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    ltd = ltd_run(lo)
    return PairPlan(baseline, ltd, run_lr(plan, baseline), run_lr(plan, ltd), cost)


def run_lr(plan: Plan, run: Run) -> LRConfig:
    """The run's own schedule: the plan's peak and shape (else defaults), warmed up over
    WARMUP_SHARE of its own effective tokens and decayed over all of them."""
    peak = plan.lr.peak_lr if plan.lr else DEFAULT_PEAK_LR
    total = max(run.effective_tokens, 2)
    return LRConfig(
        peak_lr=peak,
        min_lr=plan.lr.min_lr if plan.lr else peak / 10,
        warmup_tokens=min(int(total * WARMUP_SHARE), total - 1),
        decay_tokens=total,
        style=plan.lr.style if plan.lr else "cosine",
    )


def span(progress: Callable[[float], None], offset: float, width: float) -> Callable[[float], None]:
    """A [0, 1] progress callback mapped onto [offset, offset + width]."""

    def report(fraction: float) -> None:
        progress(offset + width * fraction)

    return report


def eval_steps(num_steps: int, points: int) -> tuple[int, ...]:
    """`points` step counts evenly along a run, the last at its end."""
    return tuple(sorted({max(1, round(num_steps * j / points)) for j in range(1, points + 1)}))


def run_quality(
    plan: Plan,
    shape: ModelShape,
    ltd_layer_ids: tuple[int, ...],
    throughput: Throughput,
    size: JobSize,
    *,
    corpus: Corpus,
    settings: ValidationSettings,
    device: torch.device,
    amp_dtype: torch.dtype,
    seconds_left: float,
    implementation: str,
    progress: Callable[[float], None],
) -> QualityOutcome:
    """Train and compare the seed pairs (module docstring)."""
    mb = size.micro_batch_size
    batch = quality_batch(settings, mb)
    cost = StepCost(
        throughput.fit,
        throughput.optimizer_step_ms,
        throughput.accumulation,
        batch // mb,
        plan.model.seq_len / shape.seq_len,
    )
    S = np.asarray([float(shape.seq_len)])
    # An evaluation: eval_batches forward passes of a batch, a third of its training step's
    # forward-backward each (planner.sizing.FORWARD_SHARE).
    eval_ms = settings.eval_batches * float(cost.ms(S, S)[0] - cost.optimizer_ms) * FORWARD_SHARE
    runs = 2 * settings.seeds
    per_run_ms = (seconds_left * 1e3 * QUALITY_TIME_SHARE) / runs - settings.eval_points * eval_ms
    pair = plan_pair(
        plan, shape, len(ltd_layer_ids), settings, cost, batch=batch, per_run_ms=per_run_ms
    )
    pair_ms = pair.cost.run_ms(pair.baseline) + pair.cost.run_ms(pair.random_ltd)
    planned_s = settings.seeds * (pair_ms + 2 * settings.eval_points * eval_ms) / 1e3
    logs: dict[str, list[TrainLog]] = {"baseline": [], "random_ltd": []}
    seeds = [settings.seed + i for i in range(settings.seeds)]
    stopped = None
    for i, seed in enumerate(seeds):
        try:
            pair_logs = _train_pair(
                pair, shape, ltd_layer_ids, seed, corpus=corpus, settings=settings,
                device=device, amp_dtype=amp_dtype, batch=batch, micro_batch_size=mb,
                implementation=implementation,
                progress=span(progress, i / len(seeds), 1 / len(seeds)),
            )  # fmt: skip
        except TimeCapReachedError:
            stopped = (
                f"max_minutes ({settings.max_minutes:g}) reached after {i} of "
                f"{len(seeds)} seed pairs"
            )
            break
        for name, log in zip(("baseline", "random_ltd"), pair_logs, strict=True):
            logs[name].append(log)
    done = len(logs["random_ltd"])
    if done < 2:
        return QualityOutcome(None, f"{stopped}: too few for a comparison", planned_s)
    return QualityOutcome(_result(pair, settings, seeds[:done], logs, batch), stopped, planned_s)


def _train_pair(
    pair: PairPlan,
    shape: ModelShape,
    ltd_layer_ids: tuple[int, ...],
    seed: int,
    *,
    corpus: Corpus,
    settings: ValidationSettings,
    device: torch.device,
    amp_dtype: torch.dtype,
    batch: int,
    micro_batch_size: int,
    implementation: str,
    progress: Callable[[float], None],
) -> tuple[TrainLog, TrainLog]:
    """One seed's baseline and random-LTD run, from the same initialisation and data order."""
    plan_runs = ((pair.baseline, pair.baseline_lr), (pair.random_ltd, pair.random_ltd_lr))
    share = pair.cost.run_ms(pair.baseline) / sum(pair.cost.run_ms(r) for r, _ in plan_runs)
    logs = []
    for i, (run, lr) in enumerate(plan_runs):
        model = build(shape, ltd_layer_ids, seed, device, implementation)
        offset, width = (0.0, share) if i == 0 else (share, 1 - share)
        log = train(
            model,
            corpus,
            run_schedule(run, lr),
            batch_size=batch,
            micro_batch_size=micro_batch_size,
            device=device,
            amp_dtype=amp_dtype,
            seed=seed,
            eval_batches=settings.eval_batches,
            eval_at=eval_steps(run.num_steps, settings.eval_points),
            eval_seed=settings.seed,  # one held-out set for every run of the job
            progress=span(progress, offset, width),
        )
        loss = log.eval_loss
        if loss is None or not math.isfinite(loss):  # diverged: fail the job, do not retry
            raise ValueError(
                f"the {'baseline' if i == 0 else 'random-LTD'} run of seed {seed} diverged: "
                f"evaluation loss {loss} (lower the learning rate)"
            )
        logs.append(log)
    return logs[0], logs[1]


def _result(
    pair: PairPlan,
    settings: ValidationSettings,
    seeds: list[int],
    logs: dict[str, list[TrainLog]],
    batch: int,
) -> QualityResult:
    base = [float(log.eval_loss or 0.0) for log in logs["baseline"]]
    ltd = [float(log.eval_loss or 0.0) for log in logs["random_ltd"]]
    comparison = compare_paired(base, ltd)
    curves = []
    for name, run in (("baseline", pair.baseline), ("random_ltd", pair.random_ltd)):
        for seed, log in zip(seeds, logs[name], strict=True):
            steps = [s for s, _ in log.evals]
            curves.append(
                QualityCurve(
                    run=name,  # type: ignore[arg-type]
                    seed=seed,
                    steps=steps,
                    seconds=[ms / 1e3 for ms in pair.cost.elapsed_ms(run, steps)],
                    eval_loss=[loss for _, loss in log.evals],
                )
            )
    S = pair.baseline.counters.seq_len
    return QualityResult(
        basis=settings.basis,
        seeds=seeds,
        baseline_eval_loss=base,
        random_ltd_eval_loss=ltd,
        baseline_steps=pair.baseline.num_steps,
        random_ltd_steps=pair.random_ltd.num_steps,
        baseline_seconds=pair.cost.run_ms(pair.baseline) / 1e3,
        random_ltd_seconds=pair.cost.run_ms(pair.random_ltd) / 1e3,
        baseline_layer_tokens=pair.baseline.layer_tokens,
        random_ltd_layer_tokens=pair.random_ltd.layer_tokens,
        batch_size=batch,
        seq_len=S,
        eval_tokens=settings.eval_batches * batch * S,
        difference_mean=comparison.mean,
        difference_ci95=comparison.ci95,
        verdict=comparison.verdict,
        detectable_difference=comparison.detectable,
        curves=curves,
    )
