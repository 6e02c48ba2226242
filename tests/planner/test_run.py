"""Run invariants (budgets, counters, the per-step series), as properties over random models,
schedules and budgets."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from planner import build_runs, plan, resolve
from planner.models import ModelShape
from planner.request import PlanRequest
from planner.run import Counters, Run, run_until
from planner.schedule import RandomLTDConfig


def every_step(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(r, c) of every step of a run, one by one."""
    counts = run.counts
    return np.repeat(run.reserved, counts), np.repeat(run.seqlens, counts)


def small_model(layers: int, seq: int) -> dict:
    return {
        "num_layers": layers,
        "hidden_size": 64,
        "num_heads": 4,
        "vocab_size": 100,
        "seq_len": seq,
    }


requests = st.builds(
    lambda layers, seq, lo_frac, req, sps, G, steps, stop: {
        "model": small_model(layers, seq),
        "train_batch_size": G,
        "train_steps": steps,
        "random_ltd": {
            "min_value": max(sps, int(seq * lo_frac) // sps * sps) if sps <= seq else seq,
            "max_value": seq,
            "require_steps": req,
            "seq_per_step": min(sps, seq),
        },
        **stop,
    },
    st.integers(3, 12),
    st.integers(16, 512),
    st.floats(0.05, 1.0),
    st.integers(1, 400),
    st.sampled_from([1, 8, 16]),
    st.integers(1, 64),
    st.integers(1, 900),
    st.sampled_from([{}, {"ltd_equal_compute": True}, {"ltd_train_steps": 333}]),
)


@given(requests)
def test_cumulative_totals_equal_sums_of_per_step_values(body: dict) -> None:
    runs = build_runs(resolve(PlanRequest.model_validate(body)))
    r, c = every_step(runs.ltd)  # every step's lengths, one by one
    acc = runs.ltd.counters
    p = plan(body)
    assert p.random_ltd.layer_tokens == int(acc.layer_tokens(r, c).sum())
    assert p.random_ltd.effective_tokens == int(acc.effective_tokens(r, c).sum())
    steps = np.arange(runs.ltd.num_steps)
    series = runs.ltd.series(steps)
    assert (series.cumulative_layer_tokens == np.cumsum(acc.layer_tokens(r, c))).all()
    assert (series.cumulative_effective_tokens == np.cumsum(acc.effective_tokens(r, c))).all()
    assert (series.reserved_length == r).all() and (series.seqlen == c).all()
    # Without curriculum learning the LayerTokens are DeepSpeed's own counter, by hand.
    L, L_ltd, G = p.model.num_layers, acc.num_ltd_layers, p.global_batch_size
    by_hand = G * (r * L_ltd + p.random_ltd_config.max_value * (L - L_ltd))
    assert (series.layer_tokens == by_hand).all()


@given(requests)
def test_no_dropping_is_the_dense_baseline(body: dict) -> None:
    seq = body["model"]["seq_len"]
    body = {
        **body,
        "random_ltd": {"min_value": seq, "max_value": seq, "require_steps": 1, "seq_per_step": 1},
    }
    body.pop("ltd_train_steps", None)
    p = plan(body)
    for field in ("steps", "tokens", "layer_tokens", "effective_tokens"):
        assert getattr(p.random_ltd, field) == getattr(p.baseline, field), field
    assert p.random_ltd.flops == p.baseline.flops
    assert p.savings.layer_tokens == 0 and p.savings.flops == 0


@given(
    st.integers(2, 40),
    st.integers(32, 256),
    st.integers(1, 500),
    st.integers(1, 32),
    st.integers(1, 10**8),
)
def test_budget_runs_stop_at_the_first_step_that_reaches_the_budget(
    layers: int, seq: int, req: int, G: int, budget: int
) -> None:
    cfg = RandomLTDConfig(min_value=16, max_value=seq, require_steps=req, seq_per_step=16)
    model = ModelShape(num_layers=layers, hidden_size=64, num_heads=4, vocab_size=100, seq_len=seq)
    acc = Counters(model, G, max(layers - 2, 0), seq)
    run = run_until(cfg, acc, acc.effective_tokens, budget)
    cum = np.cumsum(acc.effective_tokens(*every_step(run)))
    assert cum[-1] >= budget
    assert run.num_steps == 1 or cum[-2] < budget


def test_equal_compute_matches_the_baselines_layer_tokens() -> None:
    p = plan(
        {
            "model": "gpt3-125m",
            "train_batch_size": 256,
            "train_steps": 10_000,
            "ltd_equal_compute": True,
            "random_ltd": {"require_steps": 5_000},
        }
    )
    per_step = 256 * 2048 * 12
    assert p.baseline.layer_tokens <= p.random_ltd.layer_tokens < p.baseline.layer_tokens + per_step
    assert p.random_ltd.steps > p.baseline.steps  # same compute buys more steps
