"""Inputs that used to reach a 500 (issue: hardening), each now a 4xx that names the problem,
with nothing stored changed. On a real SQLite file and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/plans", "/v1/device-profiles"])
def test_an_offset_past_any_integer_is_422(client, path: str) -> None:
    response = client.get(path, params={"offset": 9223372036854775808})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]


def test_a_non_ascii_lease_id_is_a_stale_lease(client, worker_headers, queued_job) -> None:
    claim = client.post("/v1/worker/claim", json={"worker_id": "w"}, headers=worker_headers)
    assert claim.status_code == 200
    lease = "lease-ü-€"
    bodies: dict[str, dict[str, Any]] = {
        "heartbeat": {"lease_id": lease, "progress": 0.5},
        "fail": {"lease_id": lease, "error": "x"},
        "release": {"lease_id": lease},
        "complete": {"lease_id": lease, "result": {}},
    }
    for action, body in bodies.items():
        response = client.post(
            f"/v1/worker/jobs/{queued_job}/{action}", json=body, headers=worker_headers
        )
        expected = 422 if action == "complete" else 409  # an empty result is refused first
        assert response.status_code == expected, (action, response.text)
    assert client.get(f"/v1/jobs/{queued_job}").json()["state"] == "running"


def test_vit_configs_with_two_sided_or_bad_image_sizes(client) -> None:
    vit = {"model_type": "vit", "patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12,
           "num_attention_heads": 12, "intermediate_size": 3072}  # fmt: skip
    request = {"train_batch_size": 64, "train_steps": 100}
    ok = client.post("/v1/plans", json={**request, "model": {**vit, "image_size": [224, 224]}})
    assert ok.status_code == 201, ok.text
    assert ok.json()["model"]["seq_len"] == 197
    bad = client.post("/v1/plans", json={**request, "model": {**vit, "image_size": "224"}})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "model", "image_size"]
    check = client.post(
        "/v1/checks", json={"request": {**request, "model": {**vit, "image_size": {}}}}
    )
    assert check.status_code == 422


def test_a_nan_result_is_refused_and_the_job_keeps_running(
    client, worker_headers, queued_job, validation_result
) -> None:
    claim = client.post("/v1/worker/claim", json={"worker_id": "w"}, headers=worker_headers).json()
    result = validation_result()
    result["step_times"][0]["step_time_ms"] = float("nan")
    # JSON has no NaN; Python's encoder writes the NaN token, which is what a worker sent.
    import json

    body = json.dumps({"lease_id": claim["lease_id"], "result": result})
    response = client.post(
        f"/v1/worker/jobs/{queued_job}/complete",
        content=body,
        headers={**worker_headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    job = client.get(f"/v1/jobs/{queued_job}")
    assert job.status_code == 200 and job.json()["state"] == "running"


def test_a_body_over_the_limit_is_413_before_parsing(client, plan_request) -> None:
    huge = plan_request(model={"name": "x" * 2_000_000, "num_layers": 2})
    response = client.post("/v1/plans", json=huge)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert client.get("/v1/plans").json()["count"] == 0  # nothing stored


def test_the_openapi_document_lists_the_access_and_limit_statuses(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    create_plan = paths["/v1/plans"]["post"]["responses"]
    assert {"201", "401", "413", "422"} <= set(create_plan)
    claim = paths["/v1/worker/claim"]["post"]["responses"]
    assert {"200", "204", "401", "413", "503"} <= set(claim)
    heartbeat = paths["/v1/worker/jobs/{job_id}/heartbeat"]["post"]["responses"]
    assert {"401", "409", "503"} <= set(heartbeat)


def test_method_not_allowed_names_every_method_of_the_path(client) -> None:
    response = client.request("PUT", "/v1/plans")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"  # Starlette alone said "POST"
    assert client.request("DELETE", "/v1/jobs/j_x").headers["allow"] == "GET"


DS = ["deepspeed_config"]


@pytest.mark.parametrize(
    "overrides, loc",
    [
        ({"train_steps": True}, ["body", "train_steps"]),  # JSON true is not the integer 1
        ({"train_steps": "100"}, ["body", "train_steps"]),  # nor "100" the number 100
        ({"hardware": {"num_gpus": 8.5}}, ["body", "hardware", "num_gpus"]),
        ({"model": {"model_type": "gpt2", "n_embd": "768"}}, ["body", "model", "n_embd"]),
        ({"model": {"num_layers": 0}}, ["body", "model", "num_layers"]),
        ({"deepspeed_config": {"train_batch_size": "8"}}, ["body", *DS, "train_batch_size"]),
        (
            {"deepspeed_config": {"data_efficiency": {"data_routing": {"random_ltd": {
                "random_ltd_schedule": {"min_value": 0}}}}}},
            ["body", *DS, "data_efficiency", "data_routing", "random_ltd", "random_ltd_schedule",
             "min_value"],
        ),
    ],
)  # fmt: skip
def test_bodies_are_read_as_the_schema_says(client, plan_request, overrides, loc) -> None:
    response = client.post("/v1/plans", json=plan_request(**overrides))
    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]]


def test_an_integral_float_is_an_integer_as_in_json_schema(client, plan_request) -> None:
    assert client.post("/v1/plans", json=plan_request(train_steps=100.0)).status_code == 201


def test_the_budget_rule_is_in_the_schema_and_enforced(client, plan_request) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["PlanRequest"]
    one_of = schema["allOf"][0]["oneOf"]
    assert [branch["required"] for branch in one_of] == [["train_tokens"], ["train_steps"]]
    both = client.post("/v1/plans", json=plan_request(train_tokens=10**9))
    assert both.status_code == 422 and both.json()["detail"][0]["loc"] == ["body", "train_tokens"]


def test_a_device_profile_with_zero_sized_grids_is_a_422(client) -> None:
    profile = {
        "device_name": "x", "dtype": "float16", "source": "t", "memory_gbps": 1000,
        "launch_overhead_us": 5, "async_launch": True,
        "matmul_rows": [0, 0], "matmul_widths": [1, 2], "matmul_tflops": [[1, 1], [1, 1]],
        "attention_lengths": [1, 2], "attention_tflops": [1, 1],
    }  # fmt: skip
    response = client.post("/v1/device-profiles", json=profile)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "matmul_rows", 0]
