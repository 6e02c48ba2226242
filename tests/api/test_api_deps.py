"""Access control: the worker token on worker endpoints, API keys on the rest of /v1."""

from __future__ import annotations

import logging

import pytest

from api.settings import Settings

CLAIM = "/v1/worker/claim"


def test_worker_endpoints_need_the_worker_token(client, worker_headers):
    body = {"worker_id": "w"}
    assert client.post(CLAIM, json=body).status_code == 401
    wrong = client.post(CLAIM, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    basic = client.post(CLAIM, json=body, headers={"Authorization": "Basic dzp3"})
    assert basic.status_code == 401
    assert client.post(CLAIM, json=body, headers=worker_headers).status_code == 204
    report = client.post("/v1/worker/jobs/j_x/heartbeat", json={"lease_id": "l", "progress": 0})
    assert report.status_code == 401


def test_worker_endpoints_off_without_a_token(make_client, database_url):
    client = make_client(Settings(database_url=database_url))
    response = client.post(
        CLAIM, json={"worker_id": "w"}, headers={"Authorization": "Bearer anything"}
    )
    assert response.status_code == 503
    assert "LTD_WORKER_TOKEN" in response.json()["detail"]


@pytest.fixture
def keyed_client(make_client, database_url):
    return make_client(
        Settings(database_url=database_url, worker_token="wt", api_keys="key-one, key-two")
    )


def test_api_keys_guard_v1(keyed_client, plan_request):
    assert keyed_client.post("/v1/plans", json=plan_request()).status_code == 401
    assert keyed_client.get("/v1/jobs").status_code == 401
    assert keyed_client.get("/v1/jobs", headers={"X-API-Key": "key-three"}).status_code == 401
    bearer = {"Authorization": "Bearer key-two"}
    assert keyed_client.post("/v1/plans", json=plan_request(), headers=bearer).status_code == 201
    assert keyed_client.get("/v1/plans", headers={"X-API-Key": "key-one"}).status_code == 200
    checks = keyed_client.post("/v1/checks", json={"request": plan_request()}, headers=bearer)
    assert checks.status_code == 200


def test_api_keys_leave_probes_open_and_worker_on_its_token(keyed_client):
    assert keyed_client.get("/healthz").status_code == 200
    assert keyed_client.get("/metrics").status_code == 200
    with_key = keyed_client.post(
        CLAIM, json={"worker_id": "w"}, headers={"Authorization": "Bearer key-one"}
    )
    assert with_key.status_code == 401
    with_token = keyed_client.post(
        CLAIM, json={"worker_id": "w"}, headers={"Authorization": "Bearer wt"}
    )
    assert with_token.status_code == 204


def test_tokens_are_never_logged(keyed_client, caplog):
    caplog.set_level(logging.DEBUG)
    keyed_client.get("/v1/jobs", headers={"Authorization": "Bearer secret-guess-123"})
    keyed_client.get("/v1/jobs", headers={"X-API-Key": "key-one"})
    keyed_client.post(CLAIM, json={"worker_id": "w"}, headers={"Authorization": "Bearer wt"})
    assert "secret-guess-123" not in caplog.text and "key-one" not in caplog.text
