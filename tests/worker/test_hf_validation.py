"""Validation jobs on the user's own architecture: a Hugging Face config of a supported family is
built and timed with Transformers itself (`implementation` hf, the default where supported)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from planner import plan  # noqa: E402
from planner.validation import ValidationSettings  # noqa: E402
from worker.throughput import implementation_for  # noqa: E402
from worker.validate import run_validation  # noqa: E402

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 4,
         "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
         "vocab_size": 256, "max_position_embeddings": 64, "hidden_act": "silu"}  # fmt: skip
FAST = {"warmup_steps": 1, "measure_steps": 1, "device": "cpu"}


def llama_plan():  # type: ignore[no-untyped-def]
    return plan({"model": LLAMA, "train_batch_size": 4, "train_steps": 100,
                 "hardware": {"num_gpus": 1, "micro_batch_size": 2}})  # fmt: skip


def test_a_llama_config_is_timed_with_transformers_own_layers() -> None:
    result = run_validation(llama_plan(), ValidationSettings(implementation="hf", **FAST))
    assert result.implementation == "hf: LlamaForCausalLM"
    assert result.num_layers == 4 and result.seq_len == 64 and result.scaled_down == []
    assert len(result.step_times) == 5 and all(t.step_time_ms > 0 for t in result.step_times)
    assert result.measured_wall_clock_saving is not None
    assert all(t.predicted_step_time_ms for t in result.step_times)  # the model beside them


def test_native_by_default_times_the_projects_own_blocks() -> None:
    # native is what the step-time model counts kernels and bytes of: the default.
    result = run_validation(llama_plan(), ValidationSettings(**FAST))
    assert result.implementation == "native"


def test_auto_falls_back_to_native_and_hf_names_what_is_supported() -> None:
    vit = plan({"model": "vit-b16", "train_batch_size": 8, "train_steps": 10}).model
    assert implementation_for(vit, "auto") == "native"
    with pytest.raises(ValueError, match="GPT-2, Llama-family and BERT"):
        implementation_for(vit, "hf")
    assert implementation_for(llama_plan().model, "auto") == "hf"
    gpt2 = plan({"model": "gpt2", "train_batch_size": 8, "train_steps": 10}).model
    bert = plan({"model": "bert-base", "train_batch_size": 8, "train_steps": 10}).model
    assert implementation_for(gpt2, "auto") == implementation_for(bert, "auto") == "hf"


def test_a_quality_job_trains_transformers_models() -> None:
    settings = ValidationSettings(mode="quality", seeds=2, train_steps=4, eval_points=1,
                                  eval_batches=1, implementation="auto", **FAST)  # fmt: skip
    result = run_validation(llama_plan(), settings)
    q = result.quality
    assert result.implementation == "hf: LlamaForCausalLM"
    assert q is not None and q.baseline_steps == 4 and len(q.baseline_eval_loss) == 2
