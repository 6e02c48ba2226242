"""`/healthz`, `/metrics` and the OpenAPI docs."""

from __future__ import annotations

from api.settings import Settings


def test_healthz_checks_the_database(client):
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_is_gone(make_client, tmp_path):
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'ltd.db'}"
    client = make_client(Settings(database_url=url, migrate_on_start=False))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_metrics_by_route_template_and_job_state(client, queued_job):
    client.get(f"/v1/jobs/{queued_job}")
    client.get("/v1/jobs/j_unknown")
    client.get("/no/such/path")
    text = client.get("/metrics").text
    assert (
        'ltd_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="200"} 1.0' in text
    )
    assert 'route="/v1/jobs/{job_id}",status="404"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert queued_job not in text
    assert (
        'ltd_http_request_duration_seconds_bucket{le="0.1",method="GET",'
        'route="/v1/jobs/{job_id}"}' in text
    )
    assert 'ltd_jobs{state="queued"} 1.0' in text
    assert 'ltd_jobs{state="running"} 0.0' in text
    assert "ltd_queue_depth 1.0" in text


def test_openapi_documents_every_endpoint_with_examples(client):
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/v1/plans",
        "/v1/plans/{plan_id}",
        "/v1/checks",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/worker/claim",
        "/v1/worker/jobs/{job_id}/heartbeat",
        "/v1/worker/jobs/{job_id}/complete",
        "/v1/worker/jobs/{job_id}/fail",
        "/v1/worker/jobs/{job_id}/release",
        "/healthz",
        "/metrics",
    } <= paths
    create = schema["paths"]["/v1/plans"]["post"]
    assert "paper" in create["requestBody"]["content"]["application/json"]["examples"]
    assert client.get("/docs").status_code == 200
