"""`ltd serve`: the service (`api.server.serve`), and with `--with-worker` a local worker process.

`ltd serve --with-worker` is the one-laptop setup: when LTD_WORKER_TOKEN is unset, a random
token is generated for this run, given to the service (in its settings) and to the worker it
spawns (`python -m ltd worker --api URL`, through the worker's environment), and never printed.
The worker starts once the server listens; when the server stops it is sent SIGTERM (it releases
its job), and killed if it lingers.

The CLI spawns the worker, not `api`: the service never starts the command line (DESIGN.md:
`api` imports neither `worker` nor the CLI, nor runs them).
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading

from pydantic import SecretStr

from api.server import check_exposure
from api.server import serve as serve_api
from api.settings import get_settings

log = logging.getLogger("ltd")

WORKER_STOP_WAIT_S = 30.0  # grace period for the worker after SIGTERM


def worker_command(api_url: str) -> list[str]:
    return [sys.executable, "-m", "ltd", "worker", "--api", api_url]


def local_api_url(host: str, port: int) -> str:
    """The URL a local worker uses; a wildcard bind address is reached on loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def start_worker(api_url: str, token: str) -> subprocess.Popen[bytes]:
    """Spawn the local worker with the worker token (and API URL) in its environment."""
    env = {**os.environ, "LTD_WORKER_TOKEN": token, "LTD_API_URL": api_url}
    proc = subprocess.Popen(worker_command(api_url), env=env)
    log.info("local worker started (pid %d) against %s", proc.pid, api_url)
    return proc


def stop_worker(proc: subprocess.Popen[bytes], wait_s: float = WORKER_STOP_WAIT_S) -> int:
    """SIGTERM the worker, wait up to `wait_s` seconds, then kill it. Returns its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


class LocalWorker:
    """The local worker of one `ltd serve`: `start()` once the server listens, `stop()` once it
    has stopped; after `stop()`, `start()` starts nothing (the two may race at shutdown)."""

    def __init__(self, api_url: str, token: str) -> None:
        self.api_url, self._token = api_url, token
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def start(self) -> None:
        with self._lock:
            if not self._stopped and self._proc is None:
                self._proc = start_worker(self.api_url, self._token)

    def stop(self) -> int | None:
        """Stop the worker if one started: its exit code (None: none was started)."""
        with self._lock:
            self._stopped = True
            proc = self._proc
        return None if proc is None else stop_worker(proc)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    with_worker: bool = False,
    insecure_open: bool = False,
) -> None:
    """Run the service until SIGINT/SIGTERM (then return: exit 0); `with_worker` adds a local
    worker, under the configured worker token or one generated for this run. Beyond loopback
    without keys it refuses to start (exit 2) unless `insecure_open` (`api.server`)."""
    settings = get_settings()
    if not with_worker:
        serve_api(host, port, settings=settings, insecure_open=insecure_open)
        return
    check_exposure(host, settings, insecure_open=insecure_open)  # before a worker is made
    configured = settings.worker_token
    token = configured.get_secret_value() if configured else secrets.token_urlsafe(32)
    worker = LocalWorker(local_api_url(host, port), token)
    try:
        serve_api(
            host,
            port,
            settings=settings.model_copy(update={"worker_token": SecretStr(token)}),
            on_listening=worker.start,
            insecure_open=insecure_open,
        )
    finally:
        worker.stop()
