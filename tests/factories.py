"""The test suite's tiny configs, defined once: the tiny model every worker, client and fault test
trains or plans, the request for a plan of it, and a worker's plausible result.

Each factory returns a fresh object and takes overrides, so a test says only what it changes:
`tiny_model(hidden_size=64)`, `tiny_plan_request(train_steps=100)`, `validation_result(mfu=0.4)`.
"""

from __future__ import annotations

from typing import Any

from planner.models import ModelShape

# A 4-layer GPT with hidden 32 and 4 heads: a plan of it is tiny, and a validation job of it on
# the CPU takes seconds (2 dropping layers, sequences of 64 tokens over a 256-token vocabulary).
TINY_MODEL: dict[str, Any] = {
    "arch": "gpt",
    "num_layers": 4,
    "hidden_size": 32,
    "num_heads": 4,
    "vocab_size": 256,
    "seq_len": 64,
}
# The tensor tests build the same model smaller still: 16 tokens over a 64-token vocabulary.
TENSOR_TEST_SIZE: dict[str, Any] = {"vocab_size": 64, "seq_len": 16}


def tiny_model(**overrides: Any) -> dict[str, Any]:
    """The tiny model as a plan request's `model` (an explicit shape), with overrides."""
    return {**TINY_MODEL, **overrides}


def tiny_shape(**overrides: Any) -> ModelShape:
    """The tiny model as a `ModelShape` at the tensor tests' size (vocabulary 64, 16 tokens),
    with overrides: every worker test model starts from this."""
    return ModelShape.model_validate(
        {"name": "tiny", **TINY_MODEL, **TENSOR_TEST_SIZE, **overrides}
    )


def tiny_plan_request(**overrides: Any) -> dict[str, Any]:
    """A plan request of the tiny model: 4 sequences a step, 200 steps; `model=` overrides are
    given whole (`model=tiny_model(seq_len=128)`)."""
    return {"model": tiny_model(), "train_batch_size": 4, "train_steps": 200, **overrides}


def huge_plan_request() -> dict[str, Any]:
    """Issue 19's 260-byte request of 10 million reserved lengths, which once took a core for
    49 s and returned a 188 MB plan; now refused at once, naming random_ltd.seq_per_step."""
    return {
        "model": {"num_layers": 24, "hidden_size": 1024, "num_heads": 16, "vocab_size": 50257,
                  "seq_len": 10_000_000},
        "train_batch_size": 1,
        "train_steps": 200_000_000,
        "random_ltd": {"min_value": 1, "max_value": 10_000_000, "seq_per_step": 1,
                       "require_steps": 100_000_000},
    }  # fmt: skip


def gpt2_plan_request(**overrides: Any) -> dict[str, Any]:
    """A small plan request of a preset (GPT-2 small, 8 sequences, 100 steps), with overrides:
    what the API tests store and list."""
    return {"model": "gpt2", "train_batch_size": 8, "train_steps": 100, **overrides}


def validation_result(**overrides: Any) -> dict[str, Any]:
    """A plausible `ValidationResult` body, as a worker on a CPU would report it, with
    overrides (`planner.validation.ValidationResult.model_validate` reads it)."""
    return {
        "device": "cpu",
        "gpu_name": None,
        "torch_version": "2.13.0",
        "dtype": "float32",
        "num_layers": 4,
        "num_ltd_layers": 2,
        "micro_batch_size": 2,
        "seq_len": 1024,
        "scaled_down": ["num_layers: 12 -> 4 to fit the time cap"],
        "step_times": [
            {
                "reserved_length": 64,
                "step_time_ms": 50.0,
                "tokens_per_s": 4e4,
                "model_flops_per_s": 1e11,
            },
            {
                "reserved_length": 1024,
                "step_time_ms": 100.0,
                "tokens_per_s": 2e4,
                "model_flops_per_s": 1e11,
            },
        ],
        "step_time_fit": [46.0, 0.053, 0.0],
        "measured_wall_clock_saving": 0.2,
        "flops_saving": 0.3,
        "mfu": None,
        "peak_memory_bytes": None,
        "seconds": 42.0,
        **overrides,
    }


def bare_validation_result(**overrides: Any) -> dict[str, Any]:
    """The least a worker may report (a profile-mode job: no sizes, no step times), with
    overrides."""
    return validation_result(
        num_layers=None,
        num_ltd_layers=None,
        micro_batch_size=None,
        seq_len=None,
        scaled_down=[],
        step_times=[],
        step_time_fit=None,
        measured_wall_clock_saving=None,
        **overrides,
    )
