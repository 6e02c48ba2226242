"""The read cache (`api.cache`): a replica reads its own writes at once, another replica's
writes within LTD_READ_CACHE_SECONDS, and with 0 it caches nothing. Two apps over one database
stand for two replicas of the service."""

from __future__ import annotations

import time

import pytest

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
