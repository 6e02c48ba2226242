"""`measure_profile()`: measure this device into a `DeviceProfile` (`ltd profile`, and jobs in
mode "profile").

What the step-time model needs, each timed after warm-up and synchronised (worker.measure):
matmul rate over a grid of rows x widths, fused causal attention (SDPA, forward + backward) over
lengths, copy bandwidth, the page faults of a new large allocation (CPU), the host time to issue
one small autograd op (in bursts spread over the whole profile: `LaunchProbe`), and AdamW with
gradient clipping per parameter. About twelve seconds on a 2-core CPU.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)

from planner.device import DeviceProfile
from planner.gpus import GPUS, gpu_preset_for_name
from planner.models import ModelShape
from planner.steptime import AUTOCAST_LAYER_KERNELS, LAYER_KERNELS, loss_bytes
from worker.measure import gpu_name, pick_amp_dtype, pick_device, synchronize, timed_ms
from worker.model import Block
from worker.train import autocast

Progress = Callable[[float, str], None]

CPU_ROWS = (16, 64, 256, 1024, 4096)
CPU_WIDTHS = (64, 128, 256, 512, 1024, 2048)
CPU_LENGTHS = (32, 64, 128, 256, 512, 1024, 2048)
GPU_ROWS = (64, 256, 1024, 4096, 16384, 65536)
GPU_WIDTHS = (256, 1024, 4096, 16384)
GPU_LENGTHS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)
ATTENTION_HEADS, ATTENTION_HEAD_DIM = 8, 64
LAUNCH_REPEATS = 20
LAUNCH_LAYERS = 8
OPTIMIZER_PARAMS = 1 << 22
MATMUL_MIN_S = 0.05  # repeat a timed matmul until it has run this long (small ones are fast)


def _timed_long_enough(fn: Callable[[], object], device: torch.device) -> float:
    """Median milliseconds of `fn()`, repeated until the timed calls add up to about
    MATMUL_MIN_S (small calls are fast and noisy), after one untimed call."""
    once_s = timed_ms(fn, device, warmup=1, repeats=1) / 1e3
    repeats = max(1, min(50, int(MATMUL_MIN_S / max(once_s, 1e-6))))
    return timed_ms(fn, device, warmup=1, repeats=repeats + 2)


def matmul_ms(rows: int, width: int, device: torch.device, dtype: torch.dtype) -> float:
    """Median milliseconds of (rows x width) @ (width x width), into one output tensor: a new
    output each call would, from 32 MiB (the grid's largest cell on the CPU), time the page
    faults of a fresh allocation too, which the model counts apart (`first_touch_gbps`)."""
    a = torch.randn(rows, width, device=device, dtype=dtype)
    b = torch.randn(width, width, device=device, dtype=dtype)
    out = torch.empty(rows, width, device=device, dtype=dtype)
    return _timed_long_enough(lambda: torch.matmul(a, b, out=out), device)


def work_s(ms: float, overhead_ms: float, device: torch.device) -> float:
    """The work in a timed call, seconds. On the CPU, where the model adds each kernel's launch
    overhead to its work, the time of the same call at a negligible size is taken off (at least
    a tenth of the time is kept); a GPU's queued kernels are timed as they are."""
    if device.type == "cuda":
        return ms / 1e3
    return max(ms - overhead_ms, ms / 10) / 1e3


def matmul_tflops(
    rows: int, width: int, device: torch.device, dtype: torch.dtype, overhead_ms: float = 0.0
) -> float:
    """Achieved TFLOP/s of (rows x width) @ (width x width)."""
    seconds = work_s(matmul_ms(rows, width, device, dtype), overhead_ms, device)
    return 2 * rows * width * width / seconds / 1e12


def attention_ms(length: int, device: torch.device, dtype: torch.dtype) -> float:
    """Median milliseconds of causal SDPA forward + backward, one sequence, 8 heads of 64."""
    shape = (1, ATTENTION_HEADS, length, ATTENTION_HEAD_DIM)
    q, k, v = (torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for _ in "qkv")
    grad = torch.randn(shape, device=device, dtype=dtype)

    def step() -> None:
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad)

    return _timed_long_enough(step, device)


def attention_tflops(
    length: int, device: torch.device, dtype: torch.dtype, overhead_ms: float = 0.0
) -> float:
    """Achieved TFLOP/s of causal attention: 3 x 4 n^2 h FLOPs (the planner's convention)."""
    seconds = work_s(attention_ms(length, device, dtype), overhead_ms, device)
    hidden = ATTENTION_HEADS * ATTENTION_HEAD_DIM
    return 3 * 4 * length * length * hidden / seconds / 1e12


def memory_gbps(device: torch.device) -> float:
    """Achieved copy bandwidth: read and write of a buffer far larger than the caches."""
    numel = (1 << 28) if device.type == "cuda" else (1 << 24)  # 1 GiB / 64 MiB of fp32
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    ms = timed_ms(lambda: dst.copy_(src), device, warmup=2, repeats=10)
    return 2 * numel * 4 / (ms / 1e3) / 1e9


def first_touch_gbps(device: torch.device) -> float | None:
    """The host's rate of mapping fresh pages into a new allocation over the allocator's mmap
    threshold (`planner.steptime.FRESH_ALLOCATION_BYTES`): filling a new 64 MiB tensor, less
    filling one already mapped. None on CUDA (its caching allocator reuses memory) or where a
    new allocation costs no more than a mapped one."""
    if device.type == "cuda":
        return None
    numel = 1 << 24  # 64 MiB of fp32
    mapped = torch.ones(numel)
    warm_ms = timed_ms(lambda: mapped.fill_(0.0), device, warmup=2, repeats=10)
    fresh_ms = timed_ms(lambda: torch.empty(numel).fill_(0.0), device, warmup=2, repeats=10)
    if fresh_ms < 1.1 * warm_ms:
        return None
    return numel * 4 / ((fresh_ms - warm_ms) / 1e3) / 1e9


class LaunchProbe:
    """Host time per kernel: a stack of LAUNCH_LAYERS of the project's transformer layers at a
    negligible size (hidden 8, 4 tokens), forward and backward in one pass, over the kernels
    the step-time model counts for them (`planner.steptime.LAYER_KERNELS` a layer): the
    framework's dispatch of real ops plus the launch.

    Sampled in short bursts (`sample`, LAUNCH_REPEATS steps each) spread over the whole profile,
    one after each of its other measurements, and summarised by the median burst (`value`): on a
    shared CPU the host's speed drifts over seconds, and one burst measured this constant to
    about +-20% (three profiles back to back gave 9.0, 13.6 and 10.6 µs: docs/benchmarks.md)."""

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        tiny = ModelShape(num_layers=1, hidden_size=8, num_heads=1, vocab_size=8, seq_len=4)
        blocks = torch.nn.Sequential(*(Block(tiny, causal=True) for _ in range(LAUNCH_LAYERS)))
        self.blocks = blocks.to(device)
        self.x = torch.randn(1, 4, 8, device=device, requires_grad=True)
        self.device, self.dtype = device, dtype
        self.kernels = LAUNCH_LAYERS * (
            LAYER_KERNELS + (AUTOCAST_LAYER_KERNELS if dtype != torch.float32 else 0)
        )
        self.samples: list[float] = []

    def _step(self) -> None:
        with autocast(self.device, self.dtype):
            y = self.blocks(self.x)
        y.sum().backward()
        synchronize(self.device)

    def sample(self) -> None:
        """One burst: the median of LAUNCH_REPEATS steps, in µs a kernel."""
        warmup = 3 if not self.samples else 1
        ms = timed_ms(self._step, self.device, warmup=warmup, repeats=LAUNCH_REPEATS)
        self.samples.append(ms * 1e3 / self.kernels)

    def value(self) -> float:
        """The median burst, µs a kernel (one burst measured now when none was)."""
        if not self.samples:
            self.sample()
        return statistics.median(self.samples)


def loss_gbps(device: torch.device, dtype: torch.dtype) -> float:
    """Achieved bandwidth of the loss (fp32 cast, cross-entropy, forward and backward) over
    1024 x 4096 logits, counted as `planner.steptime.loss_bytes`: 16 MiB tensors, which the
    allocator reuses (larger ones cost fresh pages too: `first_touch_gbps`)."""
    rows, vocab = 1024, 4096
    logits = torch.randn(rows, vocab, device=device, dtype=dtype, requires_grad=True)
    targets = torch.randint(0, vocab, (rows,), device=device)

    def step() -> None:
        F.cross_entropy(logits.float(), targets).backward()

    ms = timed_ms(step, device, warmup=1, repeats=5)
    element = 4 if dtype == torch.float32 else 2
    return float(loss_bytes(rows, vocab, element)) / (ms / 1e3) / 1e9


def optimizer_ms(num_tensors: int, tensor_numel: int, device: torch.device) -> float:
    """Gradient clipping and AdamW over `num_tensors` tensors of `tensor_numel` parameters."""
    params = [
        torch.nn.Parameter(torch.randn(tensor_numel, device=device)) for _ in range(num_tensors)
    ]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(params, lr=1e-4)

    def update() -> None:
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return timed_ms(update, device, warmup=2, repeats=5)


def optimizer_costs(device: torch.device) -> tuple[float, float]:
    """(ns per parameter, µs per tensor) of clipping and AdamW: 16 tensors of 2^18 parameters
    give the first, 512 tensors of 16 parameters the second."""
    per_tensor_us = optimizer_ms(512, 16, device) * 1e3 / 512
    big_ms = optimizer_ms(16, OPTIMIZER_PARAMS // 16, device)
    per_param_ns = max(big_ms - 16 * per_tensor_us / 1e3, big_ms / 10) * 1e6 / OPTIMIZER_PARAMS
    return per_param_ns, per_tensor_us


class _Ticker:
    """Progress through a profile's measurements, one tick each; `between()` runs at each."""

    def __init__(
        self, total: int, progress: Progress | None, between: Callable[[], None] | None = None
    ) -> None:
        self.total, self.done, self.progress, self.between = total, 0, progress, between

    def __call__(self, message: str) -> None:
        self.done += 1
        if self.between is not None:
            self.between()
        if self.progress is not None:
            self.progress(self.done / self.total, message)


def matmul_table(
    rows: tuple[int, ...], widths: tuple[int, ...], dev: torch.device, compute: torch.dtype,
    tick: Callable[[str], None],
) -> list[list[float]]:  # fmt: skip
    """Achieved TFLOP/s over the grid of rows x widths."""
    overhead = matmul_ms(1, 1, dev, compute)
    table = []
    for m in rows:
        row = []
        for w in widths:
            row.append(matmul_tflops(m, w, dev, compute, overhead))
            tick(f"matmul {m} x {w}")
        table.append(row)
    return table


def attention_rates(
    lengths: tuple[int, ...], dev: torch.device, compute: torch.dtype, tick: Callable[[str], None]
) -> list[float]:
    """Achieved TFLOP/s of fused causal attention at each length."""
    overhead = attention_ms(1, dev, compute)
    rates = []
    for n in lengths:
        rates.append(attention_tflops(n, dev, compute, overhead))
        tick(f"attention at {n}")
    return rates


def measure_profile(
    device: str = "auto", dtype: str = "auto", progress: Progress | None = None
) -> DeviceProfile:
    """The present device's profile (module docstring); `progress(fraction, message)`."""
    dev = pick_device(device)
    compute = pick_amp_dtype(dev, dtype)
    on_gpu = dev.type == "cuda"
    rows, widths = (GPU_ROWS, GPU_WIDTHS) if on_gpu else (CPU_ROWS, CPU_WIDTHS)
    lengths = GPU_LENGTHS if on_gpu else CPU_LENGTHS
    started = time.perf_counter()
    launch = LaunchProbe(dev, compute)  # sampled at every tick: spread over the whole profile
    tick = _Ticker(len(rows) * len(widths) + len(lengths) + 3, progress, launch.sample)
    table = matmul_table(rows, widths, dev, compute, tick)
    attention = attention_rates(lengths, dev, compute, tick)
    bandwidth = memory_gbps(dev)
    tick("memory bandwidth")
    loss = loss_gbps(dev, compute)
    first_touch = first_touch_gbps(dev)
    tick("loss and first touch")
    per_param_ns, per_tensor_us = optimizer_costs(dev)
    tick("optimizer")
    name = gpu_name(dev) or "cpu"
    preset = gpu_preset_for_name(name)
    gpu = GPUS[preset] if preset else None  # one device cannot measure its network
    return DeviceProfile(
        device_name=name,
        dtype=str(compute).removeprefix("torch."),  # type: ignore[arg-type]
        torch_version=torch.__version__,
        source=f"measured by ltd profile on {name}"
        + (f" ({torch.get_num_threads()} threads)" if name == "cpu" else "")
        + f" in {time.perf_counter() - started:.0f} s"
        + (f"; interconnect from the {preset} preset" if gpu else ""),
        peak_tflops=gpu.peak_tflops if gpu else None,
        matmul_rows=list(rows),
        matmul_widths=list(widths),
        matmul_tflops=[[round(v, 6) for v in row] for row in table],
        attention_lengths=list(lengths),
        attention_tflops=[round(v, 6) for v in attention],
        memory_gbps=round(bandwidth, 3),
        loss_gbps=round(loss, 3),
        first_touch_gbps=None if first_touch is None else round(first_touch, 3),
        launch_overhead_us=round(launch.value(), 3),
        async_launch=on_gpu,
        interconnect_gbps=gpu.interconnect_gbps if gpu else None,
        internode_gbps=gpu.internode_gbps if gpu else None,
        optimizer_ns_per_param=round(per_param_ns, 4),
        optimizer_us_per_tensor=round(per_tensor_us, 4),
    )
