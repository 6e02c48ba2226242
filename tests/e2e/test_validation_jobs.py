"""Validation jobs over real processes: `ltd serve --with-worker` (the API and a real `ltd worker`)
and REST. max_minutes is a hard cap, a cancel is seen within one heartbeat, and a Hugging Face
config of the Llama family is timed with Transformers' own layers."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.factories import tiny_plan_request
from tests.servers import LtdServer

pytestmark = pytest.mark.slow

LEASE_S = 9.0  # the worker heartbeats every third of it: every 3 s
HEARTBEAT_S = LEASE_S / 3
FAST = {"warmup_steps": 0, "measure_steps": 1, "device": "cpu", "implementation": "native"}


def _wait(http: httpx.Client, job_id: str, done: Callable[[dict[str, Any]], bool], timeout_s: float,
          server: LtdServer) -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        if done(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not done in {timeout_s} s: {job}\n{server.tail()}")


def _submit(http: httpx.Client, request: dict[str, Any], settings: dict[str, Any]) -> str:
    response = http.post("/v1/jobs", json={"plan_request": request, "settings": settings})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _seconds(job: dict[str, Any], start: str, end: str) -> float:
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()


def test_max_minutes_ends_a_job_that_would_train_for_hours(
    live_server: Callable[..., LtdServer],
) -> None:
    """A quality job whose train_steps would take hours ends within max_minutes + 10%, with
    what it measured (the step times) and why it stopped; it is not retried."""
    server = live_server("--with-worker", env={"LTD_LEASE_SECONDS": str(LEASE_S)})
    settings = {"mode": "quality", "train_steps": 1_000_000, "max_minutes": 0.4, **FAST}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_id = _submit(http, tiny_plan_request(), settings)
        job = _wait(http, job_id, lambda j: j["state"] in ("succeeded", "failed"), 120, server)
    assert job["state"] == "succeeded" and job["attempts"] == 1, job
    assert _seconds(job, "started_at", "finished_at") <= 0.4 * 60 * 1.1
    result = job["result"]
    assert "max_minutes (0.4)" in result["stopped_early"] and result["quality"] is None
    assert result["measured_wall_clock_saving"] is not None  # what it did measure
    assert result["seconds"] <= 0.4 * 60 * 1.1


def test_a_cancel_mid_training_ends_the_run_within_one_heartbeat(
    live_server: Callable[..., LtdServer],
) -> None:
    """Cancelled while training, the run stops at the next heartbeat: the worker is free for the
    next job within one heartbeat interval (plus a step and a claim)."""
    server = live_server("--with-worker", env={"LTD_LEASE_SECONDS": str(LEASE_S)})
    long = {"mode": "quality", "train_steps": 1_000_000, "max_minutes": 10, **FAST}
    short = {"mode": "throughput", **FAST}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_id = _submit(http, tiny_plan_request(), long)
        training = "training baseline and random-LTD"  # past timing, into training
        _wait(http, job_id, lambda j: j["progress_message"] == training, 120, server)
        cancelled_at = time.monotonic()
        assert http.post(f"/v1/jobs/{job_id}/cancel").json()["state"] == "cancelled"
        next_id = _submit(http, tiny_plan_request(train_steps=100), short)
        _wait(http, next_id, lambda j: j["state"] != "queued", HEARTBEAT_S + 10, server)
        freed_after = time.monotonic() - cancelled_at
        finished = _wait(http, next_id, lambda j: j["state"] == "succeeded", 120, server)
    # One heartbeat to learn of the cancel, a training step to see it, a claim to take the next.
    assert freed_after < HEARTBEAT_S + 2.0, freed_after
    assert finished["attempts"] == 1
    cancelled = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
    assert cancelled["state"] == "cancelled" and cancelled["result"] is None


LLAMA_CONFIG = {
    "model_type": "llama",
    "_name_or_path": "tiny-llama",
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 176,
    "hidden_act": "silu",
    "vocab_size": 512,
    "max_position_embeddings": 128,
    "tie_word_embeddings": False,
}


def test_a_llama_config_json_is_validated_with_transformers_over_rest(
    live_server: Callable[..., LtdServer],
) -> None:
    """A Llama-family `config.json` submitted over REST is built with Transformers (random
    weights, nothing downloaded) and timed by a real `ltd worker`; the result says so, with
    the step-time model's prediction beside each measured step."""
    pytest.importorskip("transformers")
    server = live_server("--with-worker")
    request = {"model": LLAMA_CONFIG, "train_batch_size": 8, "train_steps": 1000,
               "hardware": {"num_gpus": 1, "micro_batch_size": 2}}  # fmt: skip
    settings = {**FAST, "implementation": "hf"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_id = _submit(http, request, settings)
        job = _wait(http, job_id, lambda j: j["state"] in ("succeeded", "failed"), 180, server)
        assert job["state"] == "succeeded", job
        result = job["result"]
        assert result["implementation"] == "hf: LlamaForCausalLM"
        assert result["num_layers"] == 4 and result["seq_len"] == 128
        assert len(result["step_times"]) == 5
        assert all(t["predicted_step_time_ms"] > 0 for t in result["step_times"])
        plan = http.get(f"/v1/plans/{job['plan_id']}").json()
        assert plan["model"]["position"] == "rotary" and plan["model"]["num_kv_heads"] == 2
        assert plan["calibrated"]["job_id"] == job_id  # the measurement calibrates the plan
