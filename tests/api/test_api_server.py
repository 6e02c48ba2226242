"""`api.server.serve`: a real uvicorn process, with and without the local worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from api.server import local_api_url, stop_worker, worker_command
from tests.servers import free_port, wait_healthy


def test_worker_command_and_url():
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


def test_stop_worker_terminates_then_kills():
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


@pytest.mark.slow
def test_serve_with_a_local_worker(tmp_path: Path):
    """The spawned worker gets a generated token that the service accepts; both stop on
    SIGTERM. (The worker command is replaced by a stand-in that records its environment.)"""
    port, seen = free_port(), tmp_path / "worker-env.txt"
    stand_in = (
        f"import os, time; open({str(seen)!r}, 'w').write("
        "os.environ['LTD_WORKER_TOKEN'] + ' ' + os.environ['LTD_API_URL'] + ' ' + "
        "str(os.getpid())); time.sleep(120)"
    )
    script = textwrap.dedent(f"""
        import sys
        import api.server as server
        server.worker_command = lambda url: [sys.executable, "-c", {stand_in!r}]
        server.serve("127.0.0.1", {port}, with_worker=True)
    """)
    env = {k: v for k, v in os.environ.items() if k != "LTD_WORKER_TOKEN"}
    env["LTD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'ltd.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        deadline = time.monotonic() + 20
        while not (seen.exists() and seen.read_text().count(" ") == 2):
            assert time.monotonic() < deadline, "worker never started"
            time.sleep(0.1)
        token, api_url, pid = seen.read_text().split(" ")
        assert api_url == url and len(token) >= 32
        claim = httpx.post(
            f"{url}/v1/worker/claim",
            json={"worker_id": "w"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert claim.status_code == 204
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr  # a requested, clean shutdown
        assert token.encode() not in stderr
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
