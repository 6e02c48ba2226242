"""Never a 500 for anything a client sends: random bodies against the planning endpoints."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["gpt2", "gpt3-1.3b", "bert-base", "a100", "fixed_linear"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
small_ints = st.integers(min_value=-5, max_value=5000)
random_ltd = st.fixed_dictionaries(
    {},
    optional={
        "min_value": small_ints,
        "max_value": small_ints,
        "require_steps": small_ints,
        "seq_per_step": small_ints,
        "schedule_type": st.sampled_from(["fixed_linear", "fixed_root", "constant", "x"]),
        "root_degree": small_ints,
        "layer_ids": st.lists(small_ints, max_size=4),
    },
)
hf_config = st.fixed_dictionaries(
    {},
    optional={
        "num_hidden_layers": small_ints,
        "hidden_size": small_ints,
        "num_attention_heads": small_ints,
        "intermediate_size": small_ints,
        "vocab_size": small_ints,
        "max_position_embeddings": small_ints,
        "num_key_value_heads": small_ints,
        "model_type": st.sampled_from(["gpt2", "llama", "bert", "?"]),
    },
)
plan_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt2", "gpt3-125m", "nope"]) | hf_config | values},
    optional={
        "train_batch_size": small_ints | values,
        "train_steps": small_ints | values,
        "train_tokens": st.integers(min_value=-1, max_value=10**16),
        "ltd_train_tokens": st.integers(min_value=-1, max_value=10**12),
        "ltd_train_steps": small_ints,
        "ltd_equal_compute": st.booleans(),
        "random_ltd": random_ltd | values,
        "deepspeed_config": st.fixed_dictionaries(
            {}, optional={"train_batch_size": small_ints, "data_efficiency": values}
        )
        | values,
        "hardware": st.fixed_dictionaries(
            {},
            optional={
                "gpu": st.sampled_from(["a100", "h100-sxm", "tpu"]),
                "num_gpus": small_ints,
                "mfu": st.floats(-1, 2),
                "peak_tflops": st.floats(-1, 1e7),
            },
        ),
        "lr": values,
    },
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=plan_bodies)
def test_plans_and_checks_never_answer_500(client, body: dict[str, Any]):
    response = client.post("/v1/plans", json=body)
    assert response.status_code in (201, 422), response.text
    if response.status_code == 422:
        assert response.json()["detail"][0]["loc"][0] == "body"
    check = client.post("/v1/checks", json={"request": body, "limits": {"max_gpu_hours": 1}})
    assert check.status_code in (200, 422), check.text
