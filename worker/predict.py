"""The step-time model on this device: the device profile a job predicts with (measured once per
device, dtype and torch version, then read from a cache on disk), and its prediction for the
very shape a job measured, beside each measurement."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError

from planner.device import DeviceProfile, builtin_profile
from planner.document import Plan
from planner.gpus import gpu_preset_for_name
from planner.steptime import StepShape
from planner.steptime_table import step_time_s
from planner.typed import changed
from planner.validation import StepTime
from worker import distributed, measure
from worker.profile import measure_profile

PROFILE_FORMAT = 3  # what a profile measures (older ones re-measured): 2 added first_touch_gbps,
# 3 the launch overhead as the median of bursts spread over the profile, and matmuls timed
# into one output (no fresh pages in the grid's largest cell; worker.profile)


def cache_path(cache_dir: Path, device_name: str, dtype: str) -> Path:
    """Where this device's profile is kept: one file per device, dtype, torch version and
    PROFILE_FORMAT, and on a CPU per intra-op thread count (a profile measured on one thread,
    say under OMP_NUM_THREADS=1, would make a two-thread worker's predictions ~1.5x slow)."""
    threads = f"-{torch.get_num_threads()}threads" if device_name == "cpu" else ""
    key = f"{device_name}{threads}-{dtype}-torch{torch.__version__}-v{PROFILE_FORMAT}"
    return cache_dir / (re.sub(r"[^A-Za-z0-9._+-]+", "_", key) + ".json")


def device_profile(
    plan: Plan,
    device: torch.device,
    amp_dtype: torch.dtype,
    cache_dir: Path | None,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[DeviceProfile, bool]:
    """The profile to predict a job with, and whether it was measured just now: the plan's own
    where it describes this device and dtype, else the built-in one of a known GPU in bfloat16,
    else this device's cached profile, else measured now (`ltd profile`: about ten seconds on
    a CPU) and cached in `cache_dir`."""
    name, dtype = measure.gpu_name(device) or "cpu", str(amp_dtype).removeprefix("torch.")
    given = plan.hardware.device_profile
    if isinstance(given, DeviceProfile) and (given.device_name, given.dtype) == (name, dtype):
        return given, False
    if gpu_preset_for_name(name) is not None and dtype == "bfloat16":
        return builtin_profile(gpu_preset_for_name(name) or ""), False
    path = cache_path(cache_dir, name, dtype) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            return DeviceProfile.model_validate_json(path.read_text()), False
        except (OSError, ValidationError):
            pass  # unreadable: measure it again
    profile = measure_profile(device.type, dtype, progress=progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(profile.model_dump_json(indent=1))
        tmp.replace(path)  # atomic: a concurrent reader sees the old file or the new one
    return profile, True


def with_predictions(
    profile: DeviceProfile | None,
    times: list[StepTime],
    points: list[tuple[int, int]],
    step: StepShape,
) -> tuple[list[StepTime], list[float], str]:
    """The step-time model's T for the very (c, r) pairs timed, beside each measurement, the
    predictions, and the profile's label. Rank 0 predicts (with its profile); under DDP every
    rank reports rank 0's figures."""
    seqlens = np.asarray([c for c, _ in points])
    lengths = np.asarray([r for _, r in points])
    own = step_time_s(lengths, step, profile, seqlens) * 1e3 if profile else [0.0] * len(times)
    predicted = [distributed.agree(float(t)) for t in own]
    updated = [
        changed(t, predicted_step_time_ms=p, prediction_error=p / t.step_time_ms - 1)
        for t, p in zip(times, predicted, strict=True)
    ]
    label = f"{profile.device_name} ({profile.dtype}): {profile.source}" if profile else "rank 0's"
    return updated, predicted, label
