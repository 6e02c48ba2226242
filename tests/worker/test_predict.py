"""The worker's device-profile cache (worker.predict): one file per device, dtype, torch version,
profile format and, on a CPU, thread count; a cached profile is read, not measured again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from planner import plan
from planner.device import builtin_profile
from planner.typed import changed
from tests.factories import tiny_plan_request
from worker.predict import PROFILE_FORMAT, cache_path, device_profile


@pytest.fixture
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_cpu_profile_is_cached_per_thread_count(tmp_path: Path, threads: None) -> None:
    torch.set_num_threads(1)
    one = cache_path(tmp_path, "cpu", "float32")
    torch.set_num_threads(2)
    two = cache_path(tmp_path, "cpu", "float32")
    assert one != two and "1threads" in one.name and "2threads" in two.name
    assert f"torch{torch.__version__}" in two.name and two.name.endswith(f"-v{PROFILE_FORMAT}.json")
    gpu = cache_path(tmp_path, "NVIDIA H100 80GB HBM3", "bfloat16")
    assert "threads" not in gpu.name and " " not in gpu.name


def test_a_cached_profile_is_read_not_measured(tmp_path: Path, threads: None) -> None:
    torch.set_num_threads(2)
    cached = changed(
        builtin_profile("a100"), device_name="cpu", dtype="float32", source="cached by the test"
    )
    path = cache_path(tmp_path, "cpu", "float32")
    path.write_text(cached.model_dump_json())
    profile, measured = device_profile(
        plan(tiny_plan_request()), torch.device("cpu"), torch.float32, tmp_path
    )
    assert (profile, measured) == (cached, False)
