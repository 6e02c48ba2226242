"""A model's shape and its parameter count.

A `ModelShape` holds only what the numbers need: layer count, widths, heads, sequence length and
the few architecture switches that change parameter and FLOP counts. Parameter counts follow each
architecture's reference implementation (GPT-2/GPT-3, BERT, ViT, Llama) and are tested against the
published counts for every preset (within 2%). A shape comes from a request as written, from a
preset (`planner.presets`) or from a Hugging Face config (`planner.hf_config`).
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    model_validator,
)

Arch = Literal["gpt", "bert", "vit"]
Activation = Literal["gelu", "swiglu"]

# Hard ceilings that no real model reaches; they turn typos (a hidden size of 10^9) into errors.
MAX_LAYERS = 1_000
MAX_HIDDEN = 1_000_000
MAX_SEQ_LEN = 10_000_000
MAX_VOCAB = 10_000_000


NAME_CHARS = 200


def kept_to(limit: int) -> AfterValidator:
    """Free text kept to `limit` characters rather than refused (a worker's report, a display
    name that plans stored by older versions carry)."""
    return AfterValidator(lambda text: text if text is None else text[:limit])


class ModelShape(BaseModel):
    """The shape of a transformer, as far as LayerTokens, FLOPs and memory are concerned."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: Annotated[str | None, kept_to(NAME_CHARS)] = Field(
        None, description=f"Preset or model name, for display only (kept to {NAME_CHARS} chars)."
    )
    arch: Arch = Field("gpt", description="gpt (causal decoder), bert (encoder), vit (encoder).")
    num_layers: int = Field(..., ge=1, le=MAX_LAYERS, description="Transformer layers L.")
    hidden_size: int = Field(..., ge=1, le=MAX_HIDDEN, description="Hidden size h.")
    num_heads: int = Field(..., ge=1, le=MAX_HIDDEN, description="Attention (query) heads a.")
    num_kv_heads: int | None = Field(
        None,
        ge=1,
        le=MAX_HIDDEN,
        description="Key/value heads g (grouped-query attention); default a.",
    )
    ffn_hidden_size: int | None = Field(
        None, ge=1, le=MAX_HIDDEN * 8, description="FFN inner size f; default 4h."
    )
    activation: Activation = Field("gelu", description="gelu (2 MLP matrices) or swiglu (3).")
    vocab_size: int = Field(
        ..., ge=1, le=MAX_VOCAB, description="Vocabulary size V (vit: number of classes)."
    )
    seq_len: int = Field(..., ge=1, le=MAX_SEQ_LEN, description="Sequence length S in tokens.")
    position: Literal["learned", "rotary"] = Field("learned", description="Position encoding.")
    tie_embeddings: bool = Field(True, description="Output head shares the token embedding.")
    bias: bool = Field(True, description="Linear layers carry biases.")
    norm: Literal["layernorm", "rmsnorm"] = Field("layernorm", description="Normalisation.")
    patch_size: int = Field(16, ge=1, le=10_000, description="vit only: patch side in pixels.")
    num_channels: int = Field(3, ge=1, le=10_000, description="vit only: image channels.")
    published_params: int | None = Field(
        None,
        ge=0,
        le=10**15,
        description="Parameter count the model's authors published, for reference.",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_num_params(cls, data: Any) -> Any:
        """`num_params` is computed (and serialised with the shape); a shape read back from a
        plan document carries it, and it is recomputed rather than trusted."""
        if isinstance(data, dict) and "num_params" in data:
            data = {k: v for k, v in data.items() if k != "num_params"}
        return data

    @model_validator(mode="after")
    def _check_heads(self) -> ModelShape:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size: {self.hidden_size} must be a multiple of "
                f"num_heads ({self.num_heads})"
            )
        if self.num_heads % self.kv_heads:
            raise ValueError(
                f"num_heads: {self.num_heads} must be a multiple of num_kv_heads ({self.kv_heads})"
            )
        return self

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def ffn_size(self) -> int:
        return self.ffn_hidden_size or 4 * self.hidden_size

    @property
    def mlp_matrices(self) -> int:
        """m in DESIGN.md: 2 for GELU (up, down), 3 for SwiGLU (gate, up, down)."""
        return 3 if self.activation == "swiglu" else 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def cls_head(self) -> bool:
        """The head classifies the first (CLS) token only (vit), rather than every position."""
        return self.arch == "vit"

    def head_tokens(self, seq_len: np.ndarray | int | None = None) -> np.ndarray | int:
        """Tokens the output head runs on per sequence of `seq_len` tokens (S by default, or
        curriculum learning's c): every position, but only the CLS token for vit. The one place
        this rule lives."""
        if self.cls_head:
            return 1
        return self.seq_len if seq_len is None else seq_len

    @computed_field(description="Trainable parameters, counted from the shape.")  # type: ignore[prop-decorator]
    @cached_property
    def num_params(self) -> int:
        return count_params(self)


def _layer_params(m: ModelShape) -> int:
    h, f, kv = m.hidden_size, m.ffn_size, m.kv_heads * m.head_dim
    attention = h * h + 2 * h * kv + h * h  # Q, K, V, O
    mlp = m.mlp_matrices * h * f
    biases = (h + 2 * kv + h) + ((m.mlp_matrices - 1) * f + h) if m.bias else 0
    norms = 2 * (2 * h if m.norm == "layernorm" else h)  # two norms per layer
    return attention + mlp + biases + norms


def count_params(m: ModelShape) -> int:
    """Trainable parameters, as the reference implementation of each architecture has them."""
    h = m.hidden_size
    final_norm = 2 * h if m.norm == "layernorm" else h
    layers = m.num_layers * _layer_params(m)
    positions = m.seq_len * h if m.position == "learned" else 0
    if m.arch == "vit":
        # Patch projection (conv as a matrix + bias), CLS token, positions, final LN, classifier.
        patch = m.num_channels * m.patch_size**2 * h + h
        return patch + h + positions + layers + final_norm + h * m.vocab_size + m.vocab_size
    embeddings = m.vocab_size * h + positions
    if m.arch == "bert":
        # Token-type embeddings (2 types) and the embedding LayerNorm; the pooler (h x h + h).
        return embeddings + 2 * h + 2 * h + layers + h * h + h
    head = 0 if m.tie_embeddings else m.vocab_size * h
    return embeddings + layers + final_norm + head
