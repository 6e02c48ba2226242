"""The same model and measurements on a CUDA device (skipped without one)."""

from __future__ import annotations

import pytest
import torch

from planner import plan
from planner.validation import ValidationSettings
from tests.factories import tiny_model, tiny_plan_request, tiny_shape
from worker.model import build_model
from worker.token_drop import sample_kept_indices
from worker.train import loss_fn
from worker.validate import run_validation

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_full_length_equals_plain_model_on_cuda() -> None:
    model = build_model(tiny_shape(position="rotary", activation="swiglu")).cuda().train()
    tokens = torch.randint(0, 64, (2, 16), device="cuda")
    assert torch.equal(model(tokens, reserved_length=16), model(tokens))


def test_indices_reproducible_from_a_cpu_generator_on_cuda() -> None:
    a = sample_kept_indices(4, 4096, 1024, torch.Generator().manual_seed(1), device="cuda")
    b = sample_kept_indices(4, 4096, 1024, torch.Generator().manual_seed(1), device="cpu")
    assert a.device.type == "cuda" and torch.equal(a.cpu(), b)


def test_bf16_autocast_step_with_drops() -> None:
    model = build_model(tiny_shape(seq_len=64)).cuda().train()
    tokens = torch.randint(0, 64, (2, 64), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = loss_fn(model, tokens, tokens, reserved_length=16)
    loss.backward()
    assert torch.isfinite(loss)


def test_run_validation_on_cuda() -> None:
    model = tiny_model(hidden_size=64, seq_len=128)
    p = plan(tiny_plan_request(model=model, train_batch_size=8, train_steps=100))
    result = run_validation(p, ValidationSettings(device="cuda", warmup_steps=1, measure_steps=3))
    assert result.device == "cuda" and result.gpu_name and result.dtype == "bfloat16"
    assert result.peak_memory_bytes and result.peak_memory_bytes > 0
    assert "H100" not in result.gpu_name or result.mfu is not None
