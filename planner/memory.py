"""The memory estimate of one data-parallel replica (Korthikanti et al. 2022 for activations)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from planner import flops as F
from planner.resolve import Resolved


class MemoryEstimate(BaseModel):
    micro_batch_size: int
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes_min: int = Field(description="Activations at the smallest reserved length.")
    activations_bytes_full: int = Field(description="Activations at the full sequence.")
    total_bytes_min: int
    total_bytes_full: int


def memory_estimate(res: Resolved) -> MemoryEstimate:
    """Weights, gradients and optimizer state (bf16 + fp32 Adam) plus activations at the
    schedule's smallest reserved length and at the full sequence."""
    m, hw = res.model, res.hardware
    n = m.num_params
    act = {
        length: F.activation_bytes(
            length,
            m,
            num_ltd_layers=res.num_ltd_layers,
            micro_batch_size=hw.micro_batch_size,
            activation_recompute=hw.activation_recompute,
        )
        for length in (res.ltd.min_value, m.seq_len)
    }
    states = n * (F.WEIGHT_BYTES + F.GRAD_BYTES + F.OPTIMIZER_BYTES)
    return MemoryEstimate(
        micro_batch_size=hw.micro_batch_size,
        weights_bytes=n * F.WEIGHT_BYTES,
        gradients_bytes=n * F.GRAD_BYTES,
        optimizer_bytes=n * F.OPTIMIZER_BYTES,
        activations_bytes_min=act[res.ltd.min_value],
        activations_bytes_full=act[m.seq_len],
        total_bytes_min=states + act[res.ltd.min_value],
        total_bytes_full=states + act[m.seq_len],
    )
