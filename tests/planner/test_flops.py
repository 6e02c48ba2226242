"""FLOPs against hand derivations and the published 6ND rule."""

import pytest

from planner import flops as F
from planner import plan
from planner.models import ModelShape
from planner.presets import get_preset

TINY = ModelShape(
    num_layers=4,
    hidden_size=8,
    num_heads=2,
    num_kv_heads=1,
    ffn_hidden_size=16,
    vocab_size=10,
    seq_len=6,
)


def test_layer_flops_by_hand() -> None:
    # n = 6, h = 8, a = 2, g = 1 (kv width 4), f = 16, GELU (m = 2).
    # projections 2 n h (2h + 2 h g / a) = 2*6*8*(16 + 8) = 2304; MLP 2 n h f m = 2*6*8*16*2
    # = 3072; attention 4 n^2 h = 4*36*8 = 1152.
    assert F.projection_flops(6, TINY) == 2304
    assert F.mlp_flops(6, TINY) == 3072
    assert F.attention_flops(6, TINY) == 1152
    assert F.layer_flops(6, TINY) == 6528
    assert F.head_flops(TINY) == 2 * 6 * 8 * 10
    assert F.head_flops(TINY, 4) == 2 * 4 * 8 * 10  # curriculum learning's c = 4


def test_run_flops_match_per_step_sum() -> None:
    # Random-LTD step with r = 3 on 2 dropping layers; 3x forward for training.
    step = F.step_flops(TINY, reserved=3, rows=5, num_ltd_layers=2)
    by_hand = 3 * 5 * (2 * F.layer_flops(6, TINY) + 2 * F.layer_flops(3, TINY) + 960)
    assert step == by_hand
    # Two steps of 5 rows at c = S = 6: r = 3, then r = 6 (k = min(r, c)).
    moments = F.LengthMoments(
        rows_c=5 * (6 + 6),
        rows_c2=5 * (36 + 36),
        rows_k=5 * (3 + 6),
        rows_k2=5 * (9 + 36),
        rows_head=5 * (6 + 6),
    )
    run = F.run_flops(TINY, moments, num_ltd_layers=2, activation_recompute=True)
    dense = F.step_flops(TINY, reserved=6, rows=5, num_ltd_layers=2)
    assert run.model == by_hand + dense
    # Recompute adds one more forward of the layers (not the head) to hardware FLOPs.
    # Step 1: 2 full layers at 6 + 2 dropping at 3; step 2: all 4 at 6. L(3) = 1152 (proj)
    # + 1536 (MLP) + 288 (attention) = 2976; 5 x (6 x 6528 + 2 x 2976) = 225,600.
    layers_fwd = 5 * (6 * F.layer_flops(6, TINY) + 2 * F.layer_flops(3, TINY))
    assert layers_fwd == 225_600
    assert run.hardware - run.model == layers_fwd


def test_gpt3_175b_close_to_6nd() -> None:
    # Kaplan et al.: training costs ~6 N D FLOPs (plus attention). For GPT-3 175B on 300B tokens,
    # 6 x 174.6e9 x 300e9 = 3.14e23; attention adds 12 L S h / (6 N / tokens) ~ 5%.
    m = get_preset("gpt3-175b")
    p = plan({"model": "gpt3-175b", "train_batch_size": 1536, "train_tokens": 300_000_000_000})
    six_nd = 6 * m.num_params * p.baseline.tokens
    assert p.baseline.flops == pytest.approx(six_nd, rel=0.08)
    assert p.baseline.flops > six_nd  # the full n^2 attention term is on top


def test_n_squared_term_is_not_an_average_length() -> None:
    # sum of r^2 over [128, 2048] exceeds n * mean(r)^2: an average length undercounts attention.
    p = plan(
        {
            "model": "gpt3-1.3b",
            "train_batch_size": 8,
            "train_steps": 2,
            "random_ltd": {
                "min_value": 128,
                "max_value": 2048,
                "require_steps": 1,
                "seq_per_step": 16,
            },
        }
    )
    m = get_preset("gpt3-1.3b")
    exact = 3 * 8 * 22 * (F.attention_flops(128, m) + F.attention_flops(2048, m))
    averaged = 3 * 8 * 22 * 2 * F.attention_flops(1088, m)
    full_layers = 3 * 8 * 2 * 2 * F.attention_flops(2048, m)
    attention = p.random_ltd.flops_breakdown.attention
    assert attention == exact + full_layers != averaged + full_layers


def test_memory_estimate_by_hand() -> None:
    p = plan({"model": "gpt3-1.3b", "train_batch_size": 8, "train_steps": 10})
    n = get_preset("gpt3-1.3b").num_params
    assert p.memory.weights_bytes == 2 * n and p.memory.optimizer_bytes == 12 * n
    # Korthikanti: s b h (34 + 5 a s / h) per layer; at S=2048, b=1, h=2048, a=16: 2048*2048*
    # (34 + 80) = 478,150,656 bytes a layer, x 24 layers.
    assert p.memory.activations_bytes_full == 24 * 478_150_656
    assert p.memory.activations_bytes_min < p.memory.activations_bytes_full


def test_flash_attention_drops_the_score_activations() -> None:
    # 34 s b h bytes without the 5 a s^2 b scores: 2048 * 1 * 2048 * 34 = 142,606,336.
    m = get_preset("gpt3-1.3b")
    assert F.layer_activation_bytes(2048, m, 1, flash_attention=True) == 142_606_336
    assert F.layer_activation_bytes(2048, m, 1) == 478_150_656
