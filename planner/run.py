"""A run: the optimizer steps of one training run, as segments of constant lengths.

Every run the planner knows is one `Run`: segments of constant reserved length r (random-LTD's),
sequence length c (curriculum learning's; S without it) and rows (sequences a step reads: G, or
under CL's seqlen_reshape the re-cut rows), about a hundred for the paper's runs, so that a
300B-token plan costs a dot product, not 286,103 steps. A run without curriculum learning is the
case c = S, rows = G; a baseline is the case r = S on no dropping layer. Every total is an exact
integer sum over the segments; every per-step figure is a function of (r, c), evaluated by
`Counters`, and `Run.series` gives them step by step for the CSV, the figures and the worker.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from planner import flops as F
from planner.arrays import exact_dot, sorted_unique
from planner.curriculum import CurriculumConfig, curriculum_segments
from planner.lr import LRConfig, counter_before, learning_rate
from planner.models import ModelShape
from planner.schedule import RandomLTDConfig, segments

PerStep = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (r, c) -> a figure of each step


@dataclass(frozen=True)
class Counters:
    """The per-step counters of DeepSpeed and Megatron-DeepSpeed for one model and batch size,
    as functions of the reserved length r and the sequence length c (S without CL)."""

    model: ModelShape
    global_batch_size: int  # G, sequences per optimizer step
    num_ltd_layers: int  # L_ltd, layers that drop tokens (0 for a baseline)
    max_value: int  # the schedule's max_value (S for a baseline)
    length_curriculum: bool = False  # CL sets the length: c varies and layer_tokens are actual
    reshape_micro_batch: int | None = None  # CL seqlen_reshape: rows are re-cut per micro-batch

    @property
    def seq_len(self) -> int:
        return self.model.seq_len

    @property
    def num_layers(self) -> int:
        return self.model.num_layers

    def rows(self, c: np.ndarray) -> np.ndarray:
        """Sequences per step: G, or under seqlen_reshape each micro-batch of mbs rows of S + 1
        tokens re-cut into rows of c + 1 (Megatron-DeepSpeed): min(ceil(mbs (S+1) / (c+1)),
        mbs ((S+1) // (c+1) + 1)), less one when above 1 and odd, times G / mbs."""
        c = np.asarray(c, dtype=np.int64)
        mbs = self.reshape_micro_batch
        if mbs is None:
            return np.full_like(c, self.global_batch_size)
        S1 = self.seq_len + 1
        per_mb = np.minimum(-(-mbs * S1 // (c + 1)), mbs * (S1 // (c + 1) + 1))
        per_mb = np.where((per_mb > 1) & (per_mb % 2 == 1), per_mb - 1, per_mb)
        return per_mb * (self.global_batch_size // mbs)

    def deepspeed_layer_tokens(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """DeepSpeed's own counter, blind to CL: G * (r * L_ltd + max_value * (L - L_ltd))."""
        full_layers = self.num_layers - self.num_ltd_layers
        return self.global_batch_size * (r * self.num_ltd_layers + self.max_value * full_layers)

    def actual_layer_tokens(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Tokens each layer really processed: rows * (c * (L - L_ltd) + min(r, c) * L_ltd)."""
        L, L_ltd = self.num_layers, self.num_ltd_layers
        return self.rows(c) * (c * (L - L_ltd) + np.minimum(r, c) * L_ltd)

    def layer_tokens(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The LayerTokens a plan reports (the one place that chooses): DeepSpeed's counter, as
        a DeepSpeed run logs it; with a length curriculum, which DeepSpeed's counter ignores
        (it overcounts), the tokens each layer really processed."""
        if self.length_curriculum:
            return self.actual_layer_tokens(r, c)
        return self.deepspeed_layer_tokens(r, c)

    def effective_tokens(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Megatron-DeepSpeed's counter: rows * ((c * (L - L_ltd) + min(r, c) * L_ltd) // L);
        without CL (c = S) that is G * ((S * (L - L_ltd) + r * L_ltd) // L) while r < S, else
        G * S."""
        L, L_ltd = self.num_layers, self.num_ltd_layers
        return self.rows(c) * ((c * (L - L_ltd) + np.minimum(r, c) * L_ltd) // L)

    def step_flops(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Model FLOPs (training) of each step: full layers at c, dropping layers at min(r, c),
        the head at c, times the step's rows."""
        return F.step_flops(
            self.model, reserved=r, seqlen=c, rows=self.rows(c), num_ltd_layers=self.num_ltd_layers
        )


@dataclass(frozen=True)
class StepSeries:
    """Figures of a run at chosen steps (cumulatives include the step itself): what the
    schedule CSV prints, the figures draw and the worker trains with."""

    step: np.ndarray  # (n,) int64
    reserved_length: np.ndarray  # r
    seqlen: np.ndarray  # c: S without curriculum learning
    dropping: np.ndarray  # bool: r < c on some dropping layer
    layer_tokens: np.ndarray  # the reported counter (`Counters.layer_tokens`)
    cumulative_layer_tokens: np.ndarray
    effective_tokens: np.ndarray
    cumulative_effective_tokens: np.ndarray
    lr: np.ndarray | None  # the LayerToken learning rate, where a schedule is given


@dataclass(frozen=True)
class Run:
    """Steps 0..num_steps-1 as segments: from `starts[i]` up to the next start (the last up to
    `num_steps`) every step has reserved length `reserved[i]` and sequence length `seqlens[i]`;
    `counters` turn them into LayerTokens, tokens and FLOPs."""

    starts: np.ndarray  # (k,) int64, starts[0] == 0, increasing
    reserved: np.ndarray  # (k,) int64, r
    seqlens: np.ndarray  # (k,) int64, c (S without curriculum learning)
    num_steps: int
    counters: Counters

    @property
    def counts(self) -> np.ndarray:
        """Steps in each segment."""
        return np.diff(np.append(self.starts, self.num_steps))

    def total(self, per_step: PerStep) -> int:
        """Sum of `per_step(r, c)` over every step of the run, exactly (Python ints)."""
        if not self.num_steps:
            return 0
        return exact_dot(per_step(self.reserved, self.seqlens), self.counts)

    @cached_property
    def layer_tokens(self) -> int:
        return self.total(self.counters.layer_tokens)

    @cached_property
    def effective_tokens(self) -> int:
        return self.total(self.counters.effective_tokens)

    @property
    def tokens(self) -> int:
        """Raw tokens read: steps x G x S."""
        return self.num_steps * self.counters.global_batch_size * self.counters.seq_len

    def moments(self) -> F.LengthMoments:
        """The row-weighted sums of the lengths each kind of layer saw (exact ints)."""
        c = self.seqlens
        k = np.minimum(self.reserved, self.seqlens)
        rows, counts = self.counters.rows(c), self.counts

        def moment(*x: np.ndarray) -> int:
            return exact_dot(rows, counts, *x) if self.num_steps else 0

        head = np.broadcast_to(np.asarray(self.counters.model.head_tokens(c)), c.shape)
        return F.LengthMoments(moment(c), moment(c, c), moment(k), moment(k, k), moment(head))

    def flops(self, activation_recompute: bool) -> F.RunFlops:
        """Training FLOPs of the whole run, by component."""
        return F.run_flops(
            self.counters.model,
            self.moments(),
            num_ltd_layers=self.counters.num_ltd_layers,
            activation_recompute=activation_recompute,
        )

    def segment_of(self, steps: np.ndarray) -> np.ndarray:
        """Index of the segment each step falls in."""
        return np.searchsorted(self.starts, steps, side="right") - 1

    def cumulative(
        self, per_step: PerStep, steps: np.ndarray, dtype: type = np.int64
    ) -> np.ndarray:
        """Sum of `per_step(r, c)` over steps 0..t inclusive, for each t in `steps` (int64, or
        float64 for figures such as FLOPs that outgrow it)."""
        per: np.ndarray = per_step(self.reserved, self.seqlens).astype(dtype)
        done_before = np.concatenate(([0], np.cumsum(per[:-1] * np.diff(self.starts))))
        seg = self.segment_of(steps)
        return done_before[seg] + per[seg] * (steps - self.starts[seg] + 1)

    def series(self, steps: np.ndarray, lr: LRConfig | None = None) -> StepSeries:
        """The run's figures at `steps` (module docstring)."""
        acc = self.counters
        seg = self.segment_of(steps)
        r, c = self.reserved[seg], self.seqlens[seg]
        effective = acc.effective_tokens(r, c)
        cumulative_effective = self.cumulative(acc.effective_tokens, steps)
        return StepSeries(
            step=steps,
            reserved_length=r,
            seqlen=c,
            dropping=(r < c) & (acc.num_ltd_layers > 0),
            layer_tokens=acc.layer_tokens(r, c),
            cumulative_layer_tokens=self.cumulative(acc.layer_tokens, steps),
            effective_tokens=effective,
            cumulative_effective_tokens=cumulative_effective,
            lr=None
            if lr is None
            else learning_rate(counter_before(cumulative_effective, effective), lr),
        )

    def change_points(self) -> list[tuple[int, int]]:
        """`(step, reserved_length)` at step 0 and wherever the length changes."""
        return list(zip(self.starts.tolist(), self.reserved.tolist(), strict=True))


# Building runs -----------------------------------------------------------------------------------


def constant_run(num_steps: int, counters: Counters) -> Run:
    """A dense run (a baseline): every step at the full sequence."""
    one = np.zeros(1, dtype=np.int64)
    S = np.array([counters.seq_len], dtype=np.int64)
    return Run(one, S, S, num_steps, counters)


def composed_segments(
    cfg: RandomLTDConfig,
    curriculum: CurriculumConfig | None,
    seq_len: int,
    seqlen_multiple: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, r, c) of the segments where neither the reserved length nor curriculum
    learning's sequence length changes (c = seq_len throughout without a length curriculum).
    Megatron's BERT rounds c up to a multiple of 8 (`seqlen_multiple`)."""
    starts, values = segments(cfg)
    if curriculum is None or not curriculum.sets_length:
        return starts, values, np.full_like(values, seq_len)
    cl_starts, cl_values = curriculum_segments(curriculum)
    cl_values = -(-cl_values // seqlen_multiple) * seqlen_multiple
    merged = sorted_unique(np.concatenate((starts, cl_starts)))
    r = values[np.searchsorted(starts, merged, side="right") - 1]
    c = cl_values[np.searchsorted(cl_starts, merged, side="right") - 1]
    return merged, r, c


def run_for_steps(
    cfg: RandomLTDConfig,
    counters: Counters,
    num_steps: int,
    curriculum: CurriculumConfig | None = None,
    seqlen_multiple: int = 1,
) -> Run:
    """The run of exactly `num_steps` optimizer steps."""
    starts, r, c = composed_segments(cfg, curriculum, counters.seq_len, seqlen_multiple)
    keep = starts < max(num_steps, 1)
    return Run(starts[keep], r[keep], c[keep], num_steps, counters)


def run_until(
    cfg: RandomLTDConfig,
    counters: Counters,
    per_step: PerStep,
    budget: int,
    curriculum: CurriculumConfig | None = None,
    seqlen_multiple: int = 1,
) -> Run:
    """The shortest run whose cumulative `per_step` reaches `budget` (Megatron-DeepSpeed stops at
    the first step whose counter reaches its target)."""
    starts, r, c = composed_segments(cfg, curriculum, counters.seq_len, seqlen_multiple)
    per = per_step(r, c).astype(object)  # exact Python ints
    counts = np.diff(starts).astype(object)  # the last segment is open-ended
    done_before = [0, *itertools.accumulate(per[:-1] * counts)]
    # The segment in which the budget is reached: the last one that starts short of it.
    i = max(bisect.bisect_left(done_before, budget) - 1, 0)
    if per[i] <= 0:  # internal invariant: resolve refuses a run whose steps count nothing
        raise AssertionError("a run whose steps add nothing never reaches its budget")
    steps_in = -(-(budget - done_before[i]) // per[i])  # ceil
    n = i + 1
    return Run(starts[:n], r[:n], c[:n], int(starts[i]) + int(steps_in), counters)


def baseline_steps_for_tokens(train_tokens: int, global_batch_size: int, seq_len: int) -> int:
    """A dense run given `train_tokens` takes ceil(T / (G * S)) steps."""
    return -(-train_tokens // (global_batch_size * seq_len))  # exact integer ceil
