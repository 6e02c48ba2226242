"""The worker tests' setting: torch seeded before each test. Their tiny model is
`tests.factories.tiny_shape` (and `tiny_model` for plan requests)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
