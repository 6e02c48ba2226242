"""`GET /v1/plans/{id}/report`: the page, before and after a validation job, and in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from present.text import human, pct
from tests.servers import LtdServer

TITLES = (
    "Reserved length per dropping layer",
    "Learning rate against LayerTokens",
    "Cumulative compute",
    "Cost side by side",
)


def _succeed_job(
    post: Callable[..., Any], job_id: str, result: dict[str, Any], headers: dict[str, str]
) -> None:
    claim = post("/v1/worker/claim", json={"worker_id": "w1"}, headers=headers)
    assert claim.status_code == 200 and claim.json()["job"]["id"] == job_id
    done = post(
        f"/v1/worker/jobs/{job_id}/complete",
        json={"lease_id": claim.json()["lease_id"], "result": result},
        headers=headers,
    )
    assert done.status_code == 200, done.text


def test_report_before_and_after_a_job(
    client: TestClient,
    stored_plan: str,
    queued_job: str,
    worker_headers: dict[str, str],
    validation_result: Callable[..., dict[str, Any]],
) -> None:
    plan = client.get(f"/v1/plans/{stored_plan}").json()
    page = client.get(f"/v1/plans/{stored_plan}/report")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert human(plan["baseline"]["steps"]) in page.text
    assert pct(plan["savings"]["layer_tokens"]) in page.text
    assert 'id="no-measurement"' in page.text and "<svg" in page.text
    _succeed_job(client.post, queued_job, validation_result(), worker_headers)
    page = client.get(f"/v1/plans/{stored_plan}/report").text
    assert 'id="measured"' in page and 'id="calibrated"' in page
    assert f"calibrated by job {queued_job}" in page
    assert "20.00%" in page  # the measured wall-clock saving of the result
    # The DeepSpeed block compact: the dropping layers' ids on one line, not one a line.
    ids = plan["deepspeed_config"]["data_efficiency"]["data_routing"]["random_ltd"]
    line = f'"random_ltd_layer_id": {ids["random_ltd_layer_id"]}'.replace('"', "&#34;")
    assert line in page  # as Jinja escapes the quotes
    assert 'id="verdict"' not in page  # no quality comparison in this result


def test_report_of_unknown_plan_is_404(client: TestClient) -> None:
    assert client.get("/v1/plans/p_nope/report").status_code == 404


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's package)")
        pytest.skip("chromium is not installed")
    return path


@pytest.mark.slow
def test_report_renders_in_headless_chromium(
    live_server: Callable[..., LtdServer],
    tmp_path: Path,
    validation_result: Callable[..., dict[str, Any]],
) -> None:
    chromium = _chromium()
    server = live_server(worker_token="browser-test-token")  # the real service, a SQLite file
    with httpx.Client(base_url=server.url, timeout=60) as http:
        plan = http.post(
            "/v1/plans",
            json={
                "model": "gpt3-125m",
                "train_batch_size": 64,
                "train_steps": 3000,
                "hardware": {"price_per_gpu_hour": 2.0},
                "lr": {"peak_lr": 6e-4, "decay_tokens": 300_000_000},
            },
        ).json()
        job = http.post("/v1/jobs", json={"plan_id": plan["id"]}).json()
        _succeed_job(
            http.post,
            job["id"],
            validation_result(),
            {"Authorization": "Bearer browser-test-token"},
        )
    url = f"{server.url}/v1/plans/{plan['id']}/report"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    shot = tmp_path / "report.png"
    subprocess.run(
        [chromium, *flags, "--window-size=1280,2400", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
    )
    # The page rendered: its figures are there, and its numbers are the plan's.
    assert plan["id"] in dom
    assert re.search(r"<svg[^>]*>", dom)
    for title in TITLES:
        assert title in dom
    for figure in ("steps", "layer_tokens", "effective_tokens"):
        assert human(plan["baseline"][figure]) in dom and human(plan["random_ltd"][figure]) in dom
    assert pct(plan["savings"]["flops"]) in dom
    assert f"calibrated by job {job['id']}" in dom and 'id="step-times"' in dom
    assert shot.exists() and shot.stat().st_size > 20_000


def test_report_of_a_composed_plan_draws_both_lengths(client: TestClient) -> None:
    from planner.recipes import recipe

    created = client.post("/v1/plans", json=recipe("gpt3-1.3b-cl-ltd-150b"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["curriculum"]["config"]["metric"] == "seqlen_truncate"
    assert body["curriculum"]["reorder_metrics"] == ["voc"]
    page = client.get(f"/v1/plans/{body['id']}/report").text
    assert "Reserved length r and curriculum length c" in page  # one chart, both lengths
    assert "curriculum length c (dropping layers keep min(r, c))" in page
    assert "composed with curriculum learning seqlen_truncate" in page


def test_a_bad_curriculum_is_422_naming_the_field(client: TestClient) -> None:
    request = {"model": "gpt3-125m", "train_batch_size": 8, "train_steps": 100,
               "curriculum": {"min_difficulty": 64, "max_difficulty": 2048,
                              "schedule_type": "custom"}}  # fmt: skip
    response = client.post("/v1/plans", json=request)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:3] == ["body", "curriculum", "schedule_type"]
    ds = {"train_batch_size": 8, "curriculum_learning": {"enabled": True, "min_difficulty": 8,
          "max_difficulty": 2048, "schedule_type": "fixed_linear",
          "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 8}}}  # fmt: skip
    response = client.post(
        "/v1/plans", json={"model": "gpt3-125m", "train_steps": 100, "deepspeed_config": ds}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == [
        "body", "deepspeed_config", "curriculum_learning", "curriculum_type"
    ]  # fmt: skip
