"""Wall-clock projection of a plan's two runs with the step-time model (DESIGN.md, "Wall-clock and
cost: the step-time model").

The baseline's hours stay FLOPs / (GPUs x dense peak x MFU): the user's MFU sets the scale. The
random-LTD run's hours are the baseline's times sum_t T(r_t) / (n_baseline x T(S)), with T from
`planner.steptime` on the plan's device profile (a given one, else the GPU preset's built-in).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, Field

from planner.device import DeviceProfile, builtin_profile
from planner.errors import PlanInputError
from planner.gpus import GPUS
from planner.hardware import HardwareConfig
from planner.resolve import Runs
from planner.steptime import StepShape
from planner.steptime_table import StepTimes

METHOD = "step_time_model"
REFERENCE_GPU = "a100"  # the shape of a profile for a GPU without a built-in one


class Projection(BaseModel):
    """How the plan projected wall-clock time, and T(r) at a few reserved lengths."""

    method: str = Field(description="step_time_model: T(r) summed over the schedule.")
    device_profile: str = Field(description="The profile's device and where it came from.")
    device_profile_id: str
    micro_batch_size: int
    accumulation_steps: int = Field(description="Micro-batches per optimizer step per GPU.")
    time_ratio: float = Field(description="sum_t T(r_t) / (n_baseline x T(S)).")
    step_time_ms: dict[str, float] = Field(description="T(r) by reserved length, milliseconds.")
    breakdown_ms: dict[str, dict[str, float]] = Field(
        description="T(r)'s named parts at min_value and at S, milliseconds."
    )


def device_profile_for(hw: HardwareConfig) -> DeviceProfile:
    """The profile a plan projects with: the request's, else the preset's built-in one, else
    (a custom GPU given by its peak) the reference GPU's scaled to that peak."""
    given = hw.device_profile
    if isinstance(given, DeviceProfile):
        return given
    if isinstance(given, str):
        raise PlanInputError(
            "hardware.device_profile",
            f"{given!r} is a stored profile's id: only an ltd server can resolve it "
            "(give the profile JSON instead, e.g. --device-profile profile.json)",
        )
    if hw.gpu in GPUS:
        return builtin_profile(hw.gpu)
    reference = builtin_profile(REFERENCE_GPU)
    scale = hw.peak_flops_per_s / 1e12 / (reference.peak_tflops or 1.0)
    return DeviceProfile.model_validate(  # validated anew (not model_copy): grids recomputed
        {
            **reference.model_dump(),
            "device_name": hw.gpu,
            "peak_tflops": hw.peak_flops_per_s / 1e12,
            "source": f"{REFERENCE_GPU}'s built-in profile scaled to {hw.gpu}'s peak",
            "matmul_tflops": [[v * scale for v in row] for row in reference.matmul_tflops],
            "attention_tflops": [v * scale for v in reference.attention_tflops],
        }
    )


def step_shape(runs: Runs) -> StepShape:
    """What one GPU runs per optimizer step of the plan."""
    res = runs.resolved
    hw = res.hardware
    per_gpu = res.global_batch_size / hw.num_gpus
    return StepShape(
        model=res.model,
        num_ltd_layers=res.num_ltd_layers,
        micro_batch_size=hw.micro_batch_size,
        accumulation=max(1, math.ceil(per_gpu / hw.micro_batch_size)),
        num_gpus=hw.num_gpus,
        activation_recompute=hw.activation_recompute,
    )


def project(runs: Runs) -> Projection:
    """The step-time projection of a plan's runs: T(c, min(r, c)) on every segment of the
    random-LTD run, against the baseline's steps at T(S); T at a few lengths and the parts of
    T at the schedule's ends, for the reader."""
    profile = device_profile_for(runs.resolved.hardware)
    shape = step_shape(runs)
    S = runs.resolved.model.seq_len
    ltd = runs.ltd
    first = int(ltd.reserved[0])
    lengths = sorted({first, (first + S) // 2, S})
    table = StepTimes(shape, profile, np.concatenate((ltd.reserved, ltd.seqlens, lengths)))
    t_segments = table.step_time_s(ltd.reserved, ltd.seqlens)
    times = table.step_time_s(np.asarray(lengths))
    t_full = float(times[-1])
    ltd_time = float(np.dot(t_segments, ltd.counts.astype(np.float64)))
    base_time = runs.baseline.num_steps * t_full
    ends = sorted({first, S})
    return Projection(
        method=METHOD,
        device_profile=f"{profile.device_name} ({profile.dtype}): {profile.source}",
        device_profile_id=profile.id,
        micro_batch_size=shape.micro_batch_size,
        accumulation_steps=shape.accumulation,
        time_ratio=ltd_time / base_time if base_time else 1.0,
        step_time_ms={str(n): float(t) * 1e3 for n, t in zip(lengths, times, strict=True)},
        breakdown_ms={str(n): {k: v * 1e3 for k, v in table.breakdown_s(n).items()} for n in ends},
    )
