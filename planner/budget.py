"""LayerTokens, effective tokens and step counts: computed over the schedule, never stepped.

A run's lengths are a `StepProfile`: the segments of constant reserved length r and sequence
length c (curriculum learning's; S without it), about a hundred for the paper's runs, so that a
300B-token plan costs a dot product, not 286,103 steps. Every total is an exact integer sum over
the segments. Per-step counters are functions of (r, c).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from planner.curriculum import CurriculumConfig, curriculum_segments
from planner.schedule import RandomLTDConfig, segments

PerStep = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (r, c) -> per-step figure


@dataclass(frozen=True)
class Accounting:
    """The per-step counters of DeepSpeed and Megatron-DeepSpeed for one model and batch size.
    `r` is the reserved length, `c` the sequence length (S unless curriculum learning cuts it)."""

    global_batch_size: int  # G, sequences per optimizer step
    seq_len: int  # S, tokens per sequence
    num_layers: int  # L
    num_ltd_layers: int  # L_ltd, layers that drop tokens (0 for a baseline)
    max_value: int  # the schedule's max_value (S for a baseline)
    reshape_micro_batch: int | None = None  # CL seqlen_reshape: rows are re-cut per micro-batch

    def layer_tokens(self, r: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """DeepSpeed's own counter, blind to CL: G * (r * L_ltd + max_value * (L - L_ltd))."""
        full_layers = self.num_layers - self.num_ltd_layers
        return self.global_batch_size * (r * self.num_ltd_layers + self.max_value * full_layers)

    def rows(self, c: np.ndarray) -> np.ndarray | int:
        """Sequences per step: G, or under seqlen_reshape each micro-batch of mbs rows of S + 1
        tokens re-cut into rows of c + 1 (Megatron-DeepSpeed): min(ceil(mbs (S+1) / (c+1)),
        mbs ((S+1) // (c+1) + 1)), less one when above 1 and odd, times G / mbs."""
        mbs = self.reshape_micro_batch
        if mbs is None:
            return self.global_batch_size
        c = np.asarray(c, dtype=np.int64)
        S1 = self.seq_len + 1
        per_mb = np.minimum(-(-mbs * S1 // (c + 1)), mbs * (S1 // (c + 1) + 1))
        per_mb = np.where((per_mb > 1) & (per_mb % 2 == 1), per_mb - 1, per_mb)
        return per_mb * (self.global_batch_size // mbs)

    def effective_tokens(self, r: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """Megatron-DeepSpeed: rows * ((c * (L - L_ltd) + min(r, c) * L_ltd) // L); without CL
        (c = S) that is G * ((S * (L - L_ltd) + r * L_ltd) // L) while r < S, else G * S."""
        S, L, L_ltd = self.seq_len, self.num_layers, self.num_ltd_layers
        if c is None:
            dropped = (S * (L - L_ltd) + r * L_ltd) // L
            return self.global_batch_size * np.where(r < S, dropped, S)
        kept = np.minimum(r, c)
        return self.rows(c) * ((c * (L - L_ltd) + kept * L_ltd) // L)

    def actual_layer_tokens(self, r: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """Tokens each layer really processed: rows * (c * (L - L_ltd) + min(r, c) * L_ltd)."""
        L, L_ltd = self.num_layers, self.num_ltd_layers
        if c is None:
            c = np.full_like(np.asarray(r), self.seq_len)
        return self.rows(c) * (c * (L - L_ltd) + np.minimum(r, c) * L_ltd)


@dataclass(frozen=True)
class StepProfile:
    """Reserved length of every step of a run, run-length encoded: `values[i]` from step
    `starts[i]` up to the next start (the last segment up to `num_steps`); `seqlens[i]` is the
    sequence length there (curriculum learning's c; None: S throughout)."""

    starts: np.ndarray  # (k,) int64, starts[0] == 0, increasing
    values: np.ndarray  # (k,) int64, r
    num_steps: int
    seqlens: np.ndarray | None = None  # (k,) int64, c; None without curriculum learning

    @property
    def counts(self) -> np.ndarray:
        return np.diff(np.append(self.starts, self.num_steps))

    def total(self, per_step: PerStep) -> int:
        """Sum of `per_step(r, c)` over every step of the run, exactly (Python ints)."""
        per = per_step(self.values, self.seqlens).astype(object)
        return int(np.dot(per, self.counts.astype(object))) if self.num_steps else 0

    def segment_of(self, steps: np.ndarray) -> np.ndarray:
        """Index of the segment each step falls in."""
        return np.searchsorted(self.starts, steps, side="right") - 1

    def at(self, steps: np.ndarray) -> np.ndarray:
        """Reserved length at each of `steps`."""
        return self.values[self.segment_of(steps)]

    def seqlen_at(self, steps: np.ndarray) -> np.ndarray | None:
        """Curriculum learning's sequence length at each of `steps` (None without CL)."""
        return None if self.seqlens is None else self.seqlens[self.segment_of(steps)]

    def lengths(self, start: int = 0, stop: int | None = None, every: int = 1) -> np.ndarray:
        """Reserved lengths of steps start, start+every, ... < stop, as an array."""
        return self.at(np.arange(start, self.num_steps if stop is None else stop, every))

    def cumulative(
        self, per_step: PerStep, steps: np.ndarray, dtype: type = np.int64
    ) -> np.ndarray:
        """Sum of `per_step(r, c)` over steps 0..t inclusive, for each t in `steps` (int64, or
        float64 for figures such as FLOPs that outgrow it)."""
        per: np.ndarray = per_step(self.values, self.seqlens).astype(dtype)
        done_before = np.concatenate(([0], np.cumsum(per[:-1] * np.diff(self.starts))))
        seg = self.segment_of(steps)
        return done_before[seg] + per[seg] * (steps - self.starts[seg] + 1)

    def change_points(self) -> list[tuple[int, int]]:
        """`(step, reserved_length)` at step 0 and wherever the length changes."""
        return [(int(a), int(v)) for a, v in zip(self.starts, self.values, strict=True)]


def constant_profile(num_steps: int, length: int) -> StepProfile:
    return StepProfile(np.zeros(1, dtype=np.int64), np.array([length]), num_steps)


def composed_segments(
    cfg: RandomLTDConfig, curriculum: CurriculumConfig | None, seqlen_multiple: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(starts, r, c) of the segments where neither the reserved length nor curriculum
    learning's sequence length changes (c None without a length curriculum). Megatron's BERT
    rounds c up to a multiple of 8 (`seqlen_multiple`)."""
    starts, values = segments(cfg)
    if curriculum is None or not curriculum.sets_length:
        return starts, values, None
    cl_starts, cl_values = curriculum_segments(curriculum)
    cl_values = -(-cl_values // seqlen_multiple) * seqlen_multiple
    merged = np.union1d(starts, cl_starts)
    r = values[np.searchsorted(starts, merged, side="right") - 1]
    c = cl_values[np.searchsorted(cl_starts, merged, side="right") - 1]
    return merged, r, c


def profile_for_steps(
    cfg: RandomLTDConfig,
    num_steps: int,
    curriculum: CurriculumConfig | None = None,
    seqlen_multiple: int = 1,
) -> StepProfile:
    """The profile of a run of exactly `num_steps` optimizer steps."""
    starts, values, seqlens = composed_segments(cfg, curriculum, seqlen_multiple)
    keep = starts < max(num_steps, 1)
    return StepProfile(
        starts[keep], values[keep], num_steps, None if seqlens is None else seqlens[keep]
    )


def profile_until(
    cfg: RandomLTDConfig,
    per_step: PerStep,
    budget: int,
    curriculum: CurriculumConfig | None = None,
    seqlen_multiple: int = 1,
) -> StepProfile:
    """The shortest run whose cumulative `per_step` reaches `budget` (Megatron-DeepSpeed stops at
    the first step whose counter reaches its target)."""
    starts, values, seqlens = composed_segments(cfg, curriculum, seqlen_multiple)
    per = per_step(values, seqlens).astype(object)  # exact Python ints
    counts = np.diff(starts).astype(object)  # the last segment is open-ended
    done_before = [0, *itertools.accumulate(per[:-1] * counts)]
    # The segment in which the budget is reached: the last one that starts short of it.
    i = max(bisect.bisect_left(done_before, budget) - 1, 0)
    steps_in = -(-(budget - done_before[i]) // per[i])  # ceil
    return StepProfile(
        starts[: i + 1],
        values[: i + 1],
        int(starts[i]) + int(steps_in),
        None if seqlens is None else seqlens[: i + 1],
    )


def baseline_steps_for_tokens(train_tokens: int, global_batch_size: int, seq_len: int) -> int:
    """A dense run given `train_tokens` takes ceil(T / (G * S)) steps."""
    return -(-train_tokens // (global_batch_size * seq_len))  # exact integer ceil
