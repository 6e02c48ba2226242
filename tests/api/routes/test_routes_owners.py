"""Owners: a job belongs to the owner of the key that submitted it; another key gets 404 for it
and lists only its own; admin keys see and cancel every job; plans stay shared. On SQLite and
PostgreSQL (tests/e2e/test_access.py does the same over a real `ltd serve`)."""

from __future__ import annotations

import pytest

from api.settings import Settings, bare_key_owner

ALICE, ALICE_NEW, BOB, BARE, ADMIN = "k-alice", "k-alice-2", "k-bob", "k-bare", "k-admin"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(make_client, database_url):
    return make_client(
        Settings(
            database_url=database_url,
            worker_token="wt",
            api_keys=f"alice:{ALICE},alice:{ALICE_NEW},bob:{BOB},{BARE}",
            admin_keys=f"ops:{ADMIN}",
        )
    )


def submit(client, key: str, plan_request) -> dict:
    response = client.post("/v1/jobs", json={"plan_request": plan_request()}, headers=auth(key))
    assert response.status_code == 202, response.text
    return response.json()


def test_a_job_is_its_owners(keyed, plan_request):
    job = submit(keyed, ALICE, plan_request)
    assert job["owner"] == "alice"
    path = f"/v1/jobs/{job['id']}"
    assert keyed.get(path, headers=auth(ALICE)).json() == job
    assert keyed.get(path, headers=auth(ALICE_NEW)).json() == job  # another key of alice's
    # Bob: as if it did not exist, on read, list and cancel; nothing changes.
    missing = keyed.get(path, headers=auth(BOB))
    assert missing.status_code == 404 and missing.json() == keyed.get(
        "/v1/jobs/j_unknown", headers=auth(BOB)
    ).json() | {"detail": f"job {job['id']!r} not found"}
    assert keyed.get("/v1/jobs", headers=auth(BOB)).json() == {"data": [], "count": 0}
    assert keyed.post(f"{path}/cancel", headers=auth(BOB)).status_code == 404
    assert keyed.get(path, headers=auth(ALICE)).json()["state"] == "queued"
    # The plan is shared: a function of its request.
    assert keyed.get(f"/v1/plans/{job['plan_id']}", headers=auth(BOB)).status_code == 200


def test_lists_show_only_the_callers_jobs(keyed, plan_request):
    alices = [submit(keyed, ALICE, plan_request)["id"] for _ in range(2)]
    bobs = [submit(keyed, BOB, plan_request)["id"]]
    bare = [submit(keyed, BARE, plan_request)["id"]]
    for key, mine in ((ALICE, alices), (BOB, bobs), (BARE, bare)):
        listed = keyed.get("/v1/jobs", headers=auth(key)).json()
        assert sorted(j["id"] for j in listed["data"]) == sorted(mine) and listed["count"] == len(
            mine
        )
        queued = keyed.get("/v1/jobs", params={"state": "queued"}, headers=auth(key)).json()
        assert queued["count"] == len(mine)
    assert keyed.get(f"/v1/jobs/{bare[0]}", headers=auth(BARE)).json()["owner"] == (
        bare_key_owner(BARE)
    )
    everything = keyed.get("/v1/jobs", headers=auth(ADMIN)).json()
    assert everything["count"] == 4
    assert {j["owner"] for j in everything["data"]} == {"alice", "bob", bare_key_owner(BARE)}


def test_admin_sees_and_cancels_every_job(keyed, plan_request):
    job = submit(keyed, ALICE, plan_request)
    assert keyed.get(f"/v1/jobs/{job['id']}", headers=auth(ADMIN)).json() == job
    cancelled = keyed.post(f"/v1/jobs/{job['id']}/cancel", headers=auth(ADMIN))
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert keyed.get(f"/v1/jobs/{job['id']}", headers=auth(ALICE)).json()["state"] == "cancelled"
    mine = submit(keyed, ADMIN, plan_request)
    assert mine["owner"] == "ops"
    assert keyed.get(f"/v1/jobs/{mine['id']}", headers=auth(ALICE)).status_code == 404


def test_worker_messages_reach_only_the_owner_and_admins(keyed, plan_request):
    """Progress messages, tracebacks and the worker's host name are in the job: only its owner
    and admins read them."""
    job = submit(keyed, ALICE, plan_request)
    worker = auth("wt")
    claim = keyed.post("/v1/worker/claim", json={"worker_id": "gpu-7.internal"}, headers=worker)
    lease = claim.json()["lease_id"]
    secret = "Traceback: /home/alice/secret-project/train.py line 12"
    failed = keyed.post(
        f"/v1/worker/jobs/{job['id']}/fail", json={"lease_id": lease, "error": secret},
        headers=worker,
    )  # fmt: skip
    assert failed.status_code == 200, failed.text
    for key in (ALICE, ADMIN):
        shown = keyed.get(f"/v1/jobs/{job['id']}", headers=auth(key)).json()
        assert shown["error"] == secret and shown["worker_id"] == "gpu-7.internal"
    for path in (f"/v1/jobs/{job['id']}", "/v1/jobs", "/v1/jobs?state=failed"):
        assert "secret-project" not in keyed.get(path, headers=auth(BOB)).text
        assert "gpu-7" not in keyed.get(path, headers=auth(BOB)).text


def test_an_open_service_records_no_owner_and_shows_every_job(client, plan_request):
    """Without keys nobody is told apart: jobs have no owner and every caller sees them all.
    Once keys are set, those jobs are the admins' alone."""
    job = submit(client, "anything", plan_request)
    assert job["owner"] is None
    assert client.get(f"/v1/jobs/{job['id']}").json() == job
    assert client.get("/v1/jobs").json()["count"] == 1


def test_ownerless_jobs_are_the_admins_once_keys_are_set(make_client, database_url, plan_request):
    open_service = make_client(Settings(database_url=database_url))
    job = submit(open_service, "none", plan_request)
    keyed = make_client(
        Settings(database_url=database_url, api_keys=f"alice:{ALICE}", admin_keys=f"ops:{ADMIN}")
    )
    assert keyed.get(f"/v1/jobs/{job['id']}", headers=auth(ALICE)).status_code == 404
    assert keyed.get("/v1/jobs", headers=auth(ALICE)).json()["count"] == 0
    assert keyed.get(f"/v1/jobs/{job['id']}", headers=auth(ADMIN)).status_code == 200


def test_metrics_key(make_client, database_url, queued_job):
    guarded = make_client(Settings(database_url=database_url, metrics_key="k-metrics"))
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers=auth("k-wrong")).status_code == 401
    scraped = guarded.get("/metrics", headers=auth("k-metrics"))
    assert scraped.status_code == 200 and 'ltd_jobs{state="queued"} 1.0' in scraped.text
    assert "ltd_database_up 1.0" in scraped.text
    assert guarded.get("/healthz").status_code == 200  # probes stay open
