"""Measuring in one place: device choice, synchronised step timing, FLOP/s, MFU and memory.

Every timing warms up first and synchronises the device at both ends of each timed interval.
Model FLOPs come from the planner's formulas (`planner.flops.step_flops`), the same the plan's
estimate uses, so a measured MFU and a planned one are comparable. MFU is None where the device's
peak is unknown (a CPU, an unlisted GPU); it is relative to the dense bf16 peak whatever the
dtype measured.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import nn

from planner.gpus import GPUS, gpu_preset_for_name
from worker.token_drop import drop_apply_restore, sample_kept_indices
from worker.train import autocast, loss_fn


def pick_device(setting: str = "auto") -> torch.device:
    """'auto': CUDA when available, else the CPU; 'cuda' without a GPU is an error."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(setting)


def pick_amp_dtype(device: torch.device, setting: str = "auto") -> torch.dtype:
    """'auto': bf16 autocast on CUDA, fp32 on the CPU."""
    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[setting]


def gpu_name(device: torch.device) -> str | None:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_ms(fn: Callable[[], object], device: torch.device, *, warmup: int, repeats: int) -> float:
    """Median milliseconds of `fn()` after `warmup` untimed calls, synchronised each time."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def forward_backward_ms(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    lengths: Sequence[int | None],
    *,
    amp_dtype: torch.dtype,
    warmup: int,
    repeats: int,
    progress: Callable[[float], None] | None = None,
    seqlens: Sequence[int] | None = None,
) -> list[float]:
    """Median time of one micro-batch's forward and backward at each reserved length (with
    `seqlens`, each pair's sequences cut to that many tokens: curriculum learning).

    After `warmup` untimed passes per length, the timed passes go round-robin over the lengths,
    so a machine whose load drifts (another process, thermal throttling) shifts every length
    alike instead of biasing the fit. Gradients accumulate, as they do over the micro-batches of
    one optimizer step.
    """
    inputs, targets = batch
    device = inputs.device
    cuts: Sequence[int | None] = seqlens if seqlens is not None else [None] * len(lengths)

    def micro_step(j: int) -> None:
        r, c = lengths[j], cuts[j]  # curriculum learning: sequences cut to c tokens
        with autocast(device, amp_dtype):
            loss = loss_fn(model, inputs[:, :c], targets[:, :c], r)
        loss.backward()

    total, done = len(lengths) * (warmup + repeats), 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / total)

    for j in range(len(lengths)):
        for _ in range(warmup):
            micro_step(j)
            advance()
    times: list[list[float]] = [[] for _ in lengths]
    for _ in range(repeats):
        for j in range(len(lengths)):
            times[j].append(timed_ms(partial(micro_step, j), device, warmup=0, repeats=1))
            advance()
    return [statistics.median(t) for t in times]


def optimizer_step_ms(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    warmup: int = 1,
    repeats: int = 3,
    grad_clip: float = 1.0,
) -> float:
    """Median time of the once-per-optimizer-step work: gradient clipping and AdamW.
    Needs gradients in place (run `forward_backward_ms` first)."""
    device = next(model.parameters()).device

    def update() -> None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()

    return timed_ms(update, device, warmup=warmup, repeats=repeats)


def gather_scatter_ms(
    *,
    batch: int,
    seq_len: int,
    reserved_length: int,
    hidden: int,
    num_ltd_layers: int,
    device: torch.device,
    dtype: torch.dtype,
    warmup: int = 2,
    repeats: int = 5,
) -> float:
    """Time a step spends sampling, gathering and scattering tokens (forward and backward) in
    all its dropping layers, measured on its own with the step's shapes and dtype: the layers'
    own path (`drop_apply_restore`) around an identity layer."""
    x_BSH = torch.randn(batch, seq_len, hidden, device=device, dtype=dtype, requires_grad=True)
    grad_BSH = torch.randn_like(x_BSH)

    def drops() -> None:
        for _ in range(num_ltd_layers):
            idx_Br = sample_kept_indices(batch, seq_len, reserved_length, device=device)
            drop_apply_restore(x_BSH, idx_Br, lambda kept: kept).backward(grad_BSH)

    return timed_ms(drops, device, warmup=warmup, repeats=repeats)


def matmul_flops_per_s(device: torch.device, dtype: torch.dtype, size: int) -> float:
    """Achieved FLOP/s of a (size x size) @ (size x 4 size) matmul: a cheap probe of what the
    device delivers, used only to size a job to its time budget."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, 4 * size, device=device, dtype=dtype)
    ms = timed_ms(lambda: a @ b, device, warmup=1, repeats=3)
    return 2 * size * size * 4 * size / (ms / 1e3)


def peak_flops_per_s(device: torch.device) -> float | None:
    """Dense bf16 peak of the device from the planner's GPU presets; None if unknown."""
    preset = gpu_preset_for_name(gpu_name(device))
    return None if preset is None else GPUS[preset].peak_tflops * 1e12


def mfu(model_flops_per_s: float, device: torch.device) -> float | None:
    peak = peak_flops_per_s(device)
    return None if peak is None else model_flops_per_s / peak


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    """CUDA: peak bytes allocated by torch. CPU: the process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # macOS: bytes, Linux: KiB


def available_memory_bytes(device: torch.device) -> int:
    """Free device memory (CUDA) or half the machine's physical memory (CPU)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
