"""Stage 3 of a validation job (mode convergence): train a baseline and a random-LTD model from
the same initialisation to equal LayerTokens, each with the LayerToken LR schedule, and report
both held-out losses."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from planner.document import Plan
from planner.lr import LRConfig
from planner.models import ModelShape
from planner.run import Counters, constant_run, run_until
from planner.sizing import EVAL_BATCHES, JobSize, scaled_curriculum, scaled_schedule
from planner.validation import ConvergenceResult, ValidationSettings
from worker.data import Corpus
from worker.throughput import build
from worker.train import run_schedule, train

DEFAULT_PEAK_LR = 1e-3


def span(progress: Callable[[float], None], offset: float, width: float) -> Callable[[float], None]:
    """A [0, 1] progress callback mapped onto [offset, offset + width]."""

    def report(fraction: float) -> None:
        progress(offset + width * fraction)

    return report


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
    mb, S = size.micro_batch_size, size.seq_len
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
    base_run = constant_run(settings.train_steps, Counters(shape, mb, 0, S))
    base = run_schedule(base_run, lr)
    cfg = scaled_schedule(plan, seq_len=S, num_steps=settings.train_steps)
    cl = scaled_curriculum(plan, seq_len=S, num_steps=settings.train_steps)
    counters = Counters(shape, mb, len(ltd_layer_ids), S, length_curriculum=cl is not None)
    # Equal LayerTokens, as the plan counts them (with CL, those each layer really processed).
    ltd_run = run_until(cfg, counters, counters.layer_tokens, base.layer_tokens, cl)
    ltd = run_schedule(ltd_run, lr)
    share = base.num_steps / (base.num_steps + ltd.num_steps)
    losses = []
    for i, schedule in enumerate((base, ltd)):
        model = build(shape, ltd_layer_ids, settings.seed, device)
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
            progress=span(progress, offset, width),
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
