"""LayerTokens, effective tokens and step counts: computed over the schedule, never stepped.

A run's reserved lengths are a `StepProfile`: the schedule's segments of constant length (about a
hundred for the paper's runs), so that a 300B-token plan costs a dot product, not 286,103 steps.
Every total is an exact integer sum over the segments.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from planner.schedule import RandomLTDConfig, segments

PerStep = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Accounting:
    """The per-step counters of DeepSpeed and Megatron-DeepSpeed for one model and batch size."""

    global_batch_size: int  # G, sequences per optimizer step
    seq_len: int  # S, tokens per sequence
    num_layers: int  # L
    num_ltd_layers: int  # L_ltd, layers that drop tokens (0 for a baseline)
    max_value: int  # the schedule's max_value (S for a baseline)

    def layer_tokens(self, r: np.ndarray) -> np.ndarray:
        """DeepSpeed: G * (r * L_ltd + max_value * (L - L_ltd)) LayerTokens per step."""
        full_layers = self.num_layers - self.num_ltd_layers
        return self.global_batch_size * (r * self.num_ltd_layers + self.max_value * full_layers)

    def effective_tokens(self, r: np.ndarray) -> np.ndarray:
        """Megatron-DeepSpeed: G * ((S * (L - L_ltd) + r * L_ltd) // L) while r < S, else G * S."""
        S, L, L_ltd = self.seq_len, self.num_layers, self.num_ltd_layers
        dropped = (S * (L - L_ltd) + r * L_ltd) // L
        return self.global_batch_size * np.where(r < S, dropped, S)


@dataclass(frozen=True)
class StepProfile:
    """Reserved length of every step of a run, run-length encoded: `values[i]` from step
    `starts[i]` up to the next start (the last segment up to `num_steps`)."""

    starts: np.ndarray  # (k,) int64, starts[0] == 0, increasing
    values: np.ndarray  # (k,) int64
    num_steps: int

    @property
    def counts(self) -> np.ndarray:
        return np.diff(np.append(self.starts, self.num_steps))

    def total(self, per_step: PerStep) -> int:
        """Sum of `per_step(r)` over every step of the run, exactly (Python ints)."""
        per = per_step(self.values).astype(object)
        return int(np.dot(per, self.counts.astype(object))) if self.num_steps else 0

    def segment_of(self, steps: np.ndarray) -> np.ndarray:
        """Index of the segment each step falls in."""
        return np.searchsorted(self.starts, steps, side="right") - 1

    def at(self, steps: np.ndarray) -> np.ndarray:
        """Reserved length at each of `steps`."""
        return self.values[self.segment_of(steps)]

    def lengths(self, start: int = 0, stop: int | None = None, every: int = 1) -> np.ndarray:
        """Reserved lengths of steps start, start+every, ... < stop, as an array."""
        return self.at(np.arange(start, self.num_steps if stop is None else stop, every))

    def cumulative(
        self, per_step: PerStep, steps: np.ndarray, dtype: type = np.int64
    ) -> np.ndarray:
        """Sum of `per_step(r)` over steps 0..t inclusive, for each t in `steps` (int64, or
        float64 for figures such as FLOPs that outgrow it)."""
        per: np.ndarray = per_step(self.values).astype(dtype)
        done_before = np.concatenate(([0], np.cumsum(per[:-1] * np.diff(self.starts))))
        seg = self.segment_of(steps)
        return done_before[seg] + per[seg] * (steps - self.starts[seg] + 1)

    def change_points(self) -> list[tuple[int, int]]:
        """`(step, reserved_length)` at step 0 and wherever the length changes."""
        return [(int(a), int(v)) for a, v in zip(self.starts, self.values, strict=True)]


def constant_profile(num_steps: int, length: int) -> StepProfile:
    return StepProfile(np.zeros(1, dtype=np.int64), np.array([length]), num_steps)


def profile_for_steps(cfg: RandomLTDConfig, num_steps: int) -> StepProfile:
    """The profile of a run of exactly `num_steps` optimizer steps."""
    starts, values = segments(cfg)
    keep = starts < max(num_steps, 1)
    return StepProfile(starts[keep], values[keep], num_steps)


def profile_until(cfg: RandomLTDConfig, per_step: PerStep, budget: int) -> StepProfile:
    """The shortest run whose cumulative `per_step` reaches `budget` (Megatron-DeepSpeed stops at
    the first step whose counter reaches its target)."""
    starts, values = segments(cfg)
    per = per_step(values).astype(object)  # exact Python ints
    counts = np.diff(starts).astype(object)  # the last segment is open-ended
    done_before = [0, *itertools.accumulate(per[:-1] * counts)]
    # The segment in which the budget is reached: the last one that starts short of it.
    i = max(bisect.bisect_left(done_before, budget) - 1, 0)
    steps_in = -(-(budget - done_before[i]) // per[i])  # ceil
    return StepProfile(starts[: i + 1], values[: i + 1], int(starts[i]) + int(steps_in))


def baseline_steps_for_tokens(train_tokens: int, global_batch_size: int, seq_len: int) -> int:
    """A dense run given `train_tokens` takes ceil(T / (G * S)) steps."""
    return -(-train_tokens // (global_batch_size * seq_len))  # exact integer ceil
