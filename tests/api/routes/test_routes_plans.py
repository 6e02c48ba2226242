"""`/v1/plans`: create, idempotent id, read, paginate; bad bodies are 422s naming the field."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from planner import plan


def test_create_returns_the_planners_document(client, plan_request):
    response = client.post("/v1/plans", json=plan_request())
    assert response.status_code == 201
    body = response.json()
    expected = plan(plan_request())
    assert body["id"] == expected.id
    assert body["savings"] == expected.savings.model_dump()
    assert body["calibrated"] is None
    assert response.headers["location"] == f"/v1/plans/{body['id']}"


def test_same_request_returns_the_stored_plan(client, plan_request, monkeypatch):
    first = client.post("/v1/plans", json=plan_request()).json()

    def must_not_recompute(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a stored plan was recomputed")

    monkeypatch.setattr("api.service.plan", must_not_recompute)
    # The same run in another spelling: the preset's name, explicit hardware defaults.
    again = client.post("/v1/plans", json=plan_request(hardware={"gpu": "a100"}))
    assert again.status_code == 201
    assert again.json() == first
    assert client.get("/v1/plans").json()["count"] == 1


def test_get_by_id_and_unknown_id(client, stored_plan):
    response = client.get(f"/v1/plans/{stored_plan}")
    assert response.status_code == 200
    assert response.json()["id"] == stored_plan
    missing = client.get("/v1/plans/p_doesnotexist")
    assert missing.status_code == 404
    assert "p_doesnotexist" in missing.json()["detail"]


def test_list_is_paginated_newest_first(client, plan_request):
    ids = [
        client.post("/v1/plans", json=plan_request(train_steps=n)).json()["id"]
        for n in (10, 20, 30)
    ]
    page = client.get("/v1/plans", params={"limit": 2, "offset": 0}).json()
    assert page["count"] == 3
    assert [p["id"] for p in page["data"]] == ids[::-1][:2]
    rest = client.get("/v1/plans", params={"limit": 2, "offset": 2}).json()
    assert [p["id"] for p in rest["data"]] == ids[:1]
    assert client.get("/v1/plans", params={"limit": 0}).status_code == 422


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"train_steps": None, "train_tokens": -5}, ["body", "train_tokens"]),
        ({"train_batch_size": 0}, ["body", "train_batch_size"]),
        ({"model": "gpt-unknown"}, ["body", "model"]),
        ({"hardware": {"gpu": "tpu-v9"}}, ["body", "hardware", "gpu"]),
        (
            {"random_ltd": {"min_value": 512, "max_value": 128, "require_steps": 10}},
            ["body", "random_ltd", "min_value"],
        ),
        ({"train_tokens": 10**9}, ["body", "train_tokens"]),
        (
            {"random_ltd": {"min_value": 16, "max_value": 4096, "require_steps": 10}},
            ["body", "random_ltd", "max_value"],
        ),
        ({"surprise": 1}, ["body", "surprise"]),
    ],
)
def test_bad_request_is_422_naming_the_field(client, plan_request, overrides, loc):
    body = {k: v for k, v in plan_request(**overrides).items() if v is not None}
    response = client.post("/v1/plans", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"] == loc
    assert detail[0]["msg"]
    assert client.get("/v1/plans").json()["count"] == 0  # nothing stored


def test_min_value_above_max_value_names_both(client, plan_request):
    body = plan_request(random_ltd={"min_value": 512, "max_value": 128, "require_steps": 10})
    msg = client.post("/v1/plans", json=body).json()["detail"][0]["msg"]
    assert "512" in msg and "max_value" in msg


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'"text"', b"null"])
def test_malformed_bodies_are_422(client, raw):
    response = client.post("/v1/plans", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_concurrent_first_requests_store_one_plan(client, plan_request):
    body = plan_request(train_steps=777)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: client.post("/v1/plans", json=body), range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert client.get("/v1/plans").json()["count"] == 1
