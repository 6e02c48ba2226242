"""Quality jobs: paired seeds at equal time or equal LayerTokens, each run with its own LR
schedule, and a verdict whose error rates are what its statistics promise."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from planner import plan
from planner.device import DeviceProfile
from planner.quality import student_t_ppf
from planner.validation import ValidationSettings
from tests.factories import tiny_model
from tests.planner.test_quality import _power
from worker import quality
from worker.quality import StepCost, plan_pair, random_ltd_run, run_lr
from worker.train import TrainLog
from worker.validate import run_validation

TINY = tiny_model(seq_len=32)
# A CPU profile of round numbers, so that sizing predicts without measuring this machine.
CPU = DeviceProfile(
    device_name="cpu", dtype="float32", source="test", matmul_rows=[1, 4096],
    matmul_widths=[1, 4096], matmul_tflops=[[0.05, 0.05], [0.05, 0.05]],
    attention_lengths=[1, 4096], attention_tflops=[0.02, 0.02], memory_gbps=10.0,
    launch_overhead_us=5.0, async_launch=False,
)  # fmt: skip


def tiny_plan(**random_ltd: int) -> object:
    return plan({
        "model": TINY, "train_batch_size": 8, "train_steps": 400,
        "random_ltd": {"min_value": 8, "seq_per_step": 8, "require_steps": 200, **random_ltd},
        "hardware": {"num_gpus": 1, "micro_batch_size": 8, "device_profile": CPU.model_dump()},
    })  # fmt: skip


def cost(fit: list[float]) -> StepCost:
    """Step costs from a fit in the plan's units (S 32): T = a + e k + f k^2 (ms)."""
    return StepCost(fit, optimizer_ms=1.0, timed_accumulation=1, accumulation=1, to_plan=1.0)


def test_equal_time_gives_random_ltd_the_most_steps_that_fit_the_baselines_time() -> None:
    p = tiny_plan()
    shape = p.model
    c = cost([2.0, 0.0, 0.25, 0.0, 0.0])  # 2 + k / 4 ms: 10 ms at S = 32, 4 ms at k = 8
    settings = ValidationSettings(mode="quality", train_steps=100)
    pair = plan_pair(p, shape, 2, settings, c, batch=8, per_run_ms=0)
    assert pair.baseline.num_steps == 100  # train_steps sets the baseline's length
    budget = c.run_ms(pair.baseline)
    assert budget == pytest.approx(100 * 10.0)
    n = pair.random_ltd.num_steps
    assert c.run_ms(pair.random_ltd) <= budget
    assert c.run_ms(random_ltd_run(p, shape, 2, 8, n + 1)) > budget  # the most that fit
    assert n > 100  # cheaper steps: more of them in the same time


def test_equal_time_gives_fewer_steps_where_dropping_is_slower() -> None:
    p = tiny_plan()
    c = cost([12.0, 0.0, -0.0625, 0.0, 0.0])  # 10 ms at S, 11.5 ms at k = 8: slower dropping
    settings = ValidationSettings(mode="quality", train_steps=100)
    pair = plan_pair(p, p.model, 2, settings, c, batch=8, per_run_ms=0)
    assert pair.random_ltd.num_steps < 100
    assert c.run_ms(pair.random_ltd) <= c.run_ms(pair.baseline)


def test_the_baselines_steps_come_from_its_time_without_train_steps() -> None:
    p = tiny_plan()
    c = cost([2.0, 0.0, 0.25, 0.0, 0.0])
    pair = plan_pair(p, p.model, 2, ValidationSettings(mode="quality"), c, batch=8,
                     per_run_ms=1234.0)  # fmt: skip
    assert pair.baseline.num_steps == 123  # 1,234 ms at 10 ms a step


def test_equal_layer_tokens_stops_at_the_baselines_layer_tokens() -> None:
    p = tiny_plan()
    c = cost([2.0, 0.0, 0.25, 0.0, 0.0])
    settings = ValidationSettings(mode="convergence", train_steps=100)  # the earlier name
    assert settings.mode == "quality" and settings.basis == "equal_layer_tokens"
    pair = plan_pair(p, p.model, 2, settings, c, batch=8, per_run_ms=0)
    base = pair.baseline.layer_tokens
    assert base == 100 * 8 * 32 * 4  # steps x batch x S x layers
    ltd = pair.random_ltd
    assert ltd.layer_tokens >= base
    one_less = ltd.series(np.asarray([ltd.num_steps - 2])).cumulative_layer_tokens[0]
    assert one_less < base  # the first step whose LayerTokens reach the baseline's


def test_each_run_warms_up_and_decays_over_its_own_budget() -> None:
    p = tiny_plan()
    c = cost([2.0, 0.0, 0.25, 0.0, 0.0])
    pair = plan_pair(p, p.model, 2, ValidationSettings(mode="quality", train_steps=100), c,
                     batch=8, per_run_ms=0)  # fmt: skip
    base, ltd = pair.baseline_lr, pair.random_ltd_lr
    assert base.decay_tokens == 100 * 8 * 32  # the baseline by tokens
    assert ltd.decay_tokens == pair.random_ltd.effective_tokens  # random-LTD by LayerTokens
    assert ltd.decay_tokens != base.decay_tokens
    for lr, run in ((base, pair.baseline), (ltd, pair.random_ltd)):
        assert lr.warmup_tokens == int(run.effective_tokens * 0.05)
        lrs = run.series(np.arange(run.num_steps), lr).lr
        assert lrs is not None
        assert lrs[0] == 0.0 and lrs.max() == pytest.approx(lr.peak_lr, rel=0.05)
        assert lrs[-1] < lr.min_lr * 1.01  # fully decayed by its own end
    assert run_lr(p, pair.baseline) == base


def _fake_pairs(effect: float, noise: float, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """A trainer that trains nothing: each pair's losses differ by `effect` plus noise."""

    def fake(pair, shape, ids, seed, **kw):  # type: ignore[no-untyped-def]
        base = 3.0 + rng.normal(0, 0.2)
        ltd = base + effect + rng.normal(0, noise)
        return TrainLog(evals=[(1, base)]), TrainLog(evals=[(1, ltd)])

    return fake


@pytest.mark.parametrize("ncp", [0.0, 2.5])
def test_a_planted_effect_is_called_at_the_rate_its_power_says(
    monkeypatch: pytest.MonkeyPatch, ncp: float
) -> None:
    """Whole quality stages over a fake trainer: with no effect "better" or "worse" is called
    about 5% of the time; with an effect of `ncp` standard errors, "better" at the t-test's
    power (computed independently, by integration)."""
    from worker.throughput import Throughput

    seeds, noise, jobs = 5, 0.02, 400
    rng = np.random.default_rng(7)
    monkeypatch.setattr(
        quality, "_train_pair", _fake_pairs(-ncp * noise / math.sqrt(seeds), noise, rng)
    )
    p = tiny_plan()
    tp = Throughput([], [2.0, 0.0, 0.25, 0.0, 0.0], 0.0, None, 1, 1.0, 0.0, "test")
    settings = ValidationSettings(mode="quality", seeds=seeds, train_steps=10)
    verdicts = []
    for _ in range(jobs):
        outcome = quality.run_quality(
            p, p.model, (1, 2), tp, _size(), corpus=None, settings=settings,  # type: ignore[arg-type]
            device=torch.device("cpu"), amp_dtype=torch.float32, seconds_left=60.0,
            implementation="native", progress=lambda f: None,
        )  # fmt: skip
        assert outcome.result is not None
        verdicts.append(outcome.result.verdict)
    called = {v: verdicts.count(v) / jobs for v in ("better", "worse")}
    if ncp == 0.0:
        assert called["better"] + called["worse"] == pytest.approx(0.05, abs=0.035)
    else:
        expected = _power(ncp, seeds - 1, student_t_ppf(0.975, seeds - 1))
        assert called["better"] == pytest.approx(expected, abs=0.07)


def _size():  # type: ignore[no-untyped-def]
    from planner.sizing import JobSize

    return JobSize(num_layers=4, micro_batch_size=8, seq_len=32, scaled_down=())


@pytest.mark.slow
def test_an_a_a_job_differs_by_exactly_zero_for_every_seed_pair() -> None:
    """min_value = max_value = S: nothing is dropped, so both runs of a pair compute the same
    thing from the same start and the same data."""
    p = tiny_plan(min_value=32, max_value=32, seq_per_step=8)
    settings = ValidationSettings(
        mode="quality", seeds=2, train_steps=12, eval_points=2, eval_batches=2, warmup_steps=0,
        measure_steps=1, device="cpu",
    )  # fmt: skip
    result = run_validation(p, settings)
    q = result.quality
    assert q is not None and q.baseline_steps == q.random_ltd_steps == 12
    assert q.baseline_eval_loss == q.random_ltd_eval_loss  # exactly, seed by seed
    assert q.difference_mean == 0.0 and q.difference_ci95 == (0.0, 0.0)
    assert q.verdict == "no_detectable_difference"
    assert [c.run for c in q.curves] == ["baseline", "baseline", "random_ltd", "random_ltd"]
    assert all(len(c.eval_loss) == 2 and c.steps == [6, 12] for c in q.curves)


@pytest.mark.slow
def test_max_minutes_is_a_hard_cap_on_training() -> None:
    """train_steps far beyond max_minutes: the job ends at the cap with what it measured and
    says so (here: the step times, and no pair trained in time)."""
    settings = ValidationSettings(
        mode="quality", train_steps=1_000_000, max_minutes=0.2, warmup_steps=0, measure_steps=1,
        device="cpu",
    )  # fmt: skip
    start = time.monotonic()
    result = run_validation(tiny_plan(), settings)
    assert time.monotonic() - start < 0.2 * 60 * 1.1
    assert result.stopped_early is not None and "max_minutes (0.2)" in result.stopped_early
    assert result.quality is None and result.measured_wall_clock_saving is not None
