"""FLOPs and memory of training steps, one pure function per formula.

Conventions (stated in every plan):
- A multiply-add is 2 FLOPs. Causal attention counts the full n x n score and value products, the
  convention of PaLM (Chowdhery et al. 2022, App. B) and the Megatron paper (Narayanan et al. 2021).
- Training is 3x the forward pass (backward = 2x forward). Full activation recompute runs the
  layers' forward once more: reported as hardware FLOPs, apart from model FLOPs.
- Embedding lookups, norms, softmax and residual adds are not counted (well under 1%).
- A random-LTD step runs the full layers at S, the dropping layers at r(t), the head at S (with
  curriculum learning: at c, min(r, c) and c). The sum over steps uses the moments of the lengths
  (sum(r), sum(r^2)); an average length would get the n^2 term wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.models import ModelShape

TRAIN_PASSES = 3  # forward + backward (2x forward)


def projection_flops(n_tokens: np.ndarray | int, m: ModelShape) -> np.ndarray | int:
    """Q, K, V, O projections of one layer, forward: 2 * n * h * (2h + 2h * g / a)."""
    kv_width = m.kv_heads * m.head_dim  # h * g / a
    return 2 * n_tokens * m.hidden_size * (2 * m.hidden_size + 2 * kv_width)


def mlp_flops(n_tokens: np.ndarray | int, m: ModelShape) -> np.ndarray | int:
    """The MLP of one layer, forward: 2 * n * h * f * m (m = 2 for GELU, 3 for SwiGLU)."""
    return 2 * n_tokens * m.hidden_size * m.ffn_size * m.mlp_matrices


def attention_flops(n_tokens: np.ndarray | int, m: ModelShape) -> np.ndarray | int:
    """Scores Q K^T and the weighted sum of V, forward: 2 * (2 * n * n * h), full n x n."""
    return 4 * n_tokens * n_tokens * m.hidden_size


def layer_flops(n_tokens: np.ndarray | int, m: ModelShape) -> np.ndarray | int:
    """One transformer layer's forward FLOPs for one sequence of `n_tokens` tokens."""
    return projection_flops(n_tokens, m) + mlp_flops(n_tokens, m) + attention_flops(n_tokens, m)


def head_flops(m: ModelShape, seq_len: np.ndarray | int | None = None) -> np.ndarray | int:
    """The output head, forward, on the whole sequence (S, or curriculum learning's c): 2 * n *
    h * V for n head tokens (vit: the CLS token only, `ModelShape.head_tokens`)."""
    return 2 * m.head_tokens(seq_len) * m.hidden_size * m.vocab_size


@dataclass(frozen=True)
class RunFlops:
    """FLOPs of a whole run, by component (training, i.e. already x3), and with recompute."""

    projections: float
    mlp: float
    attention: float
    head: float
    recompute: float  # the extra forward of the layers under full activation recompute

    @property
    def model(self) -> float:
        return self.projections + self.mlp + self.attention + self.head

    @property
    def hardware(self) -> float:
        return self.model + self.recompute


@dataclass(frozen=True)
class LengthMoments:
    """Sums over a run's steps, weighted by each step's rows (sequences), of the lengths the
    layers saw: c (full layers and the head) and k = min(r, c) (dropping layers), and their
    squares. Without curriculum learning c = S and rows = G."""

    rows_c: int
    rows_c2: int
    rows_k: int
    rows_k2: int
    rows_head: int  # rows x head tokens (c; 1 for vit's CLS head)


def run_flops(
    m: ModelShape, moments: LengthMoments, *, num_ltd_layers: int, activation_recompute: bool
) -> RunFlops:
    """Training FLOPs of a run: full layers at c, dropping layers at min(r, c), the head at c.

    A layer's forward is linear plus quadratic in its token count, so every total is exact from
    the moments: sum_t rows_t f(n_t) = c1 * sum(rows n) + c2 * sum(rows n^2). An average length
    would get the n^2 term wrong.
    """
    full = m.num_layers - num_ltd_layers
    c1_proj, c1_mlp, c2_attn = projection_flops(1, m), mlp_flops(1, m), attention_flops(1, m)
    proj = (full * moments.rows_c + num_ltd_layers * moments.rows_k) * c1_proj
    mlp = (full * moments.rows_c + num_ltd_layers * moments.rows_k) * c1_mlp
    attn = (full * moments.rows_c2 + num_ltd_layers * moments.rows_k2) * c2_attn
    head = moments.rows_head * head_flops(m, 1)
    return RunFlops(
        projections=float(TRAIN_PASSES * proj),
        mlp=float(TRAIN_PASSES * mlp),
        attention=float(TRAIN_PASSES * attn),
        head=float(TRAIN_PASSES * head),
        recompute=float(proj + mlp + attn) if activation_recompute else 0.0,
    )


def step_flops(
    m: ModelShape,
    *,
    reserved: np.ndarray | int,
    seqlen: np.ndarray | int | None = None,
    rows: np.ndarray | int = 1,
    num_ltd_layers: int,
) -> np.ndarray:
    """Model FLOPs (training) of a step of `rows` sequences of `seqlen` tokens (S by default)
    whose dropping layers keep `reserved`: full layers at c, dropping layers at min(r, c), the
    head at c."""
    c = m.seq_len if seqlen is None else seqlen
    k = np.minimum(reserved, c)
    full = (m.num_layers - num_ltd_layers) * layer_flops(c, m)
    ltd = num_ltd_layers * layer_flops(k, m)
    return np.asarray(TRAIN_PASSES * rows * (full + ltd + head_flops(m, c)))


# Memory. Mixed-precision Adam (Rajbhandari et al. 2020, ZeRO): bf16 weights and gradients
# (2 + 2 bytes a parameter) and fp32 master weights, momentum and variance (4 + 4 + 4).
WEIGHT_BYTES, GRAD_BYTES, OPTIMIZER_BYTES = 2, 2, 12


def layer_activation_bytes(
    n_tokens: int, m: ModelShape, micro_batch_size: int, *, flash_attention: bool = False
) -> int:
    """Activations one layer keeps for backward, bf16, no recompute (Korthikanti et al. 2022,
    eq. 2): s * b * h * (34 + 5 * a * s / h) bytes. The 5 a s^2 b term is the attention scores,
    softmax and dropout mask; a fused (flash) attention kernel never stores them: 34 s b h."""
    s, b, h, a = n_tokens, micro_batch_size, m.hidden_size, m.num_heads
    scores = 0 if flash_attention else 5 * a * s / h
    return int(s * b * h * (34 + scores))


def activation_bytes(
    r: int,
    m: ModelShape,
    *,
    num_ltd_layers: int,
    micro_batch_size: int,
    activation_recompute: bool,
    flash_attention: bool = False,
) -> int:
    """Activations of one micro-batch: full layers at S, dropping layers at r.

    With full recompute only each layer's input (2 * s * b * h bytes) is kept, plus one layer's
    activations while it is recomputed.
    """
    S, b, h = m.seq_len, micro_batch_size, m.hidden_size
    full_layers = m.num_layers - num_ltd_layers
    if activation_recompute:
        kept = full_layers * 2 * S * b * h + num_ltd_layers * 2 * r * b * h
        return kept + layer_activation_bytes(S, m, b, flash_attention=flash_attention)
    per_layer = {
        n: layer_activation_bytes(n, m, b, flash_attention=flash_attention) for n in (S, r)
    }
    return full_layers * per_layer[S] + num_ltd_layers * per_layer[r]
