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
