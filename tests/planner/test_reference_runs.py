"""The authors' published runs, reproduced (Yao et al. 2022, arXiv 2211.11586, and the
Megatron-DeepSpeed example scripts released with it)."""

import pytest

from planner import plan
from planner.recipes import paper_run

GPT3_13B_RUN = paper_run()  # 24 layers, S 2048; 22 dropping layers (all but first and last)


def test_gpt3_baseline_steps() -> None:
    # 300e9 tokens / (512 x 2048 = 1,048,576 tokens a step) = 286,102.1 -> 286,103 steps.
    p = plan(GPT3_13B_RUN)
    assert p.baseline.steps == 286_103
    assert p.baseline.layer_tokens == 286_103 * 512 * 2048 * 24


def test_gpt3_random_ltd_saves_a_third_of_layer_tokens() -> None:
    # Ramp, 133,333 steps: r averages about (128 + 2048) / 2 = 1088 on 22 of 24 layers, so a step
    # counts (2 x 2048 + 22 x 1088) / 24 = 1168 effective tokens a sequence: about 79.7B in all.
    # The other ~120.3B at 1,048,576 a step take ~114,700 more steps: about 248,000 steps.
    # LayerTokens: 133,333 x 512 x 28,032 + 114,700 x 512 x 49,152 = 1.91e12 + 2.89e12 = 4.80e12
    # against the baseline's 7.20e12: 1 - 4.80 / 7.20 = 33.3%, the paper's "33.3% compute saving".
    p = plan(GPT3_13B_RUN)
    assert 247_000 < p.random_ltd.steps < 250_000
    assert p.savings.layer_tokens == pytest.approx(0.333, abs=0.001)
    # The budget run stops at the first step whose effective tokens reach 200B.
    assert 200e9 <= p.random_ltd.effective_tokens < 200e9 + 512 * 2048
    # FLOPs save less than LayerTokens: the head (2 S h V) always runs on the full sequence.
    assert p.savings.flops < p.savings.layer_tokens


def test_bert_large_saves_about_half() -> None:
    # S 512, G 1024, 128 -> 512 by 16 over 1M steps; baseline 2M steps = 1.048576e12 tokens;
    # random-LTD budget 524,288,000,000 effective tokens (half). Ramp: r averages ~320,
    # (2 x 512 + 22 x 320) / 24 = 336 tokens a sequence, 1M x 1024 x 336 = 344B; the other 180B
    # at 524,288 a step: ~344,000 steps. LayerTokens: 1M x 1024 x 8064 + 344k x 1024 x 12,288
    # = 8.26e12 + 4.33e12 = 12.6e12 against 2M x 1024 x 12,288 = 25.2e12: about 50%.
    p = plan(
        {
            "model": "bert-large",
            "train_batch_size": 1024,
            "train_steps": 2_000_000,
            "ltd_train_tokens": 524_288_000_000,
            "random_ltd": {
                "min_value": 128,
                "max_value": 512,
                "require_steps": 1_000_000,
                "seq_per_step": 16,
            },
        }
    )
    assert p.baseline.steps == 2_000_000
    assert 1_340_000 < p.random_ltd.steps < 1_370_000
    assert p.savings.layer_tokens == pytest.approx(0.50, abs=0.005)


def test_same_run_from_a_deepspeed_config_gives_the_same_numbers() -> None:
    ds = {
        "train_batch_size": 512,
        "data_efficiency": {
            "enabled": True,
            "data_routing": {
                "enabled": True,
                "random_ltd": {
                    "enabled": True,
                    "total_layer_num": 24,
                    "random_ltd_layer_num": 22,
                    "random_ltd_layer_id": list(range(1, 23)),
                    "random_ltd_schedule": {
                        "min_value": 128,
                        "max_value": 2048,
                        "schedule_type": "fixed_linear",
                        "schedule_config": {"require_steps": 133_333, "seq_per_step": 16},
                    },
                },
            },
        },
    }
    a = plan(GPT3_13B_RUN)
    b = plan(
        {
            "model": "gpt3-1.3b",
            "deepspeed_config": ds,
            "train_tokens": 300_000_000_000,
            "ltd_train_tokens": 200_000_000_000,
        }
    )
    assert a.id == b.id
    assert a.random_ltd.layer_tokens == b.random_ltd.layer_tokens
    # And the exported block reads back to the same plan.
    c = plan(
        {
            "model": "gpt3-1.3b",
            "deepspeed_config": a.deepspeed_config.model_dump(),
            "train_tokens": 300_000_000_000,
            "ltd_train_tokens": 200_000_000_000,
        }
    )
    assert c.id == a.id


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"ltd_train_steps": 200_000},
        {"ltd_equal_compute": True},
        {
            "hardware": {"gpu": "h100-sxm", "num_gpus": 16, "price_per_gpu_hour": 3.0},
            "lr": {"peak_lr": 2e-4, "decay_tokens": 260_000_000_000},
        },
    ],
)
def test_a_plan_document_rebuilds_its_own_request(extra: dict) -> None:
    from planner.document import request_from_plan

    body = {k: v for k, v in GPT3_13B_RUN.items() if k != "ltd_train_tokens"} | extra
    if not extra:
        body["ltd_train_tokens"] = GPT3_13B_RUN["ltd_train_tokens"]
    p = plan(body)
    again = plan(request_from_plan(p))
    assert again.id == p.id
    assert again.random_ltd == p.random_ltd and again.baseline == p.baseline
