"""The read cache (`api.cache`): a replica reads its own writes at once, another replica's
writes within LTD_READ_CACHE_SECONDS (past it, one refresh later), and with 0 it caches nothing;
a write drops only its own row's entry, and a plan a replica calibrates is cached as written.
Two apps over one database stand for two replicas of the service."""

from __future__ import annotations

import time
from typing import Any

import pytest

from api.cache import ReadCache
from api.db import Database, migrate, row_key
from api.models import PlanRow

TTL_S = 1.0


@pytest.fixture
def replicas(make_client, settings):
    cached = settings.model_copy(update={"read_cache_seconds": TTL_S})
    return make_client(cached), make_client(cached)


def test_a_replica_reads_its_own_writes_at_once(replicas, queued_job) -> None:
    a, _ = replicas
    assert a.get(f"/v1/jobs/{queued_job}").json()["state"] == "queued"  # now cached
    assert a.post(f"/v1/jobs/{queued_job}/cancel").status_code == 200
    assert a.get(f"/v1/jobs/{queued_job}").json()["state"] == "cancelled"


def test_another_replicas_writes_show_within_the_ttl(replicas, queued_job, stored_plan) -> None:
    a, b = replicas
    assert a.get(f"/v1/jobs/{queued_job}").json()["state"] == "queued"
    written = time.monotonic()
    assert b.post(f"/v1/jobs/{queued_job}/cancel").status_code == 200
    states = []
    while time.monotonic() - written < TTL_S + 0.3:
        states.append(a.get(f"/v1/jobs/{queued_job}").json()["state"])
        time.sleep(0.02)
    assert states[0] == "queued"  # served from a's cache: b's write is not a's
    assert states[-1] == "cancelled"  # within the TTL (and a poll's slack) at the latest
    assert states == sorted(states, key=lambda s: s == "cancelled")  # never back to queued
    assert a.get(f"/v1/plans/{stored_plan}").status_code == 200


def test_no_cache_with_ttl_zero(make_client, settings, queued_job) -> None:
    fresh = settings.model_copy(update={"read_cache_seconds": 0})
    a, b = make_client(fresh), make_client(fresh)
    assert a.get(f"/v1/jobs/{queued_job}").json()["state"] == "queued"
    assert b.post(f"/v1/jobs/{queued_job}/cancel").status_code == 200
    assert a.get(f"/v1/jobs/{queued_job}").json()["state"] == "cancelled"


def test_a_lease_renewed_through_another_replica_never_shows_lapsed(
    replicas, queued_job, worker_headers, clock
) -> None:
    """Replica a cached the job while running; the worker renews its lease through replica b.
    Past the lease a cached, a's view re-reads rather than show the job requeued."""
    a, b = replicas
    claimed = b.post("/v1/worker/claim", json={"worker_id": "w"}, headers=worker_headers).json()
    assert a.get(f"/v1/jobs/{queued_job}").json()["state"] == "running"  # cached in a
    clock.advance(20)
    beat = {"lease_id": claimed["lease_id"], "progress": 0.5}
    heartbeat = f"/v1/worker/jobs/{queued_job}/heartbeat"
    assert b.post(heartbeat, json=beat, headers=worker_headers).status_code == 200
    clock.advance(20)  # past the first lease (30 s), inside the renewed one
    job = a.get(f"/v1/jobs/{queued_job}").json()
    assert (job["state"], job["progress"]) == ("running", 0.5)


def test_the_health_probe_opens_again_after_close(settings) -> None:
    import asyncio

    from api.health import HealthProbe

    probe = HealthProbe(settings.database_url, max_age_s=0)
    assert asyncio.run(probe.check()) is True
    probe.close()
    assert asyncio.run(probe.check()) is True  # a second lifespan of the same app
    probe.close()


@pytest.fixture
def long_lived(make_client, settings):
    """Two replicas whose entries outlive the test (60 s): what a replica shows comes from its
    cache unless its own writes dropped or replaced it."""
    cached = settings.model_copy(update={"read_cache_seconds": 60})
    return make_client(cached), make_client(cached)


def test_a_write_drops_only_its_own_rows_entry(long_lived, client, stored_plan) -> None:
    """a caches job x; b cancels x; a then writes another row (cancels job y). a still shows x
    queued: its write to y left x's entry be (a cache dropped whole at each write would read x
    again and show it cancelled)."""
    a, b = long_lived
    x, y = (client.post("/v1/jobs", json={"plan_id": stored_plan}).json()["id"] for _ in "xy")
    assert a.get(f"/v1/jobs/{x}").json()["state"] == "queued"  # now cached in a
    assert b.post(f"/v1/jobs/{x}/cancel").status_code == 200
    assert a.post(f"/v1/jobs/{y}/cancel").status_code == 200
    assert a.get(f"/v1/jobs/{x}").json()["state"] == "queued"  # b's write is not a's
    assert a.get(f"/v1/jobs/{y}").json()["state"] == "cancelled"  # a's own write, at once


def _complete(replica: Any, headers: dict[str, str], result: dict[str, Any]) -> str:
    claim = replica.post("/v1/worker/claim", json={"worker_id": "w"}, headers=headers).json()
    job = claim["job"]["id"]
    body = {"lease_id": claim["lease_id"], "result": result}
    done = replica.post(f"/v1/worker/jobs/{job}/complete", json=body, headers=headers)
    assert done.status_code == 200, done.text
    return str(job)


def test_a_plan_calibrated_here_is_cached_as_written(
    long_lived, client, stored_plan, worker_headers, validation_result
) -> None:
    """a completes job 1 (the plan is calibrated by it and, written whole, cached in a as
    committed); b completes job 2 of the same plan (calibrated by it in the database). Within
    the TTL a shows job 1's calibration: the document it wrote, not a read of the database."""
    a, b = long_lived
    for _ in range(2):
        client.post("/v1/jobs", json={"plan_id": stored_plan})
    first = _complete(a, worker_headers, validation_result())
    second = _complete(b, worker_headers, validation_result(measured_wall_clock_saving=0.1))
    assert b.get(f"/v1/plans/{stored_plan}").json()["calibrated"]["job_id"] == second
    assert a.get(f"/v1/plans/{stored_plan}").json()["calibrated"]["job_id"] == first


def test_past_the_ttl_a_read_answers_while_it_refreshes(replicas, queued_job) -> None:
    """Between one and two TTLs, the first read answers from the entry and refreshes it in the
    background; the reads after it show the other replica's write."""
    a, b = replicas
    assert a.get(f"/v1/jobs/{queued_job}").json()["state"] == "queued"
    cached_at = time.monotonic()
    assert b.post(f"/v1/jobs/{queued_job}/cancel").status_code == 200
    time.sleep(TTL_S * 1.2)
    assert a.get(f"/v1/jobs/{queued_job}").json()["state"] == "queued"  # stale, refreshing
    assert time.monotonic() - cached_at < 2 * TTL_S  # (else the read above would have waited)
    states = []
    for _ in range(50):  # the refresh is one primary-key read: well under 0.5 s
        states.append(a.get(f"/v1/jobs/{queued_job}").json()["state"])
        if states[-1] == "cancelled":
            break
        time.sleep(0.01)
    assert states[-1] == "cancelled", states


def test_a_read_that_began_before_a_write_of_its_row_is_not_kept(tmp_path) -> None:
    """Against a real SQLite file: an entry read at generation g is dropped when its row is
    written after g, kept when another row is; a row written whole by `set_plan_json` is
    cached as committed (write-through)."""
    from api import crud

    url = f"sqlite:///{tmp_path / 'cache.db'}"
    migrate(url)
    db = Database(url)
    cache = ReadCache(db, ttl_s=60)
    try:
        with db.write() as session:
            for plan_id in ("p_1", "p_2"):
                crud.insert_plan(
                    session, plan_id=plan_id, request_json="{}", plan_json="{}", now=_now()
                )
        read_at = db.generation  # two reads begin...
        with db.write() as session:  # ...and p_1 is written before they are kept
            session.get(PlanRow, "p_1").plan_json = '{"v": 2}'  # type: ignore[union-attr]
        cache.put(row_key("plans", "p_1"), "{}", generation=read_at)
        cache.put(row_key("plans", "p_2"), "{}", generation=read_at)
        assert cache.get(row_key("plans", "p_1")) is None  # read before its row's write
        assert cache.get(row_key("plans", "p_2")) == "{}"
        with db.write() as session:
            crud.set_plan_json(session, plan_id="p_2", plan_json='{"v": 3}')
        assert cache.get(row_key("plans", "p_2")) == '{"v": 3}'  # as committed
        with pytest.raises(RuntimeError), db.write() as session:  # rolled back: not cached
            crud.set_plan_json(session, plan_id="p_2", plan_json='{"v": 4}')
            raise RuntimeError
        assert cache.get(row_key("plans", "p_2")) is None  # dropped: its write did not commit
    finally:
        db.dispose()


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_writes_of_one_row_that_overlap_hand_neither_document_on(tmp_path) -> None:
    """Two writes of a plan overlap and end in the other order than they committed: neither
    document is known to be the committed one, so the one that ends second is not written
    through, and its row's entry is dropped (the next read goes to the database)."""
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    migrate(url)
    db = Database(url)
    try:
        key = row_key("plans", "p_1")
        began = db.generation  # write A begins...
        other, alone = db._ended({key: '{"by": "B"}'}, began)  # ...B begins and ends first
        assert alone == [key]
        ended, alone = db._ended({key: '{"by": "A"}'}, began)  # then A ends
        assert alone == [] and db.written_at(key) == ended > other
    finally:
        db.dispose()
