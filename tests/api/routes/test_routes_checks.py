"""`/v1/checks`: pass, fail with violations, compare against a stored plan."""

from __future__ import annotations


def test_check_passes_within_limits(client, plan_request):
    body = {"request": plan_request(), "limits": {"max_gpu_hours": 1e9, "min_flops_saving": 0}}
    response = client.post("/v1/checks", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["passed"] is True
    assert result["violations"] == []
    assert result["plan"]["id"].startswith("p_")


def test_check_fails_with_violations(client, plan_request):
    limits = {"max_gpu_hours": 1e-9, "min_flops_saving": 0.99}
    result = client.post("/v1/checks", json={"request": plan_request(), "limits": limits}).json()
    assert result["passed"] is False
    by_limit = {v["limit"]: v for v in result["violations"]}
    assert set(by_limit) == {"max_gpu_hours", "min_flops_saving"}
    gpu_hours = by_limit["max_gpu_hours"]
    assert gpu_hours["allowed"] == 1e-9
    assert gpu_hours["actual"] == result["plan"]["random_ltd"]["gpu_hours"]


def test_growth_against_a_stored_plan(client, plan_request, stored_plan):
    bigger = plan_request(train_steps=200)
    body = {"request": bigger, "limits": {"max_growth": 0.05}, "compare_plan_id": stored_plan}
    result = client.post("/v1/checks", json=body).json()
    assert result["compared_to"] == stored_plan
    assert not result["passed"]
    assert any(v["limit"].startswith("max_growth.") for v in result["violations"])


def test_unknown_compare_plan_is_404(client, plan_request):
    body = {"request": plan_request(), "compare_plan_id": "p_nope"}
    assert client.post("/v1/checks", json=body).status_code == 404


def test_bad_limits_and_requests_name_the_field(client, plan_request):
    bad_limit = {"request": plan_request(), "limits": {"min_flops_saving": 1.5}}
    detail = client.post("/v1/checks", json=bad_limit).json()["detail"]
    assert detail[0]["loc"] == ["body", "limits", "min_flops_saving"]
    bad_model = {"request": plan_request(model="no-such-model")}
    detail = client.post("/v1/checks", json=bad_model).json()["detail"]
    assert detail[0]["loc"] == ["body", "request", "model"]
