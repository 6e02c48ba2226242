"""The drop schedule, against a step-by-step reference written from DeepSpeed's algorithm."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from planner.schedule import RandomLTDConfig, reserved_length, saturation_bound, segments


def deepspeed_reference(t: int, cfg: RandomLTDConfig) -> int:
    """DeepSpeed's get_value for one step, in plain Python floats, in its order."""
    degree = cfg.root_degree if cfg.schedule_type == "fixed_root" else 1  # linear = root 1
    progress = (float(t) / cfg.require_steps) ** (1.0 / degree)
    v = math.floor(progress * (cfg.max_value - cfg.min_value) + cfg.min_value)
    v -= v % cfg.seq_per_step
    return min(v, cfg.max_value)


def test_float_order_gives_63_not_64() -> None:
    # DESIGN.md: 7/10 = 0.7 is 0.69999999999999996 in float64; x 90 = 62.99999999999999,
    # + 1 = 63.99999999999999, floor 63. Computing (7 * 90) / 10 first would give 64.
    cfg = RandomLTDConfig(min_value=1, max_value=91, require_steps=10, seq_per_step=1)
    assert int(reserved_length(7, cfg)) == 63
    assert deepspeed_reference(7, cfg) == 63


def test_gpt3_schedule_points_by_hand() -> None:
    cfg = RandomLTDConfig(min_value=128, max_value=2048, require_steps=133_333, seq_per_step=16)
    # t = 0: 128. t = 66,666: 66666/133333 * 1920 + 128 = 1087.99 -> 1087 -> 1072 (mult. of 16).
    # t = 133,333 and later: 2048.
    got = reserved_length(np.array([0, 66_666, 133_333, 10**6]), cfg)
    assert got.tolist() == [128, 1072, 2048, 2048]


configs = st.builds(
    lambda lo, span, req, sps, kind, deg: RandomLTDConfig(
        min_value=max(lo, sps),
        max_value=max(lo, sps) + span,
        require_steps=req,
        seq_per_step=sps,
        schedule_type=kind,
        root_degree=deg,
    ),
    st.integers(1, 600),
    st.integers(0, 900),
    st.integers(1, 3000),
    st.integers(1, 64),
    st.sampled_from(["fixed_linear", "fixed_root"]),
    st.integers(1, 4),
)


def deepspeed_stepped(num_steps: int, cfg: RandomLTDConfig) -> list[int]:
    """DeepSpeed's stateful update_seq: start at min_value, recompute only while below max."""
    current, out = cfg.min_value, []
    for t in range(num_steps):
        if current < cfg.max_value:
            current = deepspeed_reference(t, cfg)
        out.append(current)
    return out


@given(configs.filter(lambda c: c.schedule_type == "fixed_linear"))
def test_vectorised_schedule_equals_deepspeed_step_by_step(cfg: RandomLTDConfig) -> None:
    steps = np.arange(0, 3 * cfg.require_steps + 40)
    assert reserved_length(steps, cfg).tolist() == deepspeed_stepped(steps.size, cfg)


@given(configs)
def test_segments_reproduce_every_step(cfg: RandomLTDConfig) -> None:
    starts, values = segments(cfg)
    steps = np.arange(0, min(saturation_bound(cfg) + 50, 200_000))
    from_segments = values[np.searchsorted(starts, steps, side="right") - 1]
    assert (from_segments == reserved_length(steps, cfg)).all()


@given(configs, st.integers(1, 5000))
def test_schedule_is_monotone_and_within_bounds(cfg: RandomLTDConfig, n: int) -> None:
    r = reserved_length(np.arange(n), cfg)
    assert r.size == n
    assert (np.diff(r) >= 0).all()
    assert (r <= cfg.max_value).all()
    assert (r >= cfg.min_value - cfg.min_value % cfg.seq_per_step).all()
    if cfg.min_value < cfg.max_value and n > saturation_bound(cfg):
        assert r[-1] == cfg.max_value  # the bound the profiles rely on really is reached


def test_min_equal_max_keeps_max_even_off_the_grid() -> None:
    # DeepSpeed's update_seq recomputes only while current < max_value; starting at
    # min_value == max_value it never rounds 100 down to 96.
    cfg = RandomLTDConfig(min_value=100, max_value=100, require_steps=10, seq_per_step=16)
    assert set(reserved_length(np.arange(30), cfg).tolist()) == {100}
    assert segments(cfg)[1].tolist() == [100]


def test_constant_schedule_never_moves() -> None:
    cfg = RandomLTDConfig(min_value=300, max_value=2048, require_steps=5, schedule_type="constant")
    assert set(reserved_length(np.arange(100), cfg).tolist()) == {300}


def test_fixed_root_grows_faster_early() -> None:
    lin = RandomLTDConfig(min_value=128, max_value=2048, require_steps=1000)
    root = lin.model_copy(update={"schedule_type": "fixed_root", "root_degree": 2})
    # sqrt(0.25) = 0.5: at a quarter of the ramp fixed_root is half way, 128 + 960 = 1088.
    assert int(reserved_length(250, root)) == 1088
    assert int(reserved_length(250, lin)) == 608  # 128 + 480


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"min_value": 4096}, "min_value"),
        ({"seq_per_step": 0}, "seq_per_step"),
        ({"require_steps": 0}, "require_steps"),
        ({"min_value": -1}, "min_value"),
        ({"min_value": 8, "seq_per_step": 16}, "seq_per_step"),
    ],
)
def test_bad_schedules_name_the_field(bad: dict, field: str) -> None:
    base = {"min_value": 128, "max_value": 2048, "require_steps": 100, "seq_per_step": 16}
    with pytest.raises(ValidationError) as info:
        RandomLTDConfig(**{**base, **bad})
    assert field in str(info.value)
