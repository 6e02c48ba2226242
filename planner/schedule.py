"""The random-LTD drop schedule: how many tokens each dropping layer keeps at each step.

`reserved_length(steps, cfg)` is a pure, vectorised function of the optimizer step. For
`fixed_linear` it reproduces DeepSpeed's `RandomLTDScheduler` to the token, including its float
order (DESIGN.md): progress `t / require_steps` in float64, times `(max - min)`, plus `min`, floor,
rounded down to a multiple of `seq_per_step`, capped at `max_value`.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.arrays import sorted_unique

ScheduleType = Literal["fixed_linear", "fixed_root", "constant"]

MAX_REQUIRE_STEPS = 100_000_000  # the ramp is evaluated step by step: keep it in memory
# Distinct reserved lengths a schedule may take, (max - min) / seq_per_step + 1: a plan's cost
# and its document grow with them. The paper's runs take 121; S = 128k by 16 from S/16 ~ 7,700.
MAX_SCHEDULE_LEVELS = 10_000
# Past any run (MAX_TRAIN_STEPS is 10^10): a length first reached later is never reached at all
# (a fixed_root schedule of a high degree can take 10^28 steps to reach max_value).
STEP_BOUND = 2**40


class RandomLTDConfig(BaseModel):
    """DeepSpeed's `random_ltd` block, flattened; field names follow DeepSpeed's keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    min_value: int = Field(..., ge=1, description="Reserved length at step 0, in tokens.")
    max_value: int = Field(..., ge=1, description="Reserved length at the end (normally S).")
    schedule_type: ScheduleType = Field("fixed_linear", description="How the length grows.")
    require_steps: int = Field(
        ..., ge=1, le=MAX_REQUIRE_STEPS, description="Steps for the length to reach max_value."
    )
    seq_per_step: int = Field(16, ge=1, description="Lengths are multiples of this (tokens).")
    root_degree: int = Field(1, ge=1, le=100, description="fixed_root only: the root's degree.")
    layer_ids: tuple[int, ...] | None = Field(
        None, description="Layers that drop tokens (0-based); default all but first and last."
    )

    @property
    def levels(self) -> int:
        """Distinct reserved lengths the schedule can take (1 for a constant one)."""
        if self.schedule_type == "constant" or self.min_value == self.max_value:
            return 1
        return (self.max_value - self.min_value) // self.seq_per_step + 1

    @model_validator(mode="after")
    def _check_bounds(self) -> RandomLTDConfig:
        if self.min_value > self.max_value:
            raise ValueError(
                f"min_value: {self.min_value} must not exceed max_value ({self.max_value})"
            )
        if self.schedule_type != "constant" and self.min_value < self.seq_per_step:
            # DeepSpeed rounds down to a multiple of seq_per_step: it would keep 0 tokens.
            raise ValueError(
                f"min_value: {self.min_value} must be at least seq_per_step "
                f"({self.seq_per_step}), or the first steps keep no tokens"
            )
        if self.levels > MAX_SCHEDULE_LEVELS:
            enough = -(-(self.max_value - self.min_value) // (MAX_SCHEDULE_LEVELS - 1))
            raise ValueError(
                f"seq_per_step: {self.seq_per_step} gives {self.levels:,} reserved lengths from "
                f"{self.min_value} to {self.max_value}, over the cap of {MAX_SCHEDULE_LEVELS:,} "
                f"(use seq_per_step >= {enough})"
            )
        return self


def default_ltd_layer_ids(num_layers: int) -> tuple[int, ...]:
    """The default dropping layers: every layer but the first and the last (the paper's)."""
    return tuple(range(1, num_layers - 1))


def reserved_length(steps: np.ndarray | int, cfg: RandomLTDConfig) -> np.ndarray:
    """Tokens kept per dropping layer at optimizer step(s) `steps` (counted from 0)."""
    t = np.asarray(steps, dtype=np.float64)
    if cfg.schedule_type == "constant":
        return np.full(t.shape, cfg.min_value, dtype=np.int64)
    if cfg.min_value == cfg.max_value:
        # DeepSpeed starts at min_value and only recomputes while below max_value: never here.
        return np.full(t.shape, cfg.max_value, dtype=np.int64)
    progress = t / cfg.require_steps  # float64, as DeepSpeed's float(global_steps) / require
    if cfg.schedule_type == "fixed_root":
        progress = progress ** (1.0 / cfg.root_degree)
    v = np.floor(progress * (cfg.max_value - cfg.min_value) + cfg.min_value).astype(np.int64)
    v -= v % cfg.seq_per_step
    return np.minimum(v, cfg.max_value)


def saturation_bound(cfg: RandomLTDConfig) -> int:
    """A step count from which on `reserved_length` is `max_value` for good.

    The schedule is non-decreasing, so every step at or past the first one at `max_value` stays
    there. The bound is where the unrounded value passes `max_value + seq_per_step`; rounding down
    to a multiple of `seq_per_step` then still leaves at least `max_value`.
    """
    if cfg.schedule_type == "constant" or cfg.min_value == cfg.max_value:
        return 0
    reach = (cfg.max_value + cfg.seq_per_step - cfg.min_value) / (cfg.max_value - cfg.min_value)
    degree = cfg.root_degree if cfg.schedule_type == "fixed_root" else 1
    if degree * math.log(reach) + math.log(cfg.require_steps) >= math.log(STEP_BOUND):
        return STEP_BOUND
    return min(math.ceil(cfg.require_steps * reach**degree) + 1, STEP_BOUND)


def _first_step_at_least(
    levels: np.ndarray, x_thresholds: np.ndarray, cfg: RandomLTDConfig
) -> np.ndarray:
    """For each level, the first step whose reserved length is at least that level (STEP_BOUND
    for a level not reached before it).

    An analytic estimate from the unrounded value x(t) = progress * (max - min) + min, then a
    correction against the exact (DeepSpeed-ordered) evaluation, so float rounding cannot move a
    change point by even one step; a bisection settles any level the corrections leave open.
    """
    fraction = (x_thresholds - cfg.min_value) / (cfg.max_value - cfg.min_value)
    degree = cfg.root_degree if cfg.schedule_type == "fixed_root" else 1
    with np.errstate(over="ignore"):  # past STEP_BOUND is as good as never
        estimate = np.minimum(fraction**degree * cfg.require_steps, STEP_BOUND)
    t = np.maximum(np.ceil(estimate).astype(np.int64), 0)
    for _ in range(4):  # one or two rounds in practice
        low = (t > 0) & (reserved_length(np.maximum(t - 1, 0), cfg) >= levels)
        high = (t < STEP_BOUND) & (reserved_length(t, cfg) < levels)
        if not (low.any() or high.any()):
            return t
        t = t - low + high
    lo, hi = np.zeros_like(levels), np.full_like(levels, STEP_BOUND)
    while np.any(lo < hi):  # the bisection: exact whatever the estimate was
        mid = (lo + hi) // 2
        ok = reserved_length(mid, cfg) >= levels
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid + 1)
    return lo


def segments(cfg: RandomLTDConfig) -> tuple[np.ndarray, np.ndarray]:
    """The whole schedule as `(starts, values)`: the length is `values[i]` from step `starts[i]`
    until the next start; the last segment lasts for ever. Found at the thresholds the length
    crosses, not by stepping, so its cost is the number of distinct lengths."""
    first = int(reserved_length(0, cfg))
    if saturation_bound(cfg) == 0 or first == cfg.max_value:
        return np.zeros(1, dtype=np.int64), np.array([first], dtype=np.int64)
    sps = cfg.seq_per_step
    bound = saturation_bound(cfg)
    levels = np.arange(first + sps, cfg.max_value, sps, dtype=np.int64)
    if bound <= levels.size + 1:  # a short ramp: evaluating every step is cheaper
        lengths = reserved_length(np.arange(bound + 1), cfg)
        starts = np.concatenate(([0], np.flatnonzero(np.diff(lengths)) + 1))
        return starts.astype(np.int64), lengths[starts]
    # Every length the schedule takes is first + k * seq_per_step or max_value: the length
    # reaches `level` when x(t) >= level, and max_value when x(t) >= max_value rounded up.
    top = -(-cfg.max_value // sps) * sps
    levels = np.append(levels, cfg.max_value)
    thresholds = np.append(levels[:-1], top).astype(np.float64)
    starts = sorted_unique(np.concatenate(([0], _first_step_at_least(levels, thresholds, cfg))))
    return starts, reserved_length(starts, cfg)
