"""`serve()`: migrate, then run the app under uvicorn; optionally with a local worker process.

`ltd serve --with-worker` is the one-laptop setup: when LTD_WORKER_TOKEN is unset, a random
token is generated for this run, given to the service and to the worker it spawns
(`python -m ltd worker --api URL`) through the environment, and never printed. The worker is
sent SIGTERM when the server stops (it releases its job), and killed if it lingers.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

import uvicorn

from api.db import migrate
from api.main import create_app
from api.settings import get_settings

log = logging.getLogger("api")

WORKER_START_WAIT_S = 60.0  # how long to wait for the server to listen before giving up
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


def start_worker(
    api_url: str,
    token: str,
    command: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Spawn the local worker with the worker token (and API URL) in its environment."""
    env = {**os.environ, "LTD_WORKER_TOKEN": token, "LTD_API_URL": api_url}
    proc = subprocess.Popen(command or worker_command(api_url), env=env)
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


def _ensure_worker_token() -> str:
    """The configured worker token, or a fresh one for this process (and its worker)."""
    token = os.environ.get("LTD_WORKER_TOKEN")
    if not token:
        token = secrets.token_urlsafe(32)
        os.environ["LTD_WORKER_TOKEN"] = token
        get_settings.cache_clear()
    return token


def _shut_down_already(signum: int, _frame: object) -> None:
    """SIGTERM once uvicorn has shut down gracefully (it re-raises the signal): nothing left to
    do but stop the local worker, which `serve` does on its way out, and exit 0."""


def serve(host: str = "127.0.0.1", port: int = 8000, *, with_worker: bool = False) -> None:
    """Run the service until interrupted (SIGINT/SIGTERM); `with_worker` adds a local worker.

    uvicorn shuts down gracefully on either signal, then re-raises it; a re-raised SIGTERM is
    ignored here, so the worker is still stopped on the way out and the process exits 0 (a
    clean, requested shutdown)."""
    token = _ensure_worker_token() if with_worker else None
    settings = get_settings()
    migrate(settings.database_url)
    app = create_app(settings.model_copy(update={"migrate_on_start": False}))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
    workers: list[subprocess.Popen[bytes]] = []

    def spawn_when_listening() -> None:
        deadline = time.monotonic() + WORKER_START_WAIT_S
        while not server.started and not server.should_exit and time.monotonic() < deadline:
            time.sleep(0.05)
        if server.started and not server.should_exit and token is not None:
            workers.append(start_worker(local_api_url(host, port), token))

    if with_worker:
        threading.Thread(
            target=spawn_when_listening, name="ltd-worker-spawner", daemon=True
        ).start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _shut_down_already)
    try:
        server.run()
    finally:
        for proc in workers:
            stop_worker(proc)
