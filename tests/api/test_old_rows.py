"""Rows that earlier versions stored read back on every route, over a real `ltd serve`, on
SQLite and on PostgreSQL.

The rows are those versions' own (tests/api/data/old_rows.json, written by their code:
tests/api/data/make_old_rows.py): the first release's plans (no `projection` section) and jobs
(every state; settings in its modes and wider bounds; results with a convergence section), and
the first device profiles (keyed by device, one replaced, one with rates over today's bounds) with
a plan that names one. They are inserted at the previous schema (0002), the database is brought
to the head as a deployment would (`ltd serve` migrates at start), and every route is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.db import Database, migrate
from tests.factories import validation_result
from tests.servers import LtdServer

pytestmark = pytest.mark.slow  # a real server per database

OLD_ROWS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "old_rows.json").read_text()
)
FIRST = OLD_ROWS["first_release"]
PROFILES = OLD_ROWS["device_profiles"]
ADMIN, USER, WORKER = "admin-key-1", "user-key-1", "worker-token-1"
TYPES = {"attempts": sa.Integer, "max_attempts": sa.Integer, "progress": sa.Float}


def _table(name: str, row: dict[str, Any]) -> sa.TableClause:
    columns = [
        sa.column(k, sa.DateTime if k.endswith("_at") else TYPES.get(k, sa.Text)) for k in row
    ]
    return sa.table(name, *columns)


def insert_old_rows(db: Database) -> None:
    """Every row of old_rows.json, as stored (timestamps as naive UTC, as those versions did)."""
    tables = [
        ("plans", FIRST["plans"] + PROFILES["plans"]),
        ("jobs", FIRST["jobs"]),
        ("device_profiles", PROFILES["device_profiles"]),
    ]
    with db.write() as session:
        for name, rows in tables:
            for row in rows:
                values = {
                    k: datetime.fromisoformat(v) if k.endswith("_at") and v else v
                    for k, v in row.items()
                }
                session.execute(sa.insert(_table(name, row)).values(values))


@pytest.fixture
def old_server(database_url: str, live_server: Callable[..., LtdServer]) -> LtdServer:
    """A real `ltd serve` over a database holding the old rows, brought to the head at start."""
    migrate(database_url, "0002")
    db = Database(database_url)
    try:
        insert_old_rows(db)
    finally:
        db.dispose()
    return live_server(
        database_url=database_url,
        worker_token=WORKER,
        env={"LTD_API_KEYS": f"user:{USER}", "LTD_ADMIN_KEYS": f"ops:{ADMIN}"},
    )


def _client(server: LtdServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.request.url, response.text[:2000])
    return response.json() if "json" in response.headers.get("content-type", "") else None


def test_old_plans_read_on_every_route(old_server: LtdServer) -> None:
    with _client(old_server, USER) as http:
        listed = _ok(http.get("/v1/plans", params={"limit": 100}))
        stored = {p["id"] for p in FIRST["plans"] + PROFILES["plans"]}
        assert {p["id"] for p in listed["data"]} == stored and listed["count"] == len(stored)
        for old in FIRST["plans"]:
            plan = _ok(http.get(f"/v1/plans/{old['id']}"))
            document = json.loads(old["plan_json"])
            # As stored, with the section the first release's documents lacked (0004).
            assert plan == {**document, "projection": plan["projection"]}
            assert plan["projection"]["method"] == "flops"
            page = http.get(f"/v1/plans/{old['id']}/report")
            assert page.status_code == 200 and "<svg" in page.text, page.text[:500]
            assert "FLOPs ratio" in page.text
            check = {"request": json.loads(old["request_json"]), "compare_plan_id": old["id"]}
            assert _ok(http.post("/v1/checks", json=check))["compared_to"] == old["id"]
        # The same request today: planned anew (its id hashes today's projection method).
        again = _ok(http.post("/v1/plans", json=json.loads(FIRST["plans"][0]["request_json"])), 201)
        assert again["projection"]["method"] == "step_time_model"


def test_old_jobs_read_and_cancel(old_server: LtdServer) -> None:
    jobs = {j["id"]: j for j in FIRST["jobs"]}
    with _client(old_server, ADMIN) as admin, _client(old_server, USER) as user:
        listed = _ok(admin.get("/v1/jobs", params={"limit": 100}))
        assert listed["count"] == len(jobs)
        for job in listed["data"]:
            old = jobs[job["id"]]
            assert job["owner"] is None  # stored before owners: only admins see it
            assert job["settings"] == json.loads(old["settings_json"])  # as stored ("both", ...)
            assert job["result"] == (json.loads(old["result_json"]) if old["result_json"] else None)
            if old["state"] == "running":  # its lease ran out long ago: queued again, as the
                # next claim will record it
                assert (job["state"], job["worker_id"]) == ("queued", None), job
                assert job["error"] == "lease of attempt 1 expired"
            else:
                assert (job["state"], job["error"]) == (old["state"], old["error"])
                assert job["worker_id"] == old["worker_id"]
            assert _ok(admin.get(f"/v1/jobs/{job['id']}")) == job
            assert user.get(f"/v1/jobs/{job['id']}").status_code == 404
        queued = _ok(admin.get("/v1/jobs", params={"state": "queued"}))
        assert queued["count"] == 2
        assert _ok(user.get("/v1/jobs"))["count"] == 0
        wide = next(j for j in FIRST["jobs"] if j["state"] == "running")
        assert len(json.loads(wide["settings_json"])["dataset"]) > 255  # past today's bound
        assert user.post(f"/v1/jobs/{wide['id']}/cancel").status_code == 404
        cancelled = _ok(admin.post(f"/v1/jobs/{wide['id']}/cancel"))
        assert cancelled["state"] == "cancelled" and cancelled["settings"]["dataset"]
        finished = next(j for j in FIRST["jobs"] if j["state"] == "succeeded")
        assert admin.post(f"/v1/jobs/{finished['id']}/cancel").status_code == 409
        for probe in ("/healthz", "/metrics"):
            assert admin.get(probe).status_code == 200


def test_an_old_queued_job_is_claimed_and_run(old_server: LtdServer) -> None:
    """The first release's queued job of a first-release plan: a worker gets today's plan
    document and its report calibrates the plan; the job whose settings break today's bounds
    fails with the reason instead of stalling the queue."""
    worker = {"Authorization": f"Bearer {WORKER}"}
    with _client(old_server, ADMIN) as admin:
        claim = admin.post("/v1/worker/claim", json={"worker_id": "w"}, headers=worker)
        claimed = _ok(claim)
        queued = next(j for j in FIRST["jobs"] if j["state"] == "queued")
        assert claimed["job"]["id"] == queued["id"] and claimed["plan"]["projection"]
        wide = next(j for j in FIRST["jobs"] if j["state"] == "running")
        skipped = _ok(admin.get(f"/v1/jobs/{wide['id']}"))
        assert skipped["state"] == "failed" and "unreadable" in skipped["error"]
        body = {"lease_id": claimed["lease_id"], "result": validation_result()}
        done = admin.post(f"/v1/worker/jobs/{queued['id']}/complete", json=body, headers=worker)
        assert _ok(done)["state"] == "succeeded"
        plan = _ok(admin.get(f"/v1/plans/{queued['plan_id']}"))
        assert plan["calibrated"]["job_id"] == queued["id"]
        assert admin.get(f"/v1/plans/{queued['plan_id']}/report").status_code == 200


def test_old_device_profiles_read_and_keep_their_ids(old_server: LtdServer) -> None:
    rows = {r["id"]: r for r in PROFILES["device_profiles"]}
    with _client(old_server, USER) as http:
        listed = _ok(http.get("/v1/device-profiles"))
        assert {p["id"] for p in listed["data"]} == set(rows) and listed["count"] == len(rows)
        for profile in listed["data"]:
            assert profile["profile"] == json.loads(rows[profile["id"]]["profile_json"])
            assert _ok(http.get(f"/v1/device-profiles/{profile['id']}")) == profile
        latest = _ok(http.get("/v1/device-profiles", params={"device": "cpu", "dtype": "float32"}))
        (cpu,) = latest["data"]
        assert cpu["profile"]["launch_overhead_us"] == 6.5  # the numbers last stored under it
        # A plan that names the old id: the numbers stored under it, the plan stored then.
        (old_plan,) = PROFILES["plans"]
        request = {
            "model": "gpt2", "train_batch_size": 8, "train_steps": 100,
            "hardware": {"num_gpus": 1, "device_profile": cpu["id"]},
        }  # fmt: skip
        plan = _ok(http.post("/v1/plans", json=request), 201)
        assert plan["id"] == old_plan["id"]
        assert plan == json.loads(old_plan["plan_json"])
        # A profile whose numbers break today's bounds (FLOP/s where TFLOP/s belong) reads, but
        # cannot plan: a 422 that says why, at the field.
        (units,) = [i for i, r in rows.items() if "A10G" in r["device_name"]]
        refused = http.post("/v1/plans", json={**request, "hardware": {"device_profile": units}})
        assert refused.status_code == 422, refused.text
        (detail,) = refused.json()["detail"]
        assert detail["loc"] == ["body", "hardware", "device_profile"]
        assert "earlier version" in detail["msg"] and "attention_tflops" in detail["msg"]
