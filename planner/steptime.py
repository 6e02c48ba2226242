"""The step-time model: T(r), the time of one optimizer step whose dropping layers keep r tokens.

FLOPs are not time. A step is a sum of named parts, one function each, so that a wrong
prediction can be traced to one line (the style of Calculon's and llm-analysis's breakdowns):

    T(r) = accumulation x micro_batch(r) + optimizer + exposed all-reduce
    micro_batch(r) = sum over layers of layer(n)  (n = r in dropping layers, S elsewhere)
                     + embedding, final norm, head and loss (always at S)
    layer(n)       = matmuls(n) + attention core(n) + memory-bound work(n) [+ token drop(r)],
                     and the host's launch overhead for its kernels

Rates and bandwidths come from a `DeviceProfile` (planner.device): measured by `ltd profile`, or
built in for a GPU preset. Kernels are issued by the host: on a device that queues them (CUDA) a
group of kernels costs max(its work, its launch overhead), which is what makes a small model on a
big GPU slower with dropping; on the CPU the two add. With an ideal device (flat rate, free
memory, no launches, no communication) T(r)/T(S) is exactly the FLOPs ratio.

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


def layer_s(n: np.ndarray, shape: StepShape, profile: DeviceProfile, *, dropping: bool) -> Seconds:
    """One layer of one micro-batch at n tokens: its matmuls, attention core and memory-bound
    work (with the token path where it drops), and its kernels' launches. Full recompute runs
    the forward once more (a third more work and kernels)."""
    work = layer_work_s(n, shape, profile)
    return layer_with_launches(work, n, shape, profile, dropping=dropping)


def layer_work_s(n: np.ndarray, shape: StepShape, profile: DeviceProfile) -> Seconds:
    """A layer's work at n tokens, without the token path and the launches."""
    return (
        layer_matmul_s(n, shape, profile)
        + attention_core_s(n, shape, profile)
        + memory_s(layer_memory_bytes(n, shape, profile), profile)
    )


def layer_with_launches(
    work: np.ndarray, n: np.ndarray, shape: StepShape, profile: DeviceProfile, *, dropping: bool
) -> Seconds:
    """`layer_work_s`'s work with the token path where the layer drops, full recompute's extra
    forward, and the launches of its kernels."""
    if dropping:
        work = work + memory_s(drop_bytes(n, shape), profile)
    kernels = float(layer_kernels(dropping, profile))
    if shape.activation_recompute:
        work, kernels = work * 4 / 3, kernels * 4 / 3
    return with_launches(work, kernels, profile)


def head_s(shape: StepShape, profile: DeviceProfile, seq: np.ndarray | None = None) -> Seconds:
    """Embedding, final norm, head and loss of one micro-batch, on the whole sequence."""
    traffic = memory_s(head_memory_bytes(shape, profile, seq), profile)
    work = head_matmul_s(shape, profile, seq) + traffic + loss_s(shape, profile, seq)
    return with_launches(np.asarray(work), HEAD_KERNELS, profile)


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


class StepTimes:
    """T(c, min(r, c)) and its parts for one step shape on one device.

    Every part that depends on a token count is evaluated once, over every distinct count the
    caller will ask about (`lengths`), in one vectorised pass; steps and breakdowns then look
    them up. (A plan needs a hundred segments' step times and two breakdowns: one pass over a
    few hundred lengths, instead of a pass per part per length.)
    """

    def __init__(self, shape: StepShape, profile: DeviceProfile, lengths: np.ndarray) -> None:
        S = shape.model.seq_len
        self.shape, self.profile = shape, profile
        self.n = n = np.unique(np.append(np.asarray(lengths, dtype=np.int64), S))
        # The parts of a layer at each n, added in `layer_work_s`'s order.
        self.matmul = layer_matmul_s(n, shape, profile)
        self.attention = attention_core_s(n, shape, profile)
        self.memory_bytes = layer_memory_bytes(n, shape, profile)
        work = self.matmul + self.attention + memory_s(self.memory_bytes, profile)
        self.layer_full = layer_with_launches(work, n, shape, profile, dropping=False)
        self.layer_dropping = layer_with_launches(work, n, shape, profile, dropping=True)
        # The head's, at each n as the sequence (`head_s`'s order).
        self.head_matmul = np.broadcast_to(head_matmul_s(shape, profile, n), n.shape)
        self.head_memory_bytes = head_memory_bytes(shape, profile, n)
        self.loss = np.broadcast_to(loss_s(shape, profile, n), n.shape)
        head_work = self.head_matmul + memory_s(self.head_memory_bytes, profile) + self.loss
        self.head = with_launches(head_work, HEAD_KERNELS, profile)
        self.optimizer = optimizer_s(shape, profile)
        full = self.micro_batch_s(np.asarray([S]), np.asarray([S]))
        self.exposed = 0.0
        if shape.num_gpus > 1:
            self.exposed = allreduce_s(shape, profile, float(full[0]) * 2 / 3)

    def at(self, n: np.ndarray) -> np.ndarray:
        """Index of each token count in the table."""
        return np.searchsorted(self.n, n)

    def micro_batch_s(self, r: np.ndarray, c: np.ndarray) -> Seconds:
        """Forward and backward of one micro-batch: full layers at c, dropping layers at r where
        r < c (else they run whole), the head at c."""
        c = np.asarray(c, dtype=np.int64)
        r = np.minimum(np.asarray(r, dtype=np.int64), c)
        at_c = self.layer_full[self.at(c)]
        full = self.shape.num_full_layers * at_c
        ltd = self.shape.num_ltd_layers * np.where(r < c, self.layer_dropping[self.at(r)], at_c)
        return full + ltd + self.head[self.at(c)]

    def step_time_s(self, r: np.ndarray, c: np.ndarray | None = None) -> Seconds:
        """T: one optimizer step, seconds, for each (r, c) (c: S by default)."""
        r = np.atleast_1d(np.asarray(r))
        c = np.full_like(r, self.shape.model.seq_len) if c is None else c
        micro = self.micro_batch_s(r, c)
        return self.shape.accumulation * micro + self.optimizer + self.exposed

    def breakdown_s(self, r: int) -> dict[str, float]:
        """The named parts of T(r) at the full sequence, seconds (launch overhead shown where
        it exceeds the work)."""
        shape, profile = self.shape, self.profile
        S = shape.model.seq_len
        rr = min(r, S)
        n_ltd = rr if rr < S else S
        k, L_ltd, L_full = shape.accumulation, shape.num_ltd_layers, shape.num_full_layers
        i_s, i_ltd = self.at(np.asarray(S)), self.at(np.asarray(n_ltd))

        def layers(values: np.ndarray) -> float:
            return k * (L_full * float(values[i_s]) + L_ltd * float(values[i_ltd]))

        memory_bytes = (
            L_full * self.memory_bytes[i_s]
            + L_ltd * self.memory_bytes[i_ltd]
            + self.head_memory_bytes[i_s]
        )
        parts: dict[str, float] = {
            "matmuls": layers(self.matmul) + k * float(self.head_matmul[i_s]),
            "attention": layers(self.attention),
            "memory_bound": k * float(memory_s(memory_bytes, profile) + float(self.loss[i_s])),
            "token_drop": k * L_ltd * float(memory_s(drop_bytes(np.asarray(rr), shape), profile)),
            "optimizer": self.optimizer,
        }
        total = float(self.step_time_s(np.asarray([rr]))[0])
        full = float(self.micro_batch_s(np.asarray([S]), np.asarray([S]))[0])
        parts["allreduce_exposed"] = allreduce_s(shape, profile, full * 2 / 3)
        parts["launch_overhead"] = max(0.0, total - sum(parts.values()))
        return parts


def step_time_s(
    r: np.ndarray | int,
    shape: StepShape,
    profile: DeviceProfile,
    seq: np.ndarray | None = None,
) -> Seconds:
    """T(r): one optimizer step, seconds, for each reserved length in `r` (with curriculum
    learning, `seq` holds each step's sequence length c: T(c, min(r, c)))."""
    r = np.atleast_1d(np.asarray(r, dtype=np.int64))
    c = np.full_like(r, shape.model.seq_len) if seq is None else np.asarray(seq, dtype=np.int64)
    table = StepTimes(shape, profile, np.concatenate((np.minimum(r, c), c)))
    return table.step_time_s(r, c)


def breakdown_s(r: int, shape: StepShape, profile: DeviceProfile) -> dict[str, float]:
    """The named parts of T(r), seconds (`StepTimes.breakdown_s`)."""
    return StepTimes(shape, profile, np.asarray([min(r, shape.model.seq_len)])).breakdown_s(r)
