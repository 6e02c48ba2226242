"""Curriculum learning (CL) over sequence length, as DeepSpeed's data-efficiency library runs it
beside random-LTD (shared/curriculum.md; DeepSpeed's `CurriculumScheduler`).

The difficulty at step t, in IEEE double and in exactly DeepSpeed's order (`fixed_linear` is
`fixed_root` with degree 1):

    x        = (float(t) / T) ** (1.0 / d)
    v        = floor(x * (M - m) + m)
    v        = v - (v mod s)              # an absolute multiple of s, not relative to m
    value(t) = min(v, M)                  # no lower clamp

`fixed_discrete`: the first `difficulty[i]` whose `max_step[i] >= t`, else the last one. The
scheduler recomputes the value only while the current one is below M (a latch), and at optimizer
step k (from 0) the length is value(k + 1): CL runs one step ahead of random-LTD's r(k).

As with random-LTD, lengths are found per segment of constant value, never by stepping.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.arrays import sorted_unique
from planner.schedule import STEP_BOUND

# Metrics that set the sequence length (Megatron-DeepSpeed and DeepSpeedExamples' convention);
# any other metric (e.g. vocabulary rarity "voc") only reorders samples and changes no cost.
LENGTH_METRICS = ("seqlen_truncate", "seqlen_reshape", "seqlen")
MAX_CURRICULUM_STEPS = 10**10
# Distinct lengths a fixed_linear / fixed_root curriculum may take, (max - min) / step + 1: a
# plan's cost and document grow with them (the authors' recipes take 246).
MAX_CURRICULUM_LEVELS = 10_000
CLScheduleType = Literal["fixed_linear", "fixed_root", "fixed_discrete", "custom"]


class CurriculumScheduleConfig(BaseModel):
    """DeepSpeed's `schedule_config`, with its key names."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    total_curriculum_step: int | None = Field(
        None, ge=0, le=MAX_CURRICULUM_STEPS, description="Steps to reach max_difficulty (T)."
    )
    difficulty_step: int | None = Field(
        None, ge=1, le=10**7, description="Lengths are multiples of this (s)."
    )
    root_degree: int | None = Field(None, ge=1, le=100, description="fixed_root's degree (d).")
    difficulty: list[Annotated[int, Field(ge=1, le=10_000_000)]] | None = Field(
        None, max_length=10_000, description="fixed_discrete: n + 1 lengths."
    )
    max_step: list[Annotated[int, Field(ge=0, le=MAX_CURRICULUM_STEPS)]] | None = Field(
        None, max_length=10_000, description="fixed_discrete: n steps, ascending."
    )


class CurriculumConfig(BaseModel):
    """Curriculum learning over sequence length, in DeepSpeed's terms."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    metric: str = Field(
        "seqlen_truncate",
        min_length=1,
        max_length=100,
        description="seqlen_truncate, seqlen_reshape or seqlen (legacy) set the length; any "
        "other metric only reorders data.",
    )
    min_difficulty: int = Field(..., ge=1, le=10_000_000, description="Length at the start (m).")
    max_difficulty: int = Field(..., ge=1, le=10_000_000, description="Length at the end (M).")
    schedule_type: CLScheduleType = Field("fixed_linear", description="DeepSpeed's schedule.")
    schedule_config: CurriculumScheduleConfig = Field(default_factory=CurriculumScheduleConfig)

    @model_validator(mode="after")
    def _rules(self) -> CurriculumConfig:
        c = self.schedule_config
        if self.min_difficulty > self.max_difficulty:
            raise ValueError(
                f"min_difficulty: {self.min_difficulty} exceeds max_difficulty "
                f"({self.max_difficulty})"
            )
        if self.schedule_type == "custom":
            raise ValueError(
                "schedule_type: 'custom' runs user code at training time and cannot be planned"
            )
        if self.schedule_type in ("fixed_linear", "fixed_root"):
            if c.total_curriculum_step is None or c.difficulty_step is None:
                raise ValueError(
                    "schedule_config: fixed_linear and fixed_root need total_curriculum_step "
                    "and difficulty_step (DeepSpeed raises without them)"
                )
            if c.total_curriculum_step == 0:
                raise ValueError(
                    "schedule_config: total_curriculum_step must be at least 1 (DeepSpeed divides "
                    "by it and fails at the first step)"
                )
            if self.min_difficulty < c.difficulty_step:
                raise ValueError(
                    f"min_difficulty: {self.min_difficulty} is below difficulty_step "
                    f"({c.difficulty_step}): the first lengths would round down to 0"
                )
            if self.schedule_type == "fixed_root" and c.root_degree is None:
                raise ValueError("schedule_config: fixed_root needs root_degree")
            levels = (self.max_difficulty - self.min_difficulty) // c.difficulty_step + 1
            if levels > MAX_CURRICULUM_LEVELS:
                enough = -(
                    -(self.max_difficulty - self.min_difficulty) // (MAX_CURRICULUM_LEVELS - 1)
                )
                raise ValueError(
                    f"schedule_config: difficulty_step {c.difficulty_step} gives {levels:,} "
                    f"lengths from {self.min_difficulty} to {self.max_difficulty}, over the cap "
                    f"of {MAX_CURRICULUM_LEVELS:,} (use difficulty_step >= {enough})"
                )
        if self.schedule_type == "fixed_discrete":
            if not c.difficulty or c.max_step is None:
                raise ValueError("schedule_config: fixed_discrete needs difficulty and max_step")
            if len(c.difficulty) != len(c.max_step) + 1:
                raise ValueError(
                    f"schedule_config: fixed_discrete needs one more difficulty than max_step "
                    f"(got {len(c.difficulty)} and {len(c.max_step)})"
                )
            if any(b <= a for a, b in zip(c.max_step, c.max_step[1:], strict=False)):
                raise ValueError("schedule_config: max_step must be strictly ascending")
            if min(c.difficulty) < 1:
                raise ValueError("schedule_config: every difficulty must be at least 1")
        return self

    @property
    def sets_length(self) -> bool:
        return self.metric in LENGTH_METRICS

    @property
    def reshape(self) -> bool:
        return self.metric == "seqlen_reshape"


def difficulty_at(t: np.ndarray | int, cfg: CurriculumConfig) -> np.ndarray:
    """DeepSpeed's `get_difficulty(t)` (module docstring), for each step in `t`, unlatched."""
    t = np.asarray(t, dtype=np.int64)
    c = cfg.schedule_config
    if cfg.schedule_type == "fixed_discrete":
        assert c.difficulty is not None and c.max_step is not None  # validated
        i = np.searchsorted(np.asarray(c.max_step, dtype=np.int64), t, side="left")
        return np.asarray(c.difficulty, dtype=np.int64)[i]
    assert c.total_curriculum_step and c.difficulty_step  # validated
    degree = 1 if cfg.schedule_type == "fixed_linear" else c.root_degree or 1
    m, M = cfg.min_difficulty, cfg.max_difficulty
    x = (t.astype(np.float64) / c.total_curriculum_step) ** (1.0 / degree)
    v = np.floor(x * (M - m) + m).astype(np.int64)
    v = v - v % c.difficulty_step
    return np.minimum(v, M)


def _first_step_at_least(levels: np.ndarray, cfg: CurriculumConfig, hi: int) -> np.ndarray:
    """For each level, the first step t in [1, hi] with difficulty_at(t) >= level (hi if none),
    over a non-decreasing schedule (fixed_linear, fixed_root): the unrounded value reaches
    `level` at t = T ((level - m) / (M - m))^d; that estimate is corrected against the exact
    (DeepSpeed-ordered) evaluation a step at a time, and a bisection settles any level the
    corrections leave open, so float rounding cannot move a change point."""
    c = cfg.schedule_config
    assert c.total_curriculum_step is not None  # validated
    degree = 1 if cfg.schedule_type == "fixed_linear" else c.root_degree or 1
    m, M = cfg.min_difficulty, cfg.max_difficulty
    with np.errstate(over="ignore"):  # past hi is as good as never
        fraction = np.clip((levels - m) / (M - m), 0.0, None) ** degree
        estimate = np.minimum(fraction * c.total_curriculum_step, hi)
    t = np.clip(np.ceil(estimate), 1, hi).astype(np.int64)
    for _ in range(4):  # one or two rounds in practice
        low = (t > 1) & (difficulty_at(np.maximum(t - 1, 1), cfg) >= levels)
        high = (t < hi) & (difficulty_at(t, cfg) < levels)
        if not (low.any() or high.any()):
            return t
        t = t - low + high
    lo, top = np.ones_like(levels), np.full_like(levels, hi)
    while np.any(lo < top):  # the bisection: exact whatever the estimate was
        mid = (lo + top) // 2
        ok = difficulty_at(mid, cfg) >= levels
        top = np.where(ok, mid, top)
        lo = np.where(ok, lo, mid + 1)
    return lo


def curriculum_segments(cfg: CurriculumConfig) -> tuple[np.ndarray, np.ndarray]:
    """The CL length of every optimizer step k >= 0 as `(starts, values)`: `values[i]` from step
    `starts[i]` up to the next start, the last for ever. Step k has value(k + 1), latched once
    it reaches max_difficulty."""
    c = cfg.schedule_config
    if cfg.min_difficulty >= cfg.max_difficulty:  # latched from the start: never updated
        return np.zeros(1, dtype=np.int64), np.array([cfg.min_difficulty], dtype=np.int64)
    if cfg.schedule_type == "fixed_discrete":
        assert c.difficulty is not None and c.max_step is not None
        # value(t) = difficulty[i] for max_step[i-1] < t <= max_step[i]: step k = t - 1.
        starts = np.concatenate(([0], np.maximum(np.asarray(c.max_step, dtype=np.int64), 0)))
        values = np.asarray(c.difficulty, dtype=np.int64)
        keep = np.concatenate((starts[1:] > starts[:-1], [True]))  # a later start wins a tie
        starts, values = starts[keep], values[keep]
        starts[0] = 0
    else:
        assert c.total_curriculum_step is not None and c.difficulty_step is not None
        first = int(difficulty_at(1, cfg)[()])
        s = c.difficulty_step
        levels = np.arange(first - first % s + s, cfg.max_difficulty, s, dtype=np.int64)
        levels = np.append(levels[levels > first], cfg.max_difficulty)
        if first >= cfg.max_difficulty:
            levels = levels[:0]
        # Past T the value keeps growing (x > 1) until it reaches M: where M is no multiple of
        # s that takes until x (M - m) + m reaches the next multiple. Double until it does (or
        # until STEP_BOUND, past any run: a high root degree can take 10^28 steps).
        hi = c.total_curriculum_step
        while hi < STEP_BOUND and int(difficulty_at(hi, cfg)[()]) < cfg.max_difficulty:
            hi = min(2 * hi, STEP_BOUND)
        t = _first_step_at_least(levels, cfg, hi=hi)
        starts = np.concatenate(([0], t - 1)).astype(np.int64)
        starts = sorted_unique(starts)
        values = difficulty_at(starts + 1, cfg)
    return _latched(starts, values, cfg.max_difficulty)


def _latched(
    starts: np.ndarray, values: np.ndarray, max_difficulty: int
) -> tuple[np.ndarray, np.ndarray]:
    """Once a value reaches max_difficulty the scheduler stops updating: it stays for ever."""
    reached = np.flatnonzero(values >= max_difficulty)
    if reached.size:
        starts, values = starts[: reached[0] + 1], values[: reached[0] + 1]
    change = np.concatenate(([True], values[1:] != values[:-1]))
    return starts[change], values[change]


def curriculum_length(steps: np.ndarray, cfg: CurriculumConfig) -> np.ndarray:
    """The CL length at each optimizer step in `steps` (from the segments)."""
    starts, values = curriculum_segments(cfg)
    return values[np.searchsorted(starts, np.asarray(steps), side="right") - 1]
