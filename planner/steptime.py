"""The step-time model: T(r), the time of one optimizer step whose dropping layers keep r tokens.

FLOPs are not time. A step is a sum of named parts, one function each, so that a wrong
prediction can be traced to one line (the style of Calculon's and llm-analysis's breakdowns):

    T(r) = accumulation x micro_batch(r) + optimizer + exposed all-reduce
    micro_batch(r) = sum over layers of layer(n)  (n = r in dropping layers, S elsewhere)
                     + embedding, final norm, head and loss (always at S)
    layer(n)       = matmuls(n) + attention core(n) + memory-bound work(n) [+ token drop(r)],
                     and the host's launch overhead for its kernels
    memory-bound   = bytes moved / bandwidth, and on the CPU the page faults of tensors too
                     large for the allocator to reuse (FRESH_ALLOCATION_BYTES)

Rates and bandwidths come from a `DeviceProfile` (planner.device): measured by `ltd profile`, or
built in for a GPU preset. Kernels are issued by the host: on a device that queues them (CUDA) a
group of kernels costs max(its work, its launch overhead), which is what makes a small model on a
big GPU slower with dropping; on the CPU the two add. With an ideal device (flat rate, free
memory, no launches, no communication) T(r)/T(S) is exactly the FLOPs ratio.

`planner.steptime_table` evaluates the parts over every length a plan needs at once.

The counts of bytes and kernels follow the project's own torch implementation (worker/model.py:
pre-LN blocks, SDPA, fp32 master weights under autocast, the gather/scatter of
worker/token_drop.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planner import flops as F
from planner.device import DeviceProfile
from planner.models import ModelShape

Seconds = np.ndarray
MASTER_BYTES = 4  # fp32 weights, gradients and residual stream (the worker; Megatron alike)
OPTIMIZER_BYTES_PER_PARAM = (
    40  # AdamW: read p, g, m, v, write p, m, v (28); clip: read+scale g (12)
)
DDP_BUCKET_BYTES = 25 * 2**20  # the last gradient bucket cannot hide behind the backward pass
# Kernels the worker's eager PyTorch launches, counted from a torch.profiler trace of a step of a
# 4- and a 6-layer GPT on the CPU (leaf aten ops, views excluded; benchmarks/bench_steptime.py
# --count-kernels prints them again):
LAYER_KERNELS = 39  # a layer's forward and backward, with gradient accumulation
AUTOCAST_LAYER_KERNELS = 13  # 16-bit compute: input casts (3) and weight casts (5) forward,
# weight-gradient casts (5) backward (counted by that rule, not traced)
DROP_KERNELS = 16  # a dropping layer's sampling, gather and restore, forward and backward
HEAD_KERNELS = 18  # embeddings, final norm, head and loss, forward and backward
OPTIMIZER_KERNELS_BASE = 6  # gradient-norm reduction and its scalar ops
OPTIMIZER_KERNELS_PER_TENSOR = 10  # per-tensor AdamW and clipping (the CPU's for-loop path)
FOREACH_TENSORS_PER_KERNEL = 100  # CUDA's foreach AdamW covers about this many tensors a launch
# PyTorch's CPU allocator is malloc; glibc's malloc serves a block of DEFAULT_MMAP_THRESHOLD_MAX
# (32 MiB on 64-bit) or more with an mmap of its own and unmaps it when it is freed, so each such
# tensor a micro-batch allocates (the logits; an MLP's activations at large b x n x f) is faulted
# in page by page, afresh every time. Smaller blocks come back from the heap already mapped.
FRESH_ALLOCATION_BYTES = 32 * 2**20


@dataclass(frozen=True)
class StepShape:
    """What one device runs per optimizer step."""

    model: ModelShape
    num_ltd_layers: int
    micro_batch_size: int  # b, sequences per forward-backward
    accumulation: int  # micro-batches per optimizer step on each device
    num_gpus: int  # data-parallel replicas (the all-reduce)
    activation_recompute: bool = False

    @property
    def num_full_layers(self) -> int:
        return self.model.num_layers - self.num_ltd_layers


def element_bytes(profile: DeviceProfile) -> int:
    """Bytes of one activation element in the compute dtype."""
    return 4 if profile.dtype == "float32" else 2


# Matrix multiplies ------------------------------------------------------------------------------


def linear_s(rows: np.ndarray, k: int, n: int, profile: DeviceProfile) -> Seconds:
    """A linear layer (rows x k) @ (k x n), forward and both backward GEMMs (input and weight
    gradients, same FLOPs): 3 x 2 rows k n at the profile's achieved rate for `rows` rows and
    width sqrt(k n)."""
    flops = 3 * 2 * rows * k * n
    return flops / profile.matmul_flops_per_s(rows, math.sqrt(k * n))


def layer_matmul_s(n: np.ndarray, shape: StepShape, profile: DeviceProfile) -> Seconds:
    """The five linears of a layer at M = b x n rows: Q (h, h), KV (h, 2 kv), out (h, h), MLP up
    (h, f (m - 1)) and down (f, h). Their FLOPs sum to 3 b (projection + mlp) of planner.flops."""
    m, rows = shape.model, shape.micro_batch_size * np.asarray(n, dtype=np.float64)
    h, f, kv = m.hidden_size, m.ffn_size, m.kv_heads * m.head_dim
    return (
        linear_s(rows, h, h, profile)
        + linear_s(rows, h, 2 * kv, profile)
        + linear_s(rows, h, h, profile)
        + linear_s(rows, h, f * (m.mlp_matrices - 1), profile)
        + linear_s(rows, f, h, profile)
    )


def attention_core_s(n: np.ndarray, shape: StepShape, profile: DeviceProfile) -> Seconds:
    """Fused causal attention (SDPA / flash), forward and backward: 3 b x 4 n^2 h FLOPs (full
    n x n counted) at the profile's achieved attention rate for length n."""
    n = np.asarray(n, dtype=np.float64)
    flops = F.TRAIN_PASSES * shape.micro_batch_size * F.attention_flops(n, shape.model)
    return flops / profile.attention_flops_per_s(n)


def head_tokens(shape: StepShape, seq: np.ndarray | None) -> np.ndarray:
    """Tokens the head runs on per sequence: the sequence (S, or CL's c), vit's CLS token."""
    return np.asarray(shape.model.head_tokens(seq), dtype=np.float64)


def head_matmul_s(
    shape: StepShape, profile: DeviceProfile, seq: np.ndarray | None = None
) -> np.ndarray:
    """The output head (b x head tokens, h) @ (h, V), on the whole sequence (S, or CL's c)."""
    m = shape.model
    rows = shape.micro_batch_size * head_tokens(shape, seq)
    return linear_s(rows, m.hidden_size, m.vocab_size, profile)


# Memory-bound work ------------------------------------------------------------------------------


def memory_s(num_bytes: np.ndarray | float, profile: DeviceProfile) -> Seconds:
    """Bytes moved / achieved bandwidth (0 for a device whose memory is free)."""
    if profile.memory_gbps is None:
        return np.zeros_like(np.asarray(num_bytes, dtype=np.float64))
    return np.asarray(num_bytes, dtype=np.float64) / (profile.memory_gbps * 1e9)


def layer_memory_bytes(n: np.ndarray, shape: StepShape, profile: DeviceProfile) -> np.ndarray:
    """Elementwise traffic of a layer at n tokens, forward and backward (backward reads the
    input and the gradient and writes a gradient: twice the forward), on the fp32 residual
    stream: two norms (read, write h), two residual adds (read 2 h, write h), the attention
    output's re-layout (read, write h) and the activation (read, write f; SwiGLU read 2f, write
    f). Under a 16-bit compute dtype, autocast also casts each linear's input (4 + 2 bytes an
    element: Q, KV and MLP-up take the fp32 stream; out and down take 16-bit outputs) and
    re-casts each fp32 weight once per forward."""
    m, b = shape.model, shape.micro_batch_size
    h, f, kv = m.hidden_size, m.ffn_size, m.kv_heads * m.head_dim
    act = 3 * f if m.mlp_matrices == 3 else 2 * f
    per_token = (
        MASTER_BYTES * (2 * h + 3 * h + 2 * h + 3 * h + 2 * h) + element_bytes(profile) * act
    )
    forward = b * np.asarray(n, dtype=np.float64) * per_token
    casts: np.ndarray | float = 0.0
    if profile.dtype != "float32":
        cast = MASTER_BYTES + element_bytes(profile)
        inputs = b * np.asarray(n, dtype=np.float64) * 3 * h * cast  # q, kv, up: fp32 inputs
        weights = (2 * h * h + 2 * h * kv + h * f * m.mlp_matrices) * cast
        casts = inputs + weights
    return 3 * forward + casts


def fresh_s(tensor_bytes: np.ndarray | float, count: int, first_touch_gbps: float) -> Seconds:
    """Mapping the pages of `count` new tensors of `tensor_bytes` each: those of at least
    FRESH_ALLOCATION_BYTES at the first-touch rate, the rest nothing. Callers pass a profile's
    rate only where it has one (None: its allocator reuses memory, so nothing is fresh)."""
    b = np.asarray(tensor_bytes, dtype=np.float64)
    return np.where(b >= FRESH_ALLOCATION_BYTES, count * b / (first_touch_gbps * 1e9), 0.0)


def layer_fresh_s(n: np.ndarray, shape: StepShape, profile: DeviceProfile) -> Seconds:
    """Fresh pages of the tensors a layer allocates at n tokens: forward, each output (eight of
    width h: two norms, Q, attention, its projection, MLP down, two residual adds; K and V, 2 kv;
    the MLP's up projection, f (m - 1), and its activation, f); backward, the gradient of each,
    as many and as large."""
    m, rows = shape.model, shape.micro_batch_size * np.asarray(n, dtype=np.float64)
    gbps = profile.first_touch_gbps
    if gbps is None:
        return np.zeros_like(rows)
    h, f, kv = m.hidden_size, m.ffn_size, m.kv_heads * m.head_dim
    e = element_bytes(profile)
    widths = ((8, h), (1, 2 * kv), (1, f * (m.mlp_matrices - 1)), (1, f))
    total = np.zeros_like(rows)
    for count, width in widths:
        total = total + 2 * fresh_s(rows * width * e, count, gbps)
    return total


def head_fresh_s(
    shape: StepShape, profile: DeviceProfile, seq: np.ndarray | None = None
) -> Seconds:
    """Fresh pages of the head's large tensors each micro-batch: the logits, the loss's three
    fp32 tensors of their size (log-softmax, the gradient it receives, its gradient; with a
    16-bit dtype also the fp32 cast and the cast back), and the dense V x h gradients of the
    embedding and of the head's weight (fp32)."""
    m = shape.model
    logits = shape.micro_batch_size * head_tokens(shape, seq) * m.vocab_size
    gbps = profile.first_touch_gbps
    if gbps is None:
        return np.zeros_like(logits)
    e = element_bytes(profile)
    casts = 0 if e == MASTER_BYTES else 1
    weight = MASTER_BYTES * m.vocab_size * m.hidden_size
    return (
        fresh_s(logits * e, 1 + casts, gbps)
        + fresh_s(logits * MASTER_BYTES, 3 + casts, gbps)
        + fresh_s(weight, 2, gbps)
    )


def drop_bytes(r: np.ndarray, shape: StepShape) -> np.ndarray:
    """Random-LTD's token path in one dropping layer (worker/token_drop.py), fp32 residual stream:
    forward gathers r rows (read, write) and restores them into a copy of the S rows (read, write
    S, write r); backward clears the kept rows of a copy of the gradient (read, write S), gathers
    their gradient (read, write r) and writes it in place (read, write r); sampling sorts b x S
    random keys (three passes of 8 bytes). Zero where r >= S (nothing is dropped)."""
    m, b = shape.model, shape.micro_batch_size
    S, h = m.seq_len, m.hidden_size
    r = np.asarray(r, dtype=np.float64)
    rows = MASTER_BYTES * b * h * ((2 * r + 2 * S + r) + (2 * S + 2 * r + 2 * r))
    sampling = 3 * 8 * b * S
    return np.where(r < S, rows + sampling, 0.0)


def head_memory_bytes(
    shape: StepShape, profile: DeviceProfile, seq: np.ndarray | None = None
) -> np.ndarray:
    """Embedding lookup and its dense gradient (zero V x h, add b S h) and the final norm, on
    S tokens (CL: c)."""
    m, b = shape.model, shape.micro_batch_size
    S = np.asarray(m.seq_len if seq is None else seq, dtype=np.float64)
    h, V = m.hidden_size, m.vocab_size
    embedding = MASTER_BYTES * (2 * b * S * h + V * h + 2 * b * S * h)
    final_norm = 3 * MASTER_BYTES * 2 * b * S * h
    return embedding + final_norm


def loss_bytes(rows: np.ndarray | int, vocab: int, element: int) -> np.ndarray:
    """Softmax cross-entropy over `rows` x `vocab` logits, forward and backward: the cast to
    fp32 (read e, write 4), log-softmax and its gradient (read, write 4 twice), the cast back
    (read 4, write e)."""
    return np.asarray(rows, dtype=np.float64) * vocab * (element + 4 + 8 + 8 + 4 + element)


def loss_s(shape: StepShape, profile: DeviceProfile, seq: np.ndarray | None = None) -> np.ndarray:
    """The loss at the profile's cross-entropy bandwidth (its copy bandwidth if unmeasured)."""
    m = shape.model
    rows = shape.micro_batch_size * head_tokens(shape, seq)
    num_bytes = loss_bytes(rows, m.vocab_size, element_bytes(profile))
    if profile.memory_gbps is None:
        return np.zeros_like(num_bytes)
    return num_bytes / ((profile.loss_gbps or profile.memory_gbps) * 1e9)


# Launches, and how they combine with work ----------------------------------------------------


def with_launches(
    work_s: np.ndarray, kernels: np.ndarray | float, profile: DeviceProfile
) -> Seconds:
    """A group of kernels: the host issues each in `launch_overhead_us`. On a device that queues
    them (CUDA) the group takes max(work, issue time); on the CPU issue and work add."""
    issue = np.asarray(kernels, dtype=np.float64) * profile.launch_overhead_us * 1e-6
    return np.maximum(work_s, issue) if profile.async_launch else work_s + issue


def layer_kernels(dropping: bool, profile: DeviceProfile) -> int:
    casts = AUTOCAST_LAYER_KERNELS if profile.dtype != "float32" else 0
    return LAYER_KERNELS + casts + (DROP_KERNELS if dropping else 0)


def layer_with_launches(
    work: np.ndarray, n: np.ndarray, shape: StepShape, profile: DeviceProfile, *, dropping: bool
) -> Seconds:
    """A layer's work (matmuls + attention core + memory-bound work, at n tokens) with the token
    path where the layer drops, full recompute's extra forward, and the launches of its
    kernels."""
    if dropping:
        work = work + memory_s(drop_bytes(n, shape), profile)
    kernels = float(layer_kernels(dropping, profile))
    if shape.activation_recompute:
        work, kernels = work * 4 / 3, kernels * 4 / 3
    return with_launches(work, kernels, profile)


# Once per optimizer step ------------------------------------------------------------------------


def optimizer_s(shape: StepShape, profile: DeviceProfile) -> float:
    """Gradient clipping and AdamW over every parameter, once per step: the measured times per
    parameter and per tensor where the profile has them, else OPTIMIZER_BYTES_PER_PARAM bytes a
    parameter at the achieved bandwidth plus the launches of its kernels."""
    params = shape.model.num_params
    if profile.optimizer_ns_per_param is not None and profile.optimizer_us_per_tensor is not None:
        per_tensor = param_tensors(shape.model) * profile.optimizer_us_per_tensor * 1e-6
        return params * profile.optimizer_ns_per_param * 1e-9 + per_tensor
    work = float(memory_s(params * OPTIMIZER_BYTES_PER_PARAM, profile))
    return float(with_launches(np.asarray(work), optimizer_kernels(shape, profile), profile))


def param_tensors(m: ModelShape) -> int:
    """Parameter tensors: per layer two norms and five linears (with biases: twice as many,
    LayerNorm has two each), plus embeddings, the final norm and an untied head."""
    norm = 2 if m.norm == "layernorm" else 1
    per_layer = 2 * norm + 5 * (2 if m.bias else 1)
    extra = 1 + (1 if m.position == "learned" else 0) + norm + (0 if m.tie_embeddings else 1)
    return m.num_layers * per_layer + extra


def optimizer_kernels(shape: StepShape, profile: DeviceProfile) -> float:
    """Kernels of clipping and AdamW: per tensor on the CPU, per chunk of tensors (foreach) on
    a GPU."""
    tensors = param_tensors(shape.model)
    if profile.async_launch:
        tensors = math.ceil(tensors / FOREACH_TENSORS_PER_KERNEL)
    return OPTIMIZER_KERNELS_BASE + OPTIMIZER_KERNELS_PER_TENSOR * tensors


def allreduce_s(shape: StepShape, profile: DeviceProfile, backward_s: float) -> float:
    """The data-parallel gradient all-reduce that the backward pass does not hide. A ring moves
    2 (p - 1) / p of the fp32 gradients over each GPU's link (NVLink within a node, the NIC
    across nodes); it overlaps the last micro-batch's backward pass except for the last bucket
    (DDP, 25 MiB). Zero on one device or where the profile has no interconnect figure."""
    p = shape.num_gpus
    link = profile.interconnect_gbps if p <= profile.gpus_per_node else profile.internode_gbps
    if p <= 1 or link is None:
        return 0.0
    ring = 2 * (p - 1) / p / (link * 1e9)
    total = shape.model.num_params * MASTER_BYTES * ring
    last_bucket = min(DDP_BUCKET_BYTES, shape.model.num_params * MASTER_BYTES) * ring
    return max(total - backward_s, last_bucket)
