"""The step-time model's prediction for the very shape a job measured, beside each measurement
(`planner.steptime` on a device profile of this device)."""

from __future__ import annotations

import numpy as np
import torch

from planner.device import DeviceProfile, builtin_profile
from planner.document import Plan
from planner.gpus import gpu_preset_for_name
from planner.steptime import StepShape
from planner.steptime_table import step_time_s
from planner.typed import changed
from planner.validation import StepTime
from worker import distributed, measure
from worker.profile import measure_profile


def prediction_profile(plan: Plan, device: torch.device, amp_dtype: torch.dtype) -> DeviceProfile:
    """The profile to predict a job with: the plan's own where it describes this device and
    dtype, else the built-in one of a known GPU in bfloat16, else measured now (`ltd profile`:
    about ten seconds on a CPU)."""
    name, dtype = measure.gpu_name(device) or "cpu", str(amp_dtype).removeprefix("torch.")
    given = plan.hardware.device_profile
    if isinstance(given, DeviceProfile) and (given.device_name, given.dtype) == (name, dtype):
        return given
    preset = gpu_preset_for_name(name)
    if preset is not None and dtype == "bfloat16":
        return builtin_profile(preset)
    return measure_profile(device.type, dtype)


def with_predictions(
    plan: Plan,
    times: list[StepTime],
    points: list[tuple[int, int]],
    step: StepShape,
    device: torch.device,
    amp_dtype: torch.dtype,
) -> tuple[list[StepTime], list[float], str]:
    """The step-time model's T for the very (c, r) pairs timed, beside each measurement, the
    predictions, and the profile's label. Rank 0 predicts (measuring a profile where needed);
    under DDP every rank reports its figures."""
    profile = prediction_profile(plan, device, amp_dtype) if distributed.rank() == 0 else None
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
