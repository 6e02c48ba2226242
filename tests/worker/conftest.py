"""Shared factories for the worker tests: tiny shapes that run in milliseconds on a CPU."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from planner.models import ModelShape  # noqa: E402


def tiny_shape(**overrides: object) -> ModelShape:
    """A 4-layer GPT with hidden 32: every test model starts from this."""
    fields: dict[str, object] = dict(
        name="tiny",
        arch="gpt",
        num_layers=4,
        hidden_size=32,
        num_heads=4,
        vocab_size=64,
        seq_len=16,
    )
    fields.update(overrides)
    return ModelShape.model_validate(fields)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
