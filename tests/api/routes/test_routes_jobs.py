"""`/v1/jobs`: submit (202), read, list with filters, cancel; 404 and 409."""

from __future__ import annotations


def test_submit_for_a_stored_plan(client, stored_plan):
    response = client.post(
        "/v1/jobs", json={"plan_id": stored_plan, "settings": {"mode": "both", "seed": 3}}
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] == "queued"
    assert job["plan_id"] == stored_plan
    assert (job["attempts"], job["max_attempts"], job["progress"]) == (0, 3, 0.0)
    # "both", an earlier version's mode, is a quality job on the paper's basis.
    assert job["settings"]["mode"] == "quality" and job["settings"]["seed"] == 3
    assert job["settings"]["basis"] == "equal_layer_tokens"
    assert job["result"] is None and job["started_at"] is None
    assert client.get(f"/v1/jobs/{job['id']}").json() == job


def test_submit_for_a_plan_request_stores_the_plan(client, plan_request):
    job = client.post("/v1/jobs", json={"plan_request": plan_request()}).json()
    plan = client.get(f"/v1/plans/{job['plan_id']}")
    assert plan.status_code == 200


def test_submit_needs_exactly_one_plan(client, stored_plan, plan_request):
    both = {"plan_id": stored_plan, "plan_request": plan_request()}
    for body in (both, {}):
        response = client.post("/v1/jobs", json=body)
        assert response.status_code == 422
        assert "plan_id" in response.json()["detail"][0]["msg"]


def test_submit_errors(client, stored_plan, plan_request):
    assert client.post("/v1/jobs", json={"plan_id": "p_missing"}).status_code == 404
    bad_settings = {"plan_id": stored_plan, "settings": {"measure_steps": 0}}
    detail = client.post("/v1/jobs", json=bad_settings).json()["detail"]
    assert detail[0]["loc"] == ["body", "settings", "measure_steps"]
    bad_request = {"plan_request": plan_request(train_batch_size=-1)}
    detail = client.post("/v1/jobs", json=bad_request).json()["detail"]
    assert detail[0]["loc"] == ["body", "plan_request", "train_batch_size"]
    assert client.get("/v1/jobs").json()["count"] == 0


def test_list_filters_by_state_and_paginates(client, stored_plan):
    ids = [client.post("/v1/jobs", json={"plan_id": stored_plan}).json()["id"] for _ in range(3)]
    client.post(f"/v1/jobs/{ids[0]}/cancel")
    everything = client.get("/v1/jobs").json()
    assert everything["count"] == 3
    assert [j["id"] for j in everything["data"]] == ids[::-1]
    queued = client.get("/v1/jobs", params={"state": "queued", "limit": 1}).json()
    assert queued["count"] == 2 and [j["id"] for j in queued["data"]] == [ids[2]]
    cancelled = client.get("/v1/jobs", params={"state": "cancelled"}).json()
    assert [j["id"] for j in cancelled["data"]] == [ids[0]]
    assert client.get("/v1/jobs", params={"state": "sleeping"}).status_code == 422
    assert client.get("/v1/jobs", params={"offset": -1}).status_code == 422


def test_cancel_queued_job_then_409(client, queued_job):
    response = client.post(f"/v1/jobs/{queued_job}/cancel")
    assert response.status_code == 200
    job = response.json()
    assert job["state"] == "cancelled" and job["finished_at"] is not None
    again = client.post(f"/v1/jobs/{queued_job}/cancel")
    assert again.status_code == 409
    assert client.get(f"/v1/jobs/{queued_job}").json() == job


def test_unknown_job_is_404(client):
    assert client.get("/v1/jobs/j_nope").status_code == 404
    assert client.post("/v1/jobs/j_nope/cancel").status_code == 404
