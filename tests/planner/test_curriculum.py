"""Curriculum learning's schedule against a step-by-step emulation of DeepSpeed's
`CurriculumScheduler` (shared/curriculum.md), and its rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from planner.curriculum import (
    CurriculumConfig,
    curriculum_length,
    curriculum_segments,
    difficulty_at,
)


class DeepSpeedCurriculumScheduler:
    """DeepSpeed's `CurriculumScheduler` (runtime/data_pipeline/curriculum_scheduler.py), as
    the rules in shared/curriculum.md state it, with Python floats."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.current = cfg["min_difficulty"]  # the unrounded min before the first update

    def get_difficulty(self, t: int) -> int:
        c, m, M = (
            self.cfg["schedule_config"],
            self.cfg["min_difficulty"],
            self.cfg["max_difficulty"],
        )
        if self.cfg["schedule_type"] == "fixed_discrete":
            if t > c["max_step"][-1]:
                return c["difficulty"][-1]
            for i, step in enumerate(c["max_step"]):
                if t <= step:
                    return c["difficulty"][i]
        degree = 1 if self.cfg["schedule_type"] == "fixed_linear" else c["root_degree"]
        v = (float(t) / c["total_curriculum_step"]) ** (1.0 / degree)
        v = math.floor(v * (M - m) + m)
        v -= v % c["difficulty_step"]
        return min(v, M)

    def update_difficulty(self, t: int) -> int:
        if self.current < self.cfg["max_difficulty"]:
            self.current = self.get_difficulty(t)
        return self.current


def emulate(cfg: dict, num_steps: int) -> list[int]:
    """The CL length of optimizer steps 0..n-1: the engine updates with step k + 1 first."""
    scheduler = DeepSpeedCurriculumScheduler(cfg)
    return [scheduler.update_difficulty(k + 1) for k in range(num_steps)]


def test_deepspeeds_own_unit_test_values() -> None:
    cfg = {"min_difficulty": 2, "max_difficulty": 10, "schedule_type": "fixed_linear",
           "schedule_config": {"total_curriculum_step": 8, "difficulty_step": 2}}  # fmt: skip
    got = curriculum_length(np.arange(10), CurriculumConfig.model_validate(cfg))
    assert got.tolist() == [2, 4, 4, 6, 6, 8, 8, 10, 10, 10]  # t = 1..10


def test_the_tutorials_fixed_discrete() -> None:
    cfg = {"min_difficulty": 1, "max_difficulty": 3, "schedule_type": "fixed_discrete",
           "schedule_config": {"difficulty": [1, 2, 3], "max_step": [5, 10]}}  # fmt: skip
    got = curriculum_length(np.arange(14), CurriculumConfig.model_validate(cfg))
    assert got.tolist() == [1] * 5 + [2] * 5 + [3] * 4  # t 1-5, 6-10, after


def test_min_not_a_multiple_of_the_step_falls_below_min() -> None:
    cfg = CurriculumConfig.model_validate(
        {
            "min_difficulty": 100,
            "max_difficulty": 200,
            "schedule_type": "fixed_linear",
            "schedule_config": {"total_curriculum_step": 1000, "difficulty_step": 8},
        }  # fmt: skip
    )
    assert int(difficulty_at(1, cfg)) == 96  # floor(100.1) = 100, less 100 mod 8


@st.composite
def configs(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["fixed_linear", "fixed_root", "fixed_discrete"]))
    m = draw(st.integers(1, 3000))
    M = draw(st.integers(m, 4096))
    if kind == "fixed_discrete":
        n = draw(st.integers(0, 6))
        steps = sorted(draw(st.sets(st.integers(1, 400), min_size=n, max_size=n)))
        difficulty = draw(st.lists(st.integers(1, M + 64), min_size=n + 1, max_size=n + 1))
        schedule = {"difficulty": difficulty, "max_step": steps}
        assume(n > 0)
    else:
        schedule = {"total_curriculum_step": draw(st.integers(1, 600)),
                    "difficulty_step": draw(st.integers(1, min(64, m)))}  # fmt: skip
        if kind == "fixed_root":
            schedule["root_degree"] = draw(st.sampled_from([2, 3]))
    return {"min_difficulty": m, "max_difficulty": M, "schedule_type": kind,
            "schedule_config": schedule}  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(cfg=configs())
def test_equals_deepspeeds_scheduler_step_by_step(cfg: dict) -> None:
    num_steps = 700
    expected = emulate(cfg, num_steps)
    got = curriculum_length(np.arange(num_steps), CurriculumConfig.model_validate(cfg))
    assert got.tolist() == expected


@settings(max_examples=100, deadline=None)
@given(cfg=configs())
def test_segments_are_change_points(cfg: dict) -> None:
    starts, values = curriculum_segments(CurriculumConfig.model_validate(cfg))
    assert starts[0] == 0 and np.all(np.diff(starts) > 0)
    assert np.all(values[1:] != values[:-1])


BAD = [
    ({"schedule_type": "custom"}, "schedule_type"),
    ({"schedule_config": {"total_curriculum_step": 0, "difficulty_step": 8}},
     "total_curriculum_step"),
    ({"min_difficulty": 4, "schedule_config": {"total_curriculum_step": 9, "difficulty_step": 8}},
     "min_difficulty"),
    ({"schedule_config": {"difficulty_step": 8}}, "total_curriculum_step"),
    ({"schedule_type": "fixed_root", "schedule_config": {"total_curriculum_step": 10,
      "difficulty_step": 8}}, "root_degree"),
    ({"schedule_type": "fixed_discrete", "schedule_config": {"difficulty": [1, 2],
      "max_step": [5, 10]}}, "one more difficulty"),
    ({"min_difficulty": 300, "max_difficulty": 200}, "min_difficulty"),
]  # fmt: skip


@pytest.mark.parametrize("update, field", BAD)
def test_rules_deepspeed_fails_on_late_are_caught_naming_the_field(
    update: dict, field: str
) -> None:
    schedule = {"total_curriculum_step": 100, "difficulty_step": 8}
    cfg = {"min_difficulty": 80, "max_difficulty": 2048, "schedule_config": schedule, **update}
    with pytest.raises(ValueError, match=field):
        CurriculumConfig.model_validate(cfg)
