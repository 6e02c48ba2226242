"""The LayerToken LR schedule, DeepSpeed config validation, inverse planning, wall-clock."""

import math

import numpy as np
import pytest

from planner import plan
from planner.deepspeed_config import DeepSpeedConfig, parse_deepspeed_config
from planner.errors import PlanInputError
from planner.inverse import InverseRequest, solve
from planner.lr import LRConfig, learning_rate
from planner.models import ModelShape
from planner.request import parse_request
from planner.run import Counters, constant_run
from planner.typed import changed

LR = LRConfig(peak_lr=1e-3, min_lr=1e-5, warmup_tokens=1000, decay_tokens=11000)


def test_lr_warmup_decay_and_floor_by_hand() -> None:
    c = np.array([0, 500, 1000, 6000, 11000, 50000])
    got = learning_rate(c, LR)
    # warmup: 1e-3 * 500/1000; mid-decay x = 0.5: k = 0.5 (cos(pi/2) + 1) = 0.5.
    expected = [0.0, 5e-4, 1e-3, 1e-5 + 0.5 * (1e-3 - 1e-5), 1e-5, 1e-5]
    assert got == pytest.approx(expected)
    linear = changed(LR, style="linear")
    # x = 0.25 -> k = 0.75
    assert float(learning_rate(3500, linear)) == pytest.approx(1e-5 + 0.75 * (1e-3 - 1e-5))
    assert float(learning_rate(3500, LR)) == pytest.approx(
        1e-5 + 0.5 * (math.cos(math.pi * 0.25) + 1) * (1e-3 - 1e-5)
    )


def test_lr_uses_the_counter_before_the_step() -> None:
    # Three dense steps of 10 sequences of 50 tokens: 500 effective tokens each.
    model = ModelShape(num_layers=2, hidden_size=8, num_heads=2, vocab_size=10, seq_len=50)
    run = constant_run(3, Counters(model, 10, 0, 50))
    lrs = run.series(np.arange(3), LR).lr
    assert lrs is not None and lrs.tolist() == pytest.approx([0.0, 5e-4, 1e-3])


def test_lr_config_rules() -> None:
    with pytest.raises(ValueError, match="min_lr"):
        LRConfig(peak_lr=1e-4, min_lr=1e-3, decay_tokens=10)
    with pytest.raises(ValueError, match="decay_tokens"):
        LRConfig(peak_lr=1e-4, warmup_tokens=10, decay_tokens=10)


def ds_config(**ltd_changes: object) -> dict:
    ltd = {
        "enabled": True,
        "total_layer_num": 24,
        "random_ltd_layer_num": 22,
        "random_ltd_layer_id": list(range(1, 23)),
        "random_ltd_schedule": {
            "min_value": 128,
            "max_value": 2048,
            "schedule_type": "fixed_linear",
            "schedule_config": {"require_steps": 1000, "seq_per_step": 16},
        },
    }
    ltd.update(ltd_changes)
    return {"train_batch_size": 512, "data_efficiency": {"data_routing": {"random_ltd": ltd}}}


SCHED = {
    "min_value": 128,
    "max_value": 2048,
    "schedule_type": "fixed_linear",
    "schedule_config": {"require_steps": 1000, "seq_per_step": 16},
}


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"random_ltd_layer_num": 20}, "random_ltd_layer_num"),
        ({"random_ltd_layer_id": [0, 5, 24], "random_ltd_layer_num": 3}, "random_ltd_layer_id"),
        ({"random_ltd_layer_id": [1, 1], "random_ltd_layer_num": 2}, "random_ltd_layer_id"),
        ({"random_ltd_schedule": {**SCHED, "min_value": 4096}}, "min_value"),
        ({"random_ltd_schedule": {**SCHED, "schedule_type": "fixed_root"}}, "schedule_type"),
        (
            {"random_ltd_schedule": {k: v for k, v in SCHED.items() if k != "max_value"}},
            "max_value",
        ),
        (
            {"random_ltd_schedule": {**SCHED, "schedule_config": {"require_steps": 10}}},
            "seq_per_step",
        ),
        ({"enabled": False}, "enabled"),
    ],
)
def test_deepspeed_config_rules(changes: dict, field: str) -> None:
    with pytest.raises(PlanInputError) as info:
        parse_deepspeed_config(DeepSpeedConfig.model_validate(ds_config(**changes)))
    assert info.value.field.endswith(field)


def test_deepspeed_total_layers_must_match_the_model() -> None:
    with pytest.raises(PlanInputError, match="24 but the model has 12"):
        plan({"model": "gpt3-125m", "deepspeed_config": ds_config(), "train_steps": 10})


def test_missing_random_ltd_block() -> None:
    with pytest.raises(PlanInputError) as info:
        parse_deepspeed_config(DeepSpeedConfig(train_batch_size=8))
    assert info.value.field == "deepspeed_config.data_efficiency"
    assert info.value.message == "missing: a random-LTD DeepSpeed config needs this block"


LTD_PATH = "deepspeed_config.data_efficiency.data_routing.random_ltd"


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"total_layer_num": "twelve"}, f"{LTD_PATH}.total_layer_num"),
        ({"random_ltd_layer_id": [1, "two"]}, f"{LTD_PATH}.random_ltd_layer_id.1"),
        (
            {"random_ltd_schedule": {**SCHED, "schedule_config": {"require_steps": 10,
             "seq_per_step": [16]}}},
            f"{LTD_PATH}.random_ltd_schedule.schedule_config.seq_per_step",
        ),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_type_is_refused_by_the_model_with_its_path(
    changes: dict, field: str
) -> None:
    body = {"model": "gpt3-1.3b", "train_steps": 10, "deepspeed_config": ds_config(**changes)}
    with pytest.raises(PlanInputError) as info:
        parse_request(body)
    assert info.value.field == field
    assert "valid integer" in info.value.message


def test_a_null_key_is_not_given() -> None:
    # As DeepSpeed reads it: an optional key left null is left out; a required one is missing.
    without = parse_deepspeed_config(
        DeepSpeedConfig.model_validate(ds_config(total_layer_num=None))
    )
    assert without.total_layer_num is None and without.config is not None
    schedule = {**SCHED, "min_value": None}
    with pytest.raises(PlanInputError) as info:
        parse_deepspeed_config(
            DeepSpeedConfig.model_validate(ds_config(random_ltd_schedule=schedule))
        )
    assert info.value.field == f"{LTD_PATH}.random_ltd_schedule.min_value"
    assert info.value.message == "missing (DeepSpeed requires it)"


def test_an_empty_deepspeed_config_gives_nothing() -> None:
    body = {"model": "gpt3-125m", "train_batch_size": 8, "train_steps": 100}
    assert plan({**body, "deepspeed_config": {}}).id == plan(body).id


BASE = {
    "model": "gpt3-1.3b",
    "train_batch_size": 512,
    "train_tokens": 300_000_000_000,
    "random_ltd": {"min_value": 128, "max_value": 2048, "require_steps": 133_333},
}


@pytest.mark.parametrize("metric", ["layer_tokens", "flops"])
def test_inverse_finds_the_shortest_ramp(metric: str) -> None:
    req = parse_request(BASE)
    result = solve(req, InverseRequest(target_saving=0.3, metric=metric))
    assert result.reachable and result.value is not None
    assert getattr(result.plan.savings, metric) >= 0.3
    one_less = {**BASE, "random_ltd": {**BASE["random_ltd"], "require_steps": result.value - 1}}
    assert getattr(plan(one_less).savings, metric) < 0.3


def test_inverse_finds_the_largest_min_value() -> None:
    body = {**BASE, "random_ltd": {**BASE["random_ltd"], "require_steps": 250_000}}
    result = solve(parse_request(body), InverseRequest(target_saving=0.3, solve_for="min_value"))
    assert result.reachable and result.plan.savings.layer_tokens >= 0.3
    one_more = {**body, "random_ltd": {**body["random_ltd"], "min_value": result.value + 1}}
    assert plan(one_more).savings.layer_tokens < 0.3


def test_inverse_says_when_no_schedule_can() -> None:
    # Keeping 128 of 2048 tokens on 22 of 24 layers for ever saves at most
    # 1 - (22 x 128 + 2 x 2048) / (24 x 2048) = 85.9% of LayerTokens.
    result = solve(parse_request(BASE), InverseRequest(target_saving=0.9))
    assert not result.reachable and result.plan is None
    assert result.best_saving == pytest.approx(1 - (22 * 128 + 2 * 2048) / (24 * 2048), abs=1e-4)
    assert "no require_steps" in result.message


def test_wall_clock_and_cost_by_hand() -> None:
    p = plan(
        {
            **BASE,
            "hardware": {"gpu": "h100-sxm", "num_gpus": 64, "mfu": 0.5, "price_per_gpu_hour": 2.0},
        }
    )
    hours = p.baseline.flops / (64 * 989e12 * 0.5) / 3600
    assert p.baseline.wall_clock_hours == pytest.approx(hours)
    assert p.baseline.gpu_hours == pytest.approx(64 * hours)
    assert p.baseline.cost_usd == pytest.approx(128 * hours)


def test_unknown_gpu_suggests() -> None:
    with pytest.raises(PlanInputError, match="h100-sxm"):
        plan({**BASE, "hardware": {"gpu": "h100sxm"}})
