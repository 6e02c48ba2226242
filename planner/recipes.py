"""The authors' released data-efficiency recipes: curriculum learning composed with random-LTD.

`ltd plan --recipe NAME` starts from one of these requests (flags override it). Every number is
read from the published Megatron-DeepSpeed scripts (microsoft/Megatron-DeepSpeed,
`examples_deepspeed/data_efficiency/{gpt,bert}/pretrain/`; the research, file by file and with
commits, is in docs/recipes-research.md):

- GPT-3 1.3B: `ds_pretrain_gpt_1.3B_dense_run.sh` (CL + random-LTD blocks), its base script
  `ds_pretrain_gpt_1.3B_dense_base_script.sh` and `ds_config_gpt_2clmetrics_TEMPLATE.json`.
- BERT-large (336M): `ds_pretrain_bert_336M_run.sh`, `ds_pretrain_bert_336M_base_script.sh` and
  `ds_config_bert_2clmetrics_TEMPLATE.json` (the newest of three generations of BERT scripts).

The scripts stop training when Megatron-DeepSpeed's consumed-token counter reaches the budget
(`megatron/training.py`), so each recipe's random-LTD run is `ltd_train_tokens` (effective
tokens) and its baseline is the dense run of the paper's full budget.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

from planner.errors import PlanInputError


def _cl_metrics(vocab_min: int, total_steps: int, seq_min: int, seq_max: int) -> dict[str, Any]:
    """The two metrics of the `2clmetrics` templates: vocabulary rarity (percentile, root 2,
    reorders data) and seqlen_truncate (value, root 1, step 8: sets the length)."""
    return {
        "voc": {
            "difficulty_type": "percentile",
            "clustering_type": "schedule_based",
            "min_difficulty": vocab_min,
            "max_difficulty": 100,
            "schedule_type": "fixed_root",
            "schedule_config": {
                "total_curriculum_step": total_steps,
                "difficulty_step": 1,
                "root_degree": 2,
            },
        },
        "seqlen_truncate": {
            "difficulty_type": "value",
            "clustering_type": "single_cluster",
            "min_difficulty": seq_min,
            "max_difficulty": seq_max,
            "schedule_type": "fixed_root",
            "schedule_config": {
                "total_curriculum_step": total_steps,
                "difficulty_step": 8,
                "root_degree": 1,
            },
        },
    }


def _deepspeed(
    batch: int, layers: int, model_type: str, ltd_min: int, ltd_max: int, ltd_steps: int,
    cl: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    return {
        "train_batch_size": batch,
        "data_efficiency": {
            "enabled": True,
            "data_sampling": {
                "enabled": True,
                "curriculum_learning": {"enabled": True, "curriculum_metrics": cl},
            },
            "data_routing": {
                "enabled": True,
                "random_ltd": {
                    "enabled": True,
                    "total_layer_num": layers,
                    "random_ltd_layer_num": layers - 2,
                    "random_ltd_layer_id": list(range(1, layers - 1)),
                    "model_mask_name": "attention_mask",
                    "model_type": model_type,
                    "hidden_state_order": "seq_batch_dim",
                    "random_ltd_schedule": {
                        "min_value": ltd_min,
                        "max_value": ltd_max,
                        "schedule_type": "fixed_linear",
                        "schedule_config": {"require_steps": ltd_steps, "seq_per_step": 16},
                    },
                },
            },
        },
    }


def _gpt(budget: int, peak_lr: float, ltd_steps: int, cl_steps: int) -> dict[str, Any]:
    """GPT-3 1.3B on the Pile: G 512, S 2048, 64 GPUs (the blog's 64 V100) at micro-batch 8;
    LR warmup 3B tokens, cosine decay over the budget to 1e-6."""
    return {
        "model": "gpt3-1.3b",
        "deepspeed_config": _deepspeed(
            512, 24, "decoder", 128, 2048, ltd_steps, _cl_metrics(1, cl_steps, 80, 2048)
        ),  # fmt: skip
        "train_tokens": 300_000_000_000,  # the paper's dense baseline
        "ltd_train_tokens": budget,
        "hardware": {"gpu": "v100", "num_gpus": 64, "micro_batch_size": 8},
        "lr": {
            "peak_lr": peak_lr,
            "min_lr": 1e-6,
            "warmup_tokens": 3_000_000_000,
            "decay_tokens": budget,
            "style": "cosine",
        },  # fmt: skip
    }


def _bert(iters_million: int, peak_lr: float) -> dict[str, Any]:
    """BERT-large (336M) on the Pile: G 1024, S 512, micro-batch 16 on 64 GPUs; LR warmup
    10,000 iterations (x 1024 x 512 tokens), linear decay over the budget to 1e-5; random-LTD
    over the nominal run length, CL over 48% of it."""
    tokens = iters_million * 1_000_000 * 512 * 1024
    steps = iters_million * 1_000_000
    return {
        "model": "bert-large",
        "deepspeed_config": _deepspeed(
            1024, 24, "encoder", 128, 512, steps, _cl_metrics(5, steps * 48 // 100, 128, 512)
        ),  # fmt: skip
        "train_tokens": 1_048_576_000_000,  # the 2M-iteration dense baseline
        "ltd_train_tokens": tokens,
        "hardware": {"gpu": "v100", "num_gpus": 64, "micro_batch_size": 16},
        "lr": {
            "peak_lr": peak_lr,
            "min_lr": 1e-5,
            "warmup_tokens": 10_000 * 1024 * 512,
            "decay_tokens": tokens,
            "style": "linear",
        },  # fmt: skip
    }


# The paper's GPT-3 1.3B run (Yao et al. 2022, section 4): a 300B-token dense baseline against
# random-LTD on a 200B effective-token budget, 128 -> 2048 tokens by 16 over 133,333 steps, G 512.
# The authors' figures: 286,103 baseline steps, a 33.3% LayerToken saving.
PAPER_RUN: dict[str, Any] = {
    "model": "gpt3-1.3b",
    "train_batch_size": 512,
    "train_tokens": 300_000_000_000,
    "ltd_train_tokens": 200_000_000_000,
    "random_ltd": {
        "min_value": 128,
        "max_value": 2048,
        "seq_per_step": 16,
        "require_steps": 133_333,
    },
}


def paper_run(**changes: Any) -> dict[str, Any]:
    """The paper's GPT-3 1.3B request (a copy), with top-level `changes` (e.g. hardware)."""
    return {**copy.deepcopy(PAPER_RUN), **changes}


RECIPES: dict[str, dict[str, Any]] = {
    # ds_pretrain_gpt_1.3B_dense_run.sh, "CL + random-LTD" 300B: lr 2e-4, ltd_step 200000,
    # cl_1st/2nd_total_step 110000.
    "gpt3-1.3b-cl-ltd-300b": _gpt(300_000_000_000, 2e-4, 200_000, 110_000),
    # The same script's 150B ("2x less data") block: lr 4e-4, ltd_step 100000, CL 55000.
    "gpt3-1.3b-cl-ltd-150b": _gpt(150_000_000_000, 4e-4, 100_000, 55_000),
    # ds_pretrain_bert_336M_run.sh: train_iters_in_million 2, lr 1e-4, ltd_step_in_million 2,
    # cl_*_total_step_in_million 0.96.
    "bert-large-cl-ltd-1049b": _bert(2, 1e-4),
    # The same script's 1M-iteration block: lr 2e-4, ltd 1M steps, CL 480000.
    "bert-large-cl-ltd-524b": _bert(1, 2e-4),
}


def recipe(name: str) -> dict[str, Any]:
    """A recipe's plan request (a copy: callers may change it)."""
    if name not in RECIPES:
        close = difflib.get_close_matches(name, list(RECIPES), n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(RECIPES)}"
        raise PlanInputError("recipe", f"unknown recipe {name!r}; {hint}")
    return copy.deepcopy(RECIPES[name])
