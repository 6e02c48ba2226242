"""The token drop's functional core and wrapper against dense references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.factories import tiny_shape
from worker.model import Block, build_model, rotary
from worker.token_drop import RandomLTDLayer, gather_tokens, sample_kept_indices, scatter_tokens


def test_indices_sorted_distinct_in_range() -> None:
    idx = sample_kept_indices(8, 100, 30)
    assert idx.shape == (8, 30) and idx.dtype == torch.int64
    assert (idx.diff(dim=1) > 0).all()
    assert idx.min() >= 0 and idx.max() < 100
    assert not all(torch.equal(idx[0], row) for row in idx[1:])  # independent per sample


def test_indices_uniform() -> None:
    counts = torch.zeros(10)
    for _ in range(200):
        counts += torch.bincount(sample_kept_indices(50, 10, 3).flatten(), minlength=10)
    expected = 200 * 50 * 3 / 10
    assert (counts - expected).abs().max() < 0.1 * expected


def test_indices_reproducible_under_a_seed() -> None:
    a = sample_kept_indices(4, 64, 16, torch.Generator().manual_seed(7))
    b = sample_kept_indices(4, 64, 16, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("r", [0, 17])
def test_indices_reject_bad_lengths(r: int) -> None:
    with pytest.raises(ValueError, match="reserved_length"):
        sample_kept_indices(2, 16, r)


def test_no_sequence_length_limit() -> None:
    x = torch.randn(1, 5000, 4)
    idx = sample_kept_indices(1, 5000, 4096)
    out = scatter_tokens(x, gather_tokens(x, idx) * 2, idx)
    assert out.shape == x.shape


class _Pointwise(nn.Module):
    """A layer acting per token, so a dense reference is easy: tanh(W x)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x, *, position_ids=None, padding_mask=None):
        return torch.tanh(self.lin(x))


@pytest.mark.parametrize("seq_dim", [1, 0])
def test_kept_positions_equal_layer_on_subsequence_dropped_unchanged(seq_dim: int) -> None:
    block = Block(tiny_shape(hidden_size=8, num_heads=2), causal=True)
    x_BSH = torch.randn(3, 12, 8)
    idx = sample_kept_indices(3, 12, 5)
    x = x_BSH if seq_dim == 1 else x_BSH.transpose(0, 1).contiguous()  # [S, B, H]
    kept = gather_tokens(x, idx, seq_dim)
    kept_BrH = kept if seq_dim == 1 else kept.transpose(0, 1)
    out_BrH = block(kept_BrH)
    out = scatter_tokens(x, out_BrH if seq_dim == 1 else out_BrH.transpose(0, 1), idx, seq_dim)
    out_BSH = out if seq_dim == 1 else out.transpose(0, 1)
    for b in range(3):
        sub_1rH = x_BSH[b, idx[b]][None]
        torch.testing.assert_close(out_BSH[b, idx[b]], block(sub_1rH)[0])
        dropped = torch.ones(12, dtype=torch.bool)
        dropped[idx[b]] = False
        assert torch.equal(out_BSH[b, dropped], x_BSH[b, dropped])


def test_causal_attention_among_kept_equals_attention_on_subsequence() -> None:
    q, k, v = torch.randn(3, 2, 2, 20, 8).unbind(0)  # (B, N, S, D) each
    idx = sample_kept_indices(2, 20, 7)
    sub = [gather_tokens(t.transpose(1, 2), idx).transpose(1, 2) for t in (q, k, v)]
    got = F.scaled_dot_product_attention(*sub, is_causal=True)
    for b in range(2):
        # Dense reference: full attention where a query sees only kept keys at or before it.
        allowed = torch.zeros(20, 20, dtype=torch.bool)
        allowed[idx[b][:, None], idx[b][None, :]] = True
        allowed &= torch.ones(20, 20, dtype=torch.bool).tril()
        allowed |= torch.eye(20, dtype=torch.bool)
        dense = F.scaled_dot_product_attention(
            q[b : b + 1], k[b : b + 1], v[b : b + 1], attn_mask=allowed
        )
        torch.testing.assert_close(got[b], dense[0][:, idx[b]])


@pytest.mark.parametrize("seq_dim", [1, 0])
def test_gradients_equal_dense_masked_reference(seq_dim: int) -> None:
    torch.manual_seed(1)
    layer = _Pointwise()
    wrapped = RandomLTDLayer(layer, seq_dim=seq_dim).train()
    x = torch.randn(4, 10, 8) if seq_dim == 1 else torch.randn(10, 4, 8)
    x.requires_grad_(True)
    weights = torch.randn_like(x)
    gen = torch.Generator().manual_seed(3)
    (wrapped(x, reserved_length=4, generator=gen) * weights).sum().backward()
    grads = {"x": x.grad.clone(), **{n: p.grad.clone() for n, p in layer.named_parameters()}}
    # Dense reference: the layer on every token, its output used only where kept.
    layer.zero_grad()
    x.grad = None
    idx = sample_kept_indices(4, 10, 4, torch.Generator().manual_seed(3))
    keep = torch.zeros(4, 10, 1, dtype=torch.bool)
    keep.scatter_(1, idx[..., None], True)
    keep = keep if seq_dim == 1 else keep.transpose(0, 1)
    (torch.where(keep, layer(x), x) * weights).sum().backward()
    torch.testing.assert_close(grads["x"], x.grad)
    for n, p in layer.named_parameters():
        torch.testing.assert_close(grads[n], p.grad)


def test_wrapper_is_identity_in_eval_and_at_full_length() -> None:
    layer = _Pointwise()
    wrapped = RandomLTDLayer(layer)
    x = torch.randn(2, 6, 8)
    assert torch.equal(wrapped.train()(x, reserved_length=6), layer(x))
    assert torch.equal(wrapped.eval()(x, reserved_length=2), layer(x))
    assert torch.equal(wrapped.train()(x, reserved_length=None), layer(x))


def test_padding_mask_gathered_per_sample() -> None:
    shape = tiny_shape(arch="bert", hidden_size=16, num_heads=2, seq_len=12)
    block = Block(shape, causal=False)
    wrapped = RandomLTDLayer(block).train()
    x = torch.randn(2, 12, 16)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 8:] = False  # sample 0 has 8 real tokens, sample 1 has 12
    gen_state = torch.Generator().manual_seed(5)
    out = wrapped(x, reserved_length=6, padding_mask=mask, generator=gen_state)
    idx = sample_kept_indices(2, 12, 6, torch.Generator().manual_seed(5))
    for b in range(2):
        keep_real = mask[b, idx[b]]
        real_idx = idx[b][keep_real]
        # Real kept tokens equal the block on exactly the real kept tokens of that sample.
        ref = block(x[b, real_idx][None])[0]
        torch.testing.assert_close(out[b, real_idx], ref)


def test_rotary_positions_gathered_with_tokens() -> None:
    shape = tiny_shape(position="rotary", hidden_size=16, num_heads=2, seq_len=12)
    block = Block(shape, causal=True)
    wrapped = RandomLTDLayer(block).train()
    x = torch.randn(2, 12, 16)
    pos = torch.arange(12).expand(2, 12)
    out = wrapped(
        x, reserved_length=5, position_ids=pos, generator=torch.Generator().manual_seed(9)
    )
    idx = sample_kept_indices(2, 12, 5, torch.Generator().manual_seed(9))
    for b in range(2):
        ref = block(x[b, idx[b]][None], position_ids=idx[b][None])[0]
        torch.testing.assert_close(out[b, idx[b]], ref)
        wrong = block(x[b, idx[b]][None], position_ids=torch.arange(5)[None])[0]
        assert not torch.allclose(out[b, idx[b]], wrong)  # what passing positions unchanged gives


def test_rotary_is_relative() -> None:
    q, k = torch.randn(2, 1, 1, 1, 8).unbind(0)

    def score(i: int, j: int) -> torch.Tensor:
        return (rotary(q, torch.tensor([[i]])) * rotary(k, torch.tensor([[j]]))).sum()

    torch.testing.assert_close(score(3, 1), score(10, 8))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "position": "rotary",
            "activation": "swiglu",
            "num_kv_heads": 2,
            "norm": "rmsnorm",
            "bias": False,
            "tie_embeddings": False,
        },
        {"arch": "bert"},
    ],
)
def test_full_reserved_length_equals_plain_model_exactly(overrides: dict) -> None:
    model = build_model(tiny_shape(**overrides)).train()
    tokens = torch.randint(0, 64, (2, 16))
    assert torch.equal(model(tokens, reserved_length=16), model(tokens, reserved_length=None))
    assert torch.equal(model(tokens, reserved_length=16), model.eval()(tokens, reserved_length=4))


def test_first_and_last_layers_never_drop() -> None:
    model = build_model(tiny_shape(num_layers=5))
    assert model.ltd_layer_ids == (1, 2, 3)
    wrapped = [i for i, b in enumerate(model.blocks) if isinstance(b, RandomLTDLayer)]
    assert wrapped == [1, 2, 3]


def test_model_drops_reproducibly_under_a_seed() -> None:
    model = build_model(tiny_shape()).train()
    tokens = torch.randint(0, 64, (2, 16))
    torch.manual_seed(11)
    a = model(tokens, reserved_length=4)
    torch.manual_seed(11)
    b = model(tokens, reserved_length=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, model(tokens, reserved_length=16))


@pytest.mark.parametrize("seq_dim", [1, 0])
def test_drop_apply_restore_equals_gather_layer_scatter(seq_dim: int) -> None:
    from worker.token_drop import drop_apply_restore

    layer = _Pointwise()
    x1 = torch.randn(3, 9, 8, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    idx = sample_kept_indices(3, 9, 4)
    g = torch.randn(3, 9, 8)
    a = drop_apply_restore(x1, idx, layer, seq_dim)
    b = scatter_tokens(x2, layer(gather_tokens(x2, idx, seq_dim)), idx, seq_dim)
    assert torch.equal(a, b)
    a.backward(g)
    b.backward(g)
    assert not x1.grad.is_sparse
    torch.testing.assert_close(x1.grad, x2.grad)


def test_drop_apply_restore_gradient_when_x_is_also_used_elsewhere() -> None:
    from worker.token_drop import drop_apply_restore

    layer = _Pointwise()
    x1 = torch.randn(2, 10, 8, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    idx = sample_kept_indices(2, 10, 3)
    g1, g2 = torch.randn(2, 10, 8), torch.randn(2, 10, 8)
    ((drop_apply_restore(x1, idx, layer) * g1).sum() + (x1.tanh() * g2).sum()).backward()
    (
        (scatter_tokens(x2, layer(gather_tokens(x2, idx)), idx) * g1).sum() + (x2.tanh() * g2).sum()
    ).backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_drop_apply_restore_gradient_through_the_layer_only() -> None:
    """A loss that reads only the layer's output (the restored tensor gets no gradient)."""
    from worker.token_drop import drop_apply_restore

    layer = _Pointwise()
    x = torch.randn(2, 10, 8, requires_grad=True)
    idx = sample_kept_indices(2, 10, 3)
    seen = []
    drop_apply_restore(x, idx, lambda k: seen.append(layer(k)) or seen[-1])
    seen[0].sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    layer(gather_tokens(x_ref, idx)).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 4),
    seq_len=st.integers(1, 40),
    data=st.data(),
    seq_dim=st.sampled_from([0, 1]),
)
def test_restoring_the_gathered_tokens_is_the_identity(batch, seq_len, data, seq_dim) -> None:
    r = data.draw(st.integers(1, seq_len))
    idx = sample_kept_indices(batch, seq_len, r)
    x = torch.randn(batch, seq_len, 3) if seq_dim == 1 else torch.randn(seq_len, batch, 3)
    kept = gather_tokens(x, idx, seq_dim)
    assert kept.shape == ((batch, r, 3) if seq_dim == 1 else (r, batch, 3))
    assert torch.equal(scatter_tokens(x, kept, idx, seq_dim), x)
    changed = scatter_tokens(x, kept + 1, idx, seq_dim) != x
    assert int(changed.sum()) == batch * r * 3  # exactly the kept tokens, nothing else
