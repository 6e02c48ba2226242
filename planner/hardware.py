"""GPUs, wall-clock time and cost.

Time = model FLOPs / (GPUs x dense peak FLOP/s x MFU). Peaks are the dense bf16/fp16 tensor-core
figures from each vendor's datasheet, never the "with sparsity" ones.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from planner.device import DeviceProfile
from planner.gpus import GPUS
from planner.models import kept_to


def _profile_kind(value: Any) -> str:
    return "profile id" if isinstance(value, str) else "device profile"


# A stored profile's id or a whole profile: the value's type chooses, so a bad profile's errors
# name its fields rather than also saying it is not a string.
ProfileRef = Annotated[
    Annotated[str, Field(max_length=64), Tag("profile id")]
    | Annotated[DeviceProfile, Tag("device profile")],
    Discriminator(_profile_kind),
]

__all__ = [
    "DEFAULT_MFU",
    "HardwareConfig",
    "cost_usd",
    "wall_clock_hours",
]

DEFAULT_MFU = 0.40  # a well-tuned Megatron-style run on A100/H100 reaches 0.35-0.55


class HardwareConfig(BaseModel):
    """Where the run trains and what an hour costs."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    gpu: Annotated[str, kept_to(100)] = Field(
        "a100", description=f"GPU preset: {', '.join(GPUS)} (kept to 100 characters)."
    )
    num_gpus: int = Field(8, ge=1, le=1_000_000, description="GPUs training together.")
    peak_tflops: float | None = Field(
        None, gt=0, le=1e6, description="Dense peak TFLOP/s per GPU; overrides the preset's."
    )
    mfu: float = Field(DEFAULT_MFU, gt=0, le=1, description="Model FLOPs utilisation, 0-1.")
    price_per_gpu_hour: float | None = Field(
        None, ge=0, le=1e6, description="US dollars per GPU-hour; no cost without it."
    )
    activation_recompute: bool = Field(False, description="Full activation recompute.")
    micro_batch_size: int = Field(
        1, ge=1, le=1_000_000, description="Sequences per forward-backward (memory, step time)."
    )
    device_profile: ProfileRef | None = Field(
        None,
        description="The step-time model's device: a stored profile's id (the server resolves "
        "it), or a whole profile (`ltd profile -o FILE`); default: the GPU preset's built-in one.",
    )

    @model_validator(mode="after")
    def _known_gpu(self) -> HardwareConfig:
        if self.gpu not in GPUS and self.peak_tflops is None:
            close = difflib.get_close_matches(self.gpu, list(GPUS), n=3, cutoff=0.4)
            known = ", ".join(close or GPUS)
            hint = f"did you mean {known}?" if close else f"known: {known}"
            raise ValueError(f"gpu: unknown GPU {self.gpu!r} (give peak_tflops, or {hint})")
        return self

    @property
    def peak_flops_per_s(self) -> float:
        tflops = self.peak_tflops if self.peak_tflops is not None else GPUS[self.gpu].peak_tflops
        return tflops * 1e12


def wall_clock_hours(model_flops: float, hw: HardwareConfig, mfu: float | None = None) -> float:
    """Hours = FLOPs / (GPUs x peak x MFU) / 3600."""
    rate = hw.num_gpus * hw.peak_flops_per_s * (hw.mfu if mfu is None else mfu)
    return model_flops / rate / 3600.0


def cost_usd(gpu_hours: float, hw: HardwareConfig) -> float | None:
    return None if hw.price_per_gpu_hour is None else gpu_hours * hw.price_per_gpu_hour
