"""Training: the loss falls with and without dropping; schedules come from the planner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planner.lr import LRConfig
from planner.run import Counters, constant_run, run_for_steps
from planner.schedule import RandomLTDConfig, reserved_length
from tests.factories import tiny_shape
from worker.data import load_corpus, stdlib_bytes
from worker.model import build_model
from worker.train import run_schedule, train


@pytest.fixture(scope="module")
def corpus():
    return load_corpus("stdlib", max_tokens=400_000)


def test_stdlib_corpus_is_deterministic_bytes() -> None:
    a, b = stdlib_bytes(10_000), stdlib_bytes(10_000)
    assert np.array_equal(a, b) and a.max() < 256 and len(a) == 10_000


def test_text_file_dataset(tmp_path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("hello world " * 500)
    c = load_corpus(str(path))
    assert len(c.train) + len(c.heldout) == 6000
    inputs, targets = c.batch("train", 2, 16, 256, np.random.default_rng(0))
    assert inputs.shape == targets.shape == (2, 16)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])


def test_run_schedule_uses_planner_schedule_and_layer_token_lr() -> None:
    shape = tiny_shape(seq_len=64)
    cfg = RandomLTDConfig(min_value=16, max_value=64, require_steps=10, seq_per_step=16)
    lr = LRConfig(peak_lr=1e-3, warmup_tokens=100, decay_tokens=2000)
    s = run_schedule(run_for_steps(cfg, Counters(shape, 2, 2, 64), 20), lr)
    expected = reserved_length(np.arange(20), cfg)
    assert [r or 64 for r in s.reserved_lengths] == expected.tolist()
    assert s.lrs[0] == 0.0 and max(s.lrs) <= 1e-3
    # DeepSpeed's counter by hand: G (r L_ltd + max_value (L - L_ltd)), G = 2, L = 4, L_ltd = 2.
    assert s.layer_tokens == int((2 * (expected * 2 + 64 * 2)).sum())
    # Megatron's counter: the first step's LR is 0, the second's peak * C / W with
    # C = 2 * ((64 * 2 + 16 * 2) // 4) = 80 effective tokens before it.
    assert s.lrs[1] == pytest.approx(1e-3 * 80 / 100)


@pytest.mark.slow
@pytest.mark.parametrize("drop", [False, True])
def test_tiny_model_loss_falls(corpus, drop: bool) -> None:
    shape = tiny_shape(vocab_size=256, seq_len=32, hidden_size=64, num_layers=4)
    model = build_model(shape)
    lr = LRConfig(peak_lr=3e-3, min_lr=3e-4, warmup_tokens=8 * 32 * 3, decay_tokens=8 * 32 * 40)
    ltd = RandomLTDConfig(min_value=8, max_value=32, require_steps=30, seq_per_step=8)
    if drop:
        run = run_for_steps(ltd, Counters(shape, 8, 2, 32), 40)
    else:
        run = constant_run(40, Counters(shape, 8, 0, 32))
    schedule = run_schedule(run, lr)
    log = train(model, corpus, schedule, batch_size=8, device=torch.device("cpu"), eval_batches=2)
    first, last = np.mean(log.losses[:3]), np.mean(log.losses[-5:])
    assert last < first - 1.0, (first, last)
    assert log.eval_loss is not None and log.eval_loss < first


def test_vocabulary_is_padded_as_megatron_pads_it() -> None:
    from planner.sizing import padded_vocab_size
    from worker.model import build_model

    assert padded_vocab_size(50257) == 50304 and padded_vocab_size(256) == 256
    model = build_model(tiny_shape(vocab_size=100))
    assert model.tok_emb.weight.shape[0] == model.lm_head.weight.shape[0] == 128
    logits = model(torch.randint(0, 100, (2, 8)))
    assert logits.shape[-1] == 128
