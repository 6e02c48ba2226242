"""`ltd serve` (`ltd.serve`): the service as a real process, with and without the local worker
that `--with-worker` spawns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ltd import serve as ltd_serve
from ltd.serve import LocalWorker, local_api_url, stop_worker, worker_command
from tests.servers import LtdServer


def test_worker_command_and_url() -> None:
    assert worker_command("http://127.0.0.1:8000") == [
        sys.executable,
        "-m",
        "ltd",
        "worker",
        "--api",
        "http://127.0.0.1:8000",
    ]
    assert local_api_url("0.0.0.0", 80) == "http://127.0.0.1:80"
    assert local_api_url("::", 80) == "http://[::1]:80"
    assert local_api_url("10.0.0.2", 8000) == "http://10.0.0.2:8000"


def test_stop_worker_terminates_then_kills() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop_worker(proc, wait_s=5) != 0
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    assert stop_worker(stubborn, wait_s=0.5) == -signal.SIGKILL
    stubborn.stdout.close()


def test_a_local_worker_is_never_started_once_the_server_has_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[tuple[str, str]] = []
    monkeypatch.setattr(ltd_serve, "start_worker", lambda url, token: started.append((url, token)))
    worker = LocalWorker("http://127.0.0.1:1", "t")
    assert worker.stop() is None  # the server stopped before it listened
    worker.start()  # the listening callback, late
    assert started == []


# A stand-in for `python -m ltd`: the real CLI, whose local worker records its environment and
# sleeps instead of claiming jobs.
STAND_IN = """
import sys
import ltd.serve
from ltd.cli import main
record = (
    "import os, time; open({seen!r}, 'w').write(os.environ['LTD_WORKER_TOKEN'] + ' ' + "
    "os.environ['LTD_API_URL'] + ' ' + str(os.getpid())); time.sleep(120)"
)
ltd.serve.worker_command = lambda url: [sys.executable, "-c", record]
sys.exit(main(sys.argv[1:]))
"""


def _recorded(seen: Path) -> list[str]:
    deadline = time.monotonic() + 20
    while not (seen.exists() and seen.read_text().count(" ") == 2):
        assert time.monotonic() < deadline, "worker never started"
        time.sleep(0.1)
    return seen.read_text().split(" ")


@pytest.mark.slow
@pytest.mark.parametrize("configured", [None, "a-configured-worker-token"])
def test_serve_with_a_local_worker(
    tmp_path: Path, live_server: Callable[..., LtdServer], configured: str | None
) -> None:
    """The spawned worker gets the configured token, or a generated one, that the service
    accepts; both stop on SIGTERM, the server exits 0, and the token is never printed."""
    seen = tmp_path / "worker-env.txt"
    program = [sys.executable, "-c", STAND_IN.format(seen=str(seen))]
    server = live_server("--with-worker", worker_token=configured, program=program)
    token, api_url, pid = _recorded(seen)
    assert api_url == server.url
    assert (token == configured) if configured else (len(token) >= 32)
    claim = httpx.post(
        f"{server.url}/v1/worker/claim",
        json={"worker_id": "w"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert claim.status_code == 204
    status, _ = server.stop()
    assert status == 0, server.tail()  # a requested, clean shutdown
    assert token not in server.log.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
