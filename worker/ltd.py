"""Random-LTD (random and layerwise token dropping, Yao et al. 2022) as tensor functions.

A dropping layer sees only `r` of the `S` tokens of each sequence: an independent uniform random
subset per sample, kept in sequence order. The functional core is three pure functions

    idx_Br  = sample_kept_indices(B, S, r)         # (B, r) sorted positions
    kept    = gather_tokens(x, idx_Br, seq_dim)    # the subsequence the layer runs on
    out     = scatter_tokens(x, layer(kept), idx_Br, seq_dim)

and `RandomLTDLayer` wraps a layer with them. Dropped positions leave the layer unchanged (they
skip it, as through a residual connection), and autograd follows `torch.gather` / `torch.scatter`:
the gradient of a dropped position flows straight through, that of a kept one through the layer.

Beyond DeepSpeed's kernels: padding masks are gathered per sample (DeepSpeed slices the top-left
r x r block of the mask), rotary position ids are gathered with their tokens (DeepSpeed passes them
unchanged, so a kept token would be rotated as if it sat at its new index), any sequence length
(DeepSpeed's CUDA kernels assume S <= 2048), and both `[B, S, H]` and `[S, B, H]` layouts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def sample_kept_indices(batch: int, seq_len: int, reserved_length: int,
                        generator: torch.Generator | None = None,
                        device: torch.device | str | None = None) -> Tensor:
    """Positions each sample keeps: an independent uniform r-subset of range(S) per sample,
    sorted ascending, as an int64 tensor of shape (B, r).

    The subset is the r smallest of S i.i.d. uniform scores, which is uniform over all subsets.
    Scores are drawn on the generator's device (the global RNG's when None), so a seed reproduces
    the same drops on any device.
    """
    if not 0 < reserved_length <= seq_len:
        raise ValueError(f"reserved_length ({reserved_length}) must be in 1..seq_len ({seq_len})")
    rng_device = generator.device if generator is not None else device
    scores_BS = torch.rand(batch, seq_len, generator=generator, device=rng_device)
    idx_Br = scores_BS.topk(reserved_length, dim=1, largest=False, sorted=False).indices
    return idx_Br.sort(dim=1).values.to(device if device is not None else rng_device)


def _index_like(idx_Br: Tensor, like: Tensor, seq_dim: int) -> Tensor:
    """`idx_Br` broadcast to the shape of the gathered tensor: (B, r, *rest) or (r, B, *rest)."""
    idx = idx_Br if seq_dim == 1 else idx_Br.t()
    rest = like.shape[2:]
    return idx.reshape(*idx.shape, *(1,) * len(rest)).expand(*idx.shape, *rest)


def _check_seq_dim(seq_dim: int) -> None:
    if seq_dim not in (0, 1):
        raise ValueError(f"seq_dim must be 1 ([B, S, ...]) or 0 ([S, B, ...]), got {seq_dim}")


def gather_tokens(x: Tensor, idx_Br: Tensor, seq_dim: int = 1) -> Tensor:
    """The kept tokens of `x`: [B, S, ...] -> [B, r, ...] (seq_dim 1) or [S, B, ...] ->
    [r, B, ...] (seq_dim 0). Works for activations, padding masks and position ids alike."""
    _check_seq_dim(seq_dim)
    return torch.gather(x, seq_dim, _index_like(idx_Br, x, seq_dim))


def scatter_tokens(full: Tensor, kept_out: Tensor, idx_Br: Tensor, seq_dim: int = 1) -> Tensor:
    """`full` with the kept positions replaced by `kept_out` (out of place, differentiable in
    both): the dropped positions pass through unchanged."""
    _check_seq_dim(seq_dim)
    return torch.scatter(full, seq_dim, _index_like(idx_Br, kept_out, seq_dim), kept_out)


class RandomLTDLayer(nn.Module):
    """A layer that, in training and when `reserved_length < S`, runs on a random subset of the
    tokens of each sample and passes the others through.

    The wrapped layer is called as `layer(x, position_ids=..., padding_mask=...)`, the optional
    per-token tensors gathered alongside `x` (each [B, S], whatever the layout of `x`). In eval
    mode, or with `reserved_length` None or >= S, this is exactly `layer`.
    """

    def __init__(self, layer: nn.Module, *, seq_dim: int = 1) -> None:
        super().__init__()
        _check_seq_dim(seq_dim)
        self.layer = layer
        self.seq_dim = seq_dim

    def forward(self, x: Tensor, *, reserved_length: int | None = None,
                position_ids: Tensor | None = None, padding_mask: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        seq_len = x.shape[self.seq_dim]
        if not self.training or reserved_length is None or reserved_length >= seq_len:
            return self.layer(x, position_ids=position_ids, padding_mask=padding_mask)
        batch = x.shape[1 - self.seq_dim]
        idx_Br = sample_kept_indices(batch, seq_len, reserved_length, generator, x.device)
        kept_x = gather_tokens(x, idx_Br, self.seq_dim)
        # Per-token side inputs are [B, S]: gather them along the sequence dimension 1.
        kept_pos = None if position_ids is None else gather_tokens(
            position_ids.expand(batch, seq_len), idx_Br, 1)
        kept_mask = None if padding_mask is None else gather_tokens(padding_mask, idx_Br, 1)
        kept_out = self.layer(kept_x, position_ids=kept_pos, padding_mask=kept_mask)
        return scatter_tokens(x, kept_out, idx_Br, self.seq_dim)
