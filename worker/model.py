"""The models a validation job trains, built from a planner `ModelShape`.

One block for both: pre-LN, `F.scaled_dot_product_attention`, grouped key/value heads, learned or
rotary positions, GELU or SwiGLU, LayerNorm or RMSNorm, biases or none. `GPT` stacks causal blocks
under a language-model head; `Encoder` (BERT-style, also used for ViT shapes) stacks bidirectional
blocks that honour a padding mask, under a masked-LM head (ViT: a classifier on the first token).

Blocks in the shape's random-LTD layer ids are wrapped in `RandomLTDLayer` and given the reserved
length on each forward; by the planner's default the first and the last layer never drop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)
from torch import Tensor, nn

from planner.models import ModelShape
from planner.schedule import default_ltd_layer_ids
from planner.sizing import padded_vocab_size
from worker.token_drop import RandomLTDLayer


class RMSNorm(nn.Module):
    """x / rms(x) * weight (Zhang & Sennrich 2019); written out so torch>=2.3 suffices."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def make_norm(m: ModelShape) -> nn.Module:
    if m.norm == "rmsnorm":
        return RMSNorm(m.hidden_size)
    return nn.LayerNorm(m.hidden_size, bias=m.bias)


def rotary(x_BNSD: Tensor, position_ids_BS: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate each pair (x[i], x[i + D/2]) by angle pos * base^(-2i/D) (Su et al. 2021, the
    GPT-NeoX / Llama half-split form). Positions are per sample: after a token drop they are the
    kept tokens' original positions."""
    D = x_BNSD.shape[-1]
    inv_freq_D2 = base ** (-torch.arange(0, D, 2, device=x_BNSD.device, dtype=torch.float32) / D)
    angles_BSD2 = position_ids_BS.float()[..., None] * inv_freq_D2
    cos, sin = angles_BSD2.cos()[:, None], angles_BSD2.sin()[:, None]  # (B, 1, S, D/2)
    x1, x2 = x_BNSD.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).type_as(x_BNSD)


class Attention(nn.Module):
    def __init__(self, m: ModelShape, causal: bool) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = m.num_heads, m.kv_heads, m.head_dim
        self.causal, self.rotary = causal, m.position == "rotary"
        kv_width = self.num_kv_heads * self.head_dim
        self.q = nn.Linear(m.hidden_size, m.hidden_size, bias=m.bias)
        self.kv = nn.Linear(m.hidden_size, 2 * kv_width, bias=m.bias)
        self.out = nn.Linear(m.hidden_size, m.hidden_size, bias=m.bias)

    def forward(
        self, x_BSH: Tensor, position_ids_BS: Tensor | None, padding_mask_BS: Tensor | None
    ) -> Tensor:
        B, S, H = x_BSH.shape
        q_BNSD = self.q(x_BSH).view(B, S, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x_BSH).view(B, S, 2, self.num_kv_heads, self.head_dim).unbind(2)
        k_BGSD, v_BGSD = k.transpose(1, 2), v.transpose(1, 2)
        if self.rotary:
            if position_ids_BS is None:
                raise ValueError("rotary attention needs position ids")
            q_BNSD, k_BGSD = rotary(q_BNSD, position_ids_BS), rotary(k_BGSD, position_ids_BS)
        if self.num_kv_heads != self.num_heads:  # grouped-query attention: share each kv head
            repeat = self.num_heads // self.num_kv_heads
            k_BGSD = k_BGSD.repeat_interleave(repeat, dim=1)
            v_BGSD = v_BGSD.repeat_interleave(repeat, dim=1)
        mask = attention_mask(padding_mask_BS, S, self.causal, x_BSH.device)
        y_BNSD = F.scaled_dot_product_attention(
            q_BNSD, k_BGSD, v_BGSD, attn_mask=mask, is_causal=self.causal and mask is None
        )
        return self.out(y_BNSD.transpose(1, 2).reshape(B, S, H))


def attention_mask(
    padding_mask_BS: Tensor | None, seq_len: int, causal: bool, device: torch.device
) -> Tensor | None:
    """Boolean (B, 1, S, S) mask, True where a query may attend to a key: real keys only (and
    earlier ones when causal). Every query also sees itself, so a padding query whose row would
    be empty gets no NaN; real tokens never see padding."""
    if padding_mask_BS is None:
        return None
    allowed_B1SS = padding_mask_BS[:, None, None, :].bool().expand(-1, 1, seq_len, -1)
    eye_SS = torch.eye(seq_len, dtype=torch.bool, device=device)
    if causal:
        allowed_B1SS = allowed_B1SS & torch.ones_like(eye_SS).tril()
    return allowed_B1SS | eye_SS


class MLP(nn.Module):
    def __init__(self, m: ModelShape) -> None:
        super().__init__()
        self.swiglu = m.activation == "swiglu"
        up_width = 2 * m.ffn_size if self.swiglu else m.ffn_size  # SwiGLU: gate and up at once
        self.up = nn.Linear(m.hidden_size, up_width, bias=m.bias)
        self.down = nn.Linear(m.ffn_size, m.hidden_size, bias=m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.swiglu:
            gate, up = self.up(x).chunk(2, dim=-1)
            return self.down(F.silu(gate) * up)
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-LN transformer layer: x + attn(norm(x)), then x + mlp(norm(x)). [B, S, H] in and out."""

    def __init__(self, m: ModelShape, causal: bool) -> None:
        super().__init__()
        self.norm1, self.attn = make_norm(m), Attention(m, causal)
        self.norm2, self.mlp = make_norm(m), MLP(m)

    def forward(
        self,
        x_BSH: Tensor,
        *,
        position_ids: Tensor | None = None,
        padding_mask: Tensor | None = None,
    ) -> Tensor:
        x_BSH = x_BSH + self.attn(self.norm1(x_BSH), position_ids, padding_mask)
        return x_BSH + self.mlp(self.norm2(x_BSH))


class Transformer(nn.Module):
    """Embeddings, blocks (the dropping ones wrapped) and a final norm; `GPT` and `Encoder`
    differ in causality and head."""

    causal = True

    def __init__(self, m: ModelShape, ltd_layer_ids: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.shape = m
        self.ltd_layer_ids = tuple(
            default_ltd_layer_ids(m.num_layers) if ltd_layer_ids is None else ltd_layer_ids
        )
        self.vocab_width = padded_vocab_size(m.vocab_size)
        self.tok_emb = nn.Embedding(self.vocab_width, m.hidden_size)
        self.pos_emb = nn.Embedding(m.seq_len, m.hidden_size) if m.position == "learned" else None
        self.blocks = nn.ModuleList(
            RandomLTDLayer(Block(m, self.causal))
            if i in self.ltd_layer_ids
            else Block(m, self.causal)
            for i in range(m.num_layers)
        )
        self.norm_f = make_norm(m)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # GPT-2's init: N(0, 0.02) weights, zero biases.
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def hidden_states(
        self,
        tokens_BS: Tensor,
        reserved_length: int | None = None,
        padding_mask_BS: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        B, S = tokens_BS.shape
        position_ids_BS = torch.arange(S, device=tokens_BS.device).expand(B, S)
        x_BSH = self.tok_emb(tokens_BS)
        if self.pos_emb is not None:
            x_BSH = x_BSH + self.pos_emb(position_ids_BS)
        for block in self.blocks:
            if isinstance(block, RandomLTDLayer):
                x_BSH = block(
                    x_BSH,
                    reserved_length=reserved_length,
                    position_ids=position_ids_BS,
                    padding_mask=padding_mask_BS,
                    generator=generator,
                )
            else:
                x_BSH = block(x_BSH, position_ids=position_ids_BS, padding_mask=padding_mask_BS)
        return self.norm_f(x_BSH)


class GPT(Transformer):
    """Causal decoder with a language-model head (tied to the embedding when the shape says so)."""

    causal = True

    def __init__(self, m: ModelShape, ltd_layer_ids: tuple[int, ...] | None = None) -> None:
        super().__init__(m, ltd_layer_ids)
        self.lm_head = nn.Linear(m.hidden_size, self.vocab_width, bias=False)
        if m.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def forward(
        self,
        tokens_BS: Tensor,
        reserved_length: int | None = None,
        padding_mask_BS: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Logits (B, S, V') of the next token at every position (V' = padded vocabulary)."""
        return self.lm_head(
            self.hidden_states(tokens_BS, reserved_length, padding_mask_BS, generator)
        )


class Encoder(Transformer):
    """BERT-style bidirectional encoder with padding masks and a masked-LM head; for ViT shapes
    the head classifies the first (CLS) token only, as the planner counts it."""

    causal = False

    def __init__(self, m: ModelShape, ltd_layer_ids: tuple[int, ...] | None = None) -> None:
        super().__init__(m, ltd_layer_ids)
        self.head = nn.Linear(m.hidden_size, self.vocab_width)
        self.cls_only = m.cls_head

    def forward(
        self,
        tokens_BS: Tensor,
        reserved_length: int | None = None,
        padding_mask_BS: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Logits (B, S, V') per token, or (B, 1, V') for the CLS token of a ViT shape."""
        h_BSH = self.hidden_states(tokens_BS, reserved_length, padding_mask_BS, generator)
        return self.head(h_BSH[:, :1] if self.cls_only else h_BSH)


def build_model(
    m: ModelShape, *, ltd_layer_ids: tuple[int, ...] | None = None, **overrides: object
) -> Transformer:
    """A GPT for `arch == 'gpt'`, else an Encoder, from a shape with optional field overrides
    (num_layers, seq_len, hidden_size, ...). Layer ids default to the planner's: all but the
    first and the last."""
    shape = m.model_copy(update=overrides) if overrides else m
    ModelShape.model_validate(shape.model_dump())  # overrides must still make a valid shape
    cls = GPT if shape.arch == "gpt" else Encoder
    return cls(shape, ltd_layer_ids)


def num_params(model: nn.Module) -> int:
    """Distinct trainable parameters (a tied head counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "GPT",
    "Block",
    "Encoder",
    "Transformer",
    "build_model",
    "num_params",
    "rotary",
]
