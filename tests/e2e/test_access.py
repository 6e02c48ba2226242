"""Owners and binding over real processes (`ltd serve`), on SQLite and PostgreSQL: a key's jobs
are invisible to another key, which cannot cancel them (404); an admin key sees and cancels
them; two profiles of one device get two ids whose numbers never change; and `ltd serve` will not
listen beyond loopback without keys unless told `--insecure-open`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import postgres_url  # noqa: F401 (a fixture)
from tests.factories import tiny_plan_request
from tests.servers import LTD, LtdServer, free_port, ltd_env

pytestmark = pytest.mark.slow

KEYS = {"LTD_API_KEYS": "alice:k-alice,bob:k-bob", "LTD_ADMIN_KEYS": "ops:k-ops"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, live_server: Callable[..., LtdServer]
) -> LtdServer:
    """A real `ltd serve` with keys for alice, bob and an admin, on SQLite or PostgreSQL."""
    url = (
        f"sqlite:///{tmp_path / 'ltd.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    return live_server(database_url=url, worker_token="wt", env=KEYS)


def as_(server: LtdServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30)


def test_a_keys_job_is_invisible_to_another_key_and_the_admins_to_cancel(
    served: LtdServer,
) -> None:
    with as_(served, "k-alice") as alice, as_(served, "k-bob") as bob, as_(served, "k-ops") as ops:
        body = {"plan_request": tiny_plan_request(), "settings": {"mode": "throughput"}}
        created = alice.post("/v1/jobs", json=body)
        assert created.status_code == 202, created.text
        job = created.json()
        path = f"/v1/jobs/{job['id']}"
        assert job["owner"] == "alice"
        # Bob: 404 on read and cancel, an empty list; the job is untouched.
        assert bob.get(path).status_code == 404
        assert bob.post(f"{path}/cancel").status_code == 404
        assert bob.get("/v1/jobs").json() == {"data": [], "count": 0}
        assert alice.get(path).json()["state"] == "queued"
        assert [j["id"] for j in alice.get("/v1/jobs").json()["data"]] == [job["id"]]
        # Plans are shared.
        assert bob.get(f"/v1/plans/{job['plan_id']}").status_code == 200
        # The admin sees it and cancels it.
        assert ops.get(path).json()["owner"] == "alice"
        assert [j["id"] for j in ops.get("/v1/jobs").json()["data"]] == [job["id"]]
        cancelled = ops.post(f"{path}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert alice.get(path).json()["state"] == "cancelled"
        # No key, a wrong key: 401.
        assert httpx.get(f"{served.url}/v1/jobs").status_code == 401
        assert httpx.get(f"{served.url}{path}", headers={"X-API-Key": "k-eve"}).status_code == 401


def profile(launch_us: float) -> dict[str, Any]:
    return {
        "device_name": "NVIDIA H100 80GB HBM3", "dtype": "bfloat16", "torch_version": "2.13.0",
        "source": "measured by ltd profile", "peak_tflops": 989.0,
        "matmul_rows": [64, 65536], "matmul_widths": [1024, 16384],
        "matmul_tflops": [[120.0, 400.0], [500.0, 700.0]],
        "attention_lengths": [128, 8192], "attention_tflops": [90.0, 450.0],
        "memory_gbps": 3000.0, "launch_overhead_us": launch_us, "async_launch": True,
    }  # fmt: skip


def test_two_profiles_of_one_device_get_two_ids_whose_numbers_never_change(
    served: LtdServer,
) -> None:
    with as_(served, "k-alice") as alice, as_(served, "k-bob") as bob:
        first = alice.post("/v1/device-profiles", json=profile(8.0))
        assert first.status_code == 201, first.text
        request = {**tiny_plan_request(), "hardware": {"device_profile": first.json()["id"]}}
        plan = alice.post("/v1/plans", json=request).json()
        second = bob.post("/v1/device-profiles", json=profile(12.0))
        assert second.status_code == 201, second.text
        ids = first.json()["id"], second.json()["id"]
        assert ids[0] != ids[1]
        for key_id, launch in zip(ids, (8.0, 12.0), strict=True):
            stored = bob.get(f"/v1/device-profiles/{key_id}").json()
            assert stored["profile"]["launch_overhead_us"] == launch
        latest = bob.get(
            "/v1/device-profiles",
            params={"device": "NVIDIA H100 80GB HBM3", "dtype": "bfloat16", "limit": 1},
        ).json()
        assert [p["id"] for p in latest["data"]] == [ids[1]] and latest["count"] == 2
        # The plan that named the first id: the same plan, the same numbers.
        assert alice.post("/v1/plans", json=request).json() == plan
        assert plan["projection"]["device_profile_id"] == ids[0]


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`ltd serve *args` expected to exit by itself (a refusal), within a minute."""
    return subprocess.run(
        [*LTD, "serve", "--port", str(free_port()), *args],
        cwd=tmp_path, env=ltd_env(env), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("extra", [(), ("--with-worker",)])
def test_serve_beyond_loopback_without_keys_exits_2(tmp_path: Path, extra: tuple[str, ...]) -> None:
    done = _serve(tmp_path, "--host", "0.0.0.0", *extra)
    assert done.returncode == 2, (done.stdout, done.stderr)
    message = done.stderr
    assert "ltd serve: error: --host:" in message, message
    for named in ("0.0.0.0", "LTD_API_KEYS", "--insecure-open", "127.0.0.1"):
        assert named in message, message
    assert not (tmp_path / "ltd.db").exists()  # refused before touching anything
    assert "local worker started" not in done.stdout + message


def test_serve_beyond_loopback_with_keys_or_insecure_open(
    tmp_path: Path, live_server: Callable[..., LtdServer]
) -> None:
    keyed = live_server("--host", "0.0.0.0", env={"LTD_API_KEYS": "ci:k-ci"})
    assert httpx.get(f"{keyed.url}/v1/jobs").status_code == 401
    assert "WITHOUT API KEYS" not in keyed.tail()
    open_ = live_server("--host", "0.0.0.0", "--insecure-open", cwd=tmp_path)
    assert httpx.get(f"{open_.url}/v1/jobs").status_code == 200
    assert "WITHOUT API KEYS (--insecure-open)" in open_.tail()
    local = live_server()  # loopback without keys: open, as ever, with no warning
    assert httpx.get(f"{local.url}/v1/jobs").status_code == 200
    assert "WITHOUT API KEYS" not in local.tail()
