"""Random-LTD (random and layerwise token dropping, Yao et al. 2022) as tensor functions.

A dropping layer sees only `r` of the `S` tokens of each sequence: an independent uniform random
subset per sample, kept in sequence order. The functional core is three pure functions

    idx_Br  = sample_kept_indices(B, S, r)         # (B, r) sorted positions
    kept    = gather_tokens(x, idx_Br, seq_dim)    # the subsequence the layer runs on
    out     = scatter_tokens(x, layer(kept), idx_Br, seq_dim)

and `RandomLTDLayer` wraps a layer with them, through `drop_apply_restore`: the same
composition with a cheaper backward (one dense gradient for the layer's input instead of two).
Dropped positions leave the layer unchanged (they skip it, as through a residual connection);
the gradients are those of a row gather and a row scatter: a dropped position's flows straight
through, a kept one's through the layer.

Beyond DeepSpeed: padding masks are gathered per sample (DeepSpeed slices the top-left r x r block
of the mask), rotary position ids are gathered with their tokens (DeepSpeed passes them unchanged,
so a kept token would be rotated as if it sat at its new index), any sequence length (DeepSpeed's
CUDA kernels assume S <= 2048), and both `[B, S, H]` and `[S, B, H]` layouts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def sample_kept_indices(
    batch: int,
    seq_len: int,
    reserved_length: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
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


def _check_seq_dim(seq_dim: int) -> None:
    if seq_dim not in (0, 1):
        raise ValueError(f"seq_dim must be 1 ([B, S, ...]) or 0 ([S, B, ...]), got {seq_dim}")


def _rows(idx_Br: Tensor, seq_len: int, seq_dim: int) -> Tensor:
    """Rows of the kept tokens in the tensor flattened to (B*S, rest) ([B, S, ...], row
    b*S + s) or (S*B, rest) ([S, B, ...], row s*B + b), in the order of the gathered layout."""
    B = idx_Br.shape[0]
    batch_ids = torch.arange(B, device=idx_Br.device)
    if seq_dim == 1:
        return (idx_Br + batch_ids[:, None] * seq_len).reshape(-1)  # (B*r,) b-major
    return (idx_Br.t() * B + batch_ids[None, :]).reshape(-1)  # (r*B,) position-major


def _lead(idx_Br: Tensor, seq_dim: int) -> tuple[int, int]:
    B, r = idx_Br.shape
    return (B, r) if seq_dim == 1 else (r, B)


def gather_tokens(x: Tensor, idx_Br: Tensor, seq_dim: int = 1) -> Tensor:
    """The kept tokens of `x`: [B, S, ...] -> [B, r, ...] (seq_dim 1) or [S, B, ...] ->
    [r, B, ...] (seq_dim 0). Works for activations, padding masks and position ids alike: a row
    gather of `x` flattened to (B*S, rest)."""
    _check_seq_dim(seq_dim)
    rows = _rows(idx_Br, x.shape[seq_dim], seq_dim)
    x_flat = x.reshape(x.shape[0] * x.shape[1], -1)
    return x_flat.index_select(0, rows).view(*_lead(idx_Br, seq_dim), *x.shape[2:])


def scatter_tokens(full: Tensor, kept_out: Tensor, idx_Br: Tensor, seq_dim: int = 1) -> Tensor:
    """`full` with the kept positions replaced by `kept_out` (out of place, differentiable in
    both): the dropped positions pass through unchanged."""
    _check_seq_dim(seq_dim)
    rows = _rows(idx_Br, full.shape[seq_dim], seq_dim)
    full_flat = full.reshape(full.shape[0] * full.shape[1], -1)
    kept_flat = kept_out.reshape(rows.shape[0], -1).to(full.dtype)
    return full_flat.index_copy(0, rows, kept_flat).view(full.shape)


class _GradBuffer:
    """The one dense gradient of a dropping layer's input, handed from the restore's backward
    to the gather's backward (see `drop_apply_restore`)."""

    grad_flat: Tensor | None = None


class _GatherRows(torch.autograd.Function):
    """kept = x_flat[rows]; backward writes the kept rows' gradient into the shared buffer."""

    @staticmethod
    def forward(ctx, x_flat: Tensor, rows: Tensor, buffer: _GradBuffer) -> Tensor:
        ctx.save_for_backward(rows)
        ctx.buffer, ctx.x_shape = buffer, x_flat.shape
        return x_flat.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad_kept: Tensor):
        (rows,) = ctx.saved_tensors
        grad_flat, ctx.buffer.grad_flat = ctx.buffer.grad_flat, None
        if grad_flat is None:  # the restored output got no gradient: build a dense one
            zeros = grad_kept.new_zeros(ctx.x_shape)
            return zeros.index_copy_(0, rows, grad_kept), None, None
        # The restore's backward (which ran first: it feeds the layer's) left the kept rows at
        # zero; fill them in place and add no second gradient for x.
        grad_flat.index_copy_(0, rows, grad_kept.to(grad_flat.dtype))
        return None, None, None


class _RestoreRows(torch.autograd.Function):
    """out = x_flat with rows replaced by kept_out; backward passes the dropped rows' gradient
    through and leaves it, kept rows zeroed, in the buffer for the gather to complete."""

    @staticmethod
    def forward(ctx, x_flat: Tensor, rows: Tensor, kept_out: Tensor, buffer: _GradBuffer) -> Tensor:
        ctx.save_for_backward(rows)
        ctx.buffer = buffer
        return x_flat.index_copy(0, rows, kept_out)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (rows,) = ctx.saved_tensors
        grad_flat = grad_out.index_fill(0, rows, 0)
        ctx.buffer.grad_flat = grad_flat
        return grad_flat, None, grad_out.index_select(0, rows), None


def drop_apply_restore(
    x: Tensor, idx_Br: Tensor, fn: Callable[[Tensor], Tensor], seq_dim: int = 1
) -> Tensor:
    """`scatter_tokens(x, fn(gather_tokens(x, idx)), idx)`, with one dense gradient for x.

    Plain autograd builds two dense (B, S, H) gradients for x, one per use (a zero-filled one
    holding the kept rows, one holding the dropped rows), and adds them: three full passes over
    the activations. Here the restore's backward makes the only dense gradient (dropped rows,
    kept rows zeroed) and the gather's backward writes the kept rows into it in place. That is
    safe because the gather's backward always runs after the restore's (the layer sits between
    them) and both act on one flattened view of x that nothing else uses. Not for double
    backward.
    """
    _check_seq_dim(seq_dim)
    rows = _rows(idx_Br, x.shape[seq_dim], seq_dim)
    x_flat = x.reshape(x.shape[0] * x.shape[1], -1)  # one node: only our two uses feed it
    buffer = _GradBuffer()
    kept_flat = _GatherRows.apply(x_flat, rows, buffer)
    kept_out = fn(kept_flat.view(*_lead(idx_Br, seq_dim), *x.shape[2:]))
    kept_out_flat = kept_out.reshape(rows.shape[0], -1).to(x.dtype)
    return _RestoreRows.apply(x_flat, rows, kept_out_flat, buffer).view(x.shape)


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

    def forward(
        self,
        x: Tensor,
        *,
        reserved_length: int | None = None,
        position_ids: Tensor | None = None,
        padding_mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        seq_len = x.shape[self.seq_dim]
        if not self.training or reserved_length is None or reserved_length >= seq_len:
            return self.layer(x, position_ids=position_ids, padding_mask=padding_mask)
        batch = x.shape[1 - self.seq_dim]
        idx_Br = sample_kept_indices(batch, seq_len, reserved_length, generator, x.device)
        # Per-token side inputs are [B, S]: gather them along the sequence dimension 1.
        kept_pos = (
            None
            if position_ids is None
            else gather_tokens(position_ids.expand(batch, seq_len), idx_Br, 1)
        )
        kept_mask = None if padding_mask is None else gather_tokens(padding_mask, idx_Br, 1)
        return drop_apply_restore(
            x,
            idx_Br,
            lambda kept: self.layer(kept, position_ids=kept_pos, padding_mask=kept_mask),
            self.seq_dim,
        )
