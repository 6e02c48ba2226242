"""Device profiles: what a device achieves, as the step-time model (`planner.steptime`) needs it.

A profile holds the achieved matrix-multiply rate over a grid of sizes, the fused attention
rate over sequence lengths, the achieved memory bandwidth, the per-kernel launch and host
overhead, and the interconnect bandwidth for the gradient all-reduce. It comes either from
`ltd profile` (measured on the present device: `worker/profile.py`) or, for each GPU preset,
built in below from datasheets and published microbenchmarks. No constant here is fitted to the
validation measurements that judge the model.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from functools import cache, cached_property
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.gpus import GPUS

# The grids built-in profiles are tabulated on (measured profiles choose their own).
MATMUL_ROWS = (64, 256, 1024, 4096, 16384, 65536)
MATMUL_WIDTHS = (256, 1024, 4096, 16384)
ATTENTION_LENGTHS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)


class LogGrids:
    """A profile's grids in log space, as plain arrays (interpolation runs on every plan)."""

    def __init__(self, p: DeviceProfile) -> None:
        self.rows = np.log(np.asarray(p.matmul_rows, dtype=np.float64))
        self.widths = [float(w) for w in np.log(np.asarray(p.matmul_widths, dtype=np.float64))]
        self.matmul = np.log(np.asarray(p.matmul_tflops, dtype=np.float64) * 1e12)
        self.columns = [np.ascontiguousarray(col) for col in self.matmul.T]  # by width
        self.lengths = np.log(np.asarray(p.attention_lengths, dtype=np.float64))
        self.attention = np.log(np.asarray(p.attention_tflops, dtype=np.float64) * 1e12)


Dtype = Literal["bfloat16", "float16", "float32"]  # a profile's compute dtype
GridSize = Annotated[int, Field(ge=1, le=2**40)]
Rate = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]


class DeviceProfile(BaseModel):
    """What one device (in one dtype, under one torch) achieves. Rates are in the planner's
    FLOP conventions: a multiply-add is 2 FLOPs, causal attention counts the full n x n."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    device_name: str = Field(max_length=200, description="e.g. 'NVIDIA H100 80GB HBM3', 'cpu'.")
    dtype: Dtype = Field(description="Compute dtype.")
    torch_version: str | None = Field(None, max_length=64, description="None: built in.")
    source: str = Field(max_length=2000, description="Where the numbers come from.")
    peak_tflops: float | None = Field(None, gt=0, le=1e6, description="Dense peak; None: CPU.")
    matmul_rows: list[GridSize] = Field(min_length=2, max_length=64, description="M, ascending.")
    matmul_widths: list[GridSize] = Field(
        min_length=2, max_length=64, description="W: the GEMM (M x W) @ (W x W), ascending."
    )
    matmul_tflops: list[Annotated[list[Rate], Field(max_length=64)]] = Field(
        min_length=2,
        max_length=64,
        description="Achieved TFLOP/s, [row][width], forward and backward GEMMs alike.",
    )
    attention_lengths: list[GridSize] = Field(min_length=2, max_length=64, description="Ascending.")
    attention_tflops: list[Rate] = Field(
        min_length=2,
        max_length=64,
        description="Achieved TFLOP/s of fused causal attention, forward + backward, by length.",
    )
    memory_gbps: float | None = Field(
        gt=0, le=1e6, description="Achieved memory bandwidth, GB/s (None: memory is free)."
    )
    loss_gbps: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="Achieved bandwidth of softmax cross-entropy over a vocabulary, forward and "
        "backward, GB/s, counted as `planner.steptime.loss_bytes` does (None: memory_gbps).",
    )
    first_touch_gbps: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="Rate at which the host maps fresh pages into a new large allocation (one "
        "over the allocator's mmap threshold, `planner.steptime.FRESH_ALLOCATION_BYTES`), GB/s, "
        "beyond the write itself (None: large allocations reuse memory, as CUDA's caching "
        "allocator does).",
    )
    launch_overhead_us: float = Field(
        ge=0, le=1e5, description="Host time to issue one kernel (framework + launch), µs."
    )
    async_launch: bool = Field(
        description="Kernels queue on the device (CUDA): a kernel costs max(its work, the "
        "launch overhead). False (CPU): they add."
    )
    interconnect_gbps: float | None = Field(
        None, gt=0, le=1e6, description="All-reduce bus bandwidth within a node, GB/s per GPU."
    )
    internode_gbps: float | None = Field(
        None, gt=0, le=1e6, description="All-reduce bus bandwidth across nodes, GB/s per GPU."
    )
    gpus_per_node: int = Field(8, ge=1, le=1024)
    optimizer_ns_per_param: float | None = Field(
        None, ge=0, le=1e6, description="Measured AdamW + clipping time per parameter, ns."
    )
    optimizer_us_per_tensor: float | None = Field(
        None, ge=0, le=1e6, description="Measured AdamW + clipping time per parameter tensor, µs."
    )

    @model_validator(mode="after")
    def _grids(self) -> DeviceProfile:
        for name in ("matmul_rows", "matmul_widths", "attention_lengths"):
            grid = getattr(self, name)
            if any(b <= a for a, b in zip(grid, grid[1:], strict=False)) or grid[0] < 1:
                raise ValueError(f"{name}: must be positive and strictly ascending")
        rows = self.matmul_tflops
        if len(rows) != len(self.matmul_rows) or any(
            len(r) != len(self.matmul_widths) for r in rows
        ):
            raise ValueError("matmul_tflops: must be len(matmul_rows) x len(matmul_widths)")
        if len(self.attention_tflops) != len(self.attention_lengths):
            raise ValueError("attention_tflops: must have one rate per attention length")
        return self

    @cached_property
    def log_grids(self) -> LogGrids:
        """The grids in log space, computed once (after validation: they are sound)."""
        return LogGrids(self)

    @cached_property
    def id(self) -> str:
        """A hash of the profile's content: an id always means the same numbers, and a new
        measurement (of the same device too) gets a new id. Fields left unset (None) are not
        hashed, so a field added later with a None default leaves every stored id as it was.
        Plans never hash it: a plan id hashes the profile itself (`planner.resolve`)."""
        content = self.model_dump(mode="json", exclude_none=True)
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return "dp_" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    def matmul_flops_per_s(self, rows: np.ndarray, width: float) -> np.ndarray:
        """Achieved FLOP/s of a GEMM with `rows` rows and inner/outer width `width` (for a
        (M x K) @ (K x N) GEMM, width = sqrt(K N)): bilinear in log size and log rate over the
        grid, held at the edges."""
        grids = self.log_grids
        lr, lw = grids.rows, grids.widths
        x = np.log(np.asarray(rows, dtype=np.float64))
        x = np.minimum(np.maximum(x, lr[0]), lr[-1])
        y = min(max(math.log(float(width)), lw[0]), lw[-1])
        i = np.minimum(np.searchsorted(lr, x, side="right") - 1, len(lr) - 2)
        j = min(bisect.bisect_right(lw, y) - 1, len(lw) - 2)
        tx, ty = (x - lr[i]) / (lr[i + 1] - lr[i]), (y - lw[j]) / (lw[j + 1] - lw[j])
        left, right = grids.columns[j], grids.columns[j + 1]
        top = left[i] * (1 - ty) + right[i] * ty
        bottom = left[i + 1] * (1 - ty) + right[i + 1] * ty
        return np.exp(top * (1 - tx) + bottom * tx)

    def attention_flops_per_s(self, length: np.ndarray) -> np.ndarray:
        """Achieved FLOP/s of fused causal attention at `length` tokens (log-log, held at the
        edges)."""
        x = np.log(np.maximum(np.asarray(length, dtype=np.float64), 1.0))
        grids = self.log_grids
        return np.exp(np.interp(x, grids.lengths, grids.attention))


MEMORY_EFFICIENCY = 0.9  # copy microbenchmarks (BabelStream) reach ~90% of the datasheet's
CUDA_LAUNCH_US = 8.0  # ~4 us cudaLaunchKernel plus ~4 us PyTorch eager dispatch per op


@cache
def builtin_profile(gpu: str) -> DeviceProfile:
    """The built-in profile of a GPU preset, tabulated from its row of the GPU table
    (`planner.gpus`, where each number's source is): matmul rate = peak x fraction x
    M / (M + M_half) x W / (W + W_half); memory at MEMORY_EFFICIENCY of the datasheet's."""
    c = GPUS[gpu]
    peak = c.peak_tflops
    rows, widths = np.asarray(MATMUL_ROWS, float), np.asarray(MATMUL_WIDTHS, float)
    sat_rows, sat_widths = (
        rows / (rows + c.matmul_rows_half),
        widths / (widths + c.matmul_width_half),
    )
    table = peak * c.matmul_fraction * np.outer(sat_rows, sat_widths)
    return DeviceProfile(
        device_name=gpu,
        dtype="bfloat16",
        source=f"built in for {gpu}: datasheet peak and bandwidth, published GEMM, "
        "FlashAttention-2/3 and nccl-tests figures (planner/device.py)",
        peak_tflops=peak,
        matmul_rows=list(MATMUL_ROWS),
        matmul_widths=list(MATMUL_WIDTHS),
        matmul_tflops=[[round(float(v), 3) for v in row] for row in table],
        attention_lengths=list(ATTENTION_LENGTHS),
        attention_tflops=list(c.attention_tflops),
        memory_gbps=c.datasheet_gbps * MEMORY_EFFICIENCY,
        launch_overhead_us=CUDA_LAUNCH_US,
        async_launch=True,
        interconnect_gbps=c.interconnect_gbps,
        internode_gbps=c.internode_gbps,
    )


def ideal_profile(peak_tflops: float) -> DeviceProfile:
    """A device that runs every FLOP at its peak, moves memory for free and launches nothing:
    with it the step-time model's T(r)/T(S) is exactly the FLOPs ratio (a property test)."""
    return DeviceProfile(
        device_name="ideal",
        dtype="bfloat16",
        source="ideal: flat matmul and attention rate, no memory, launch or communication cost",
        peak_tflops=peak_tflops,
        matmul_rows=[1, 2],
        matmul_widths=[1, 2],
        matmul_tflops=[[peak_tflops, peak_tflops], [peak_tflops, peak_tflops]],
        attention_lengths=[1, 2],
        attention_tflops=[peak_tflops, peak_tflops],
        memory_gbps=None,
        launch_overhead_us=0.0,
        async_launch=True,
    )
