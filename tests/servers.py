"""Servers for the tests that need a real one, one way each:

- `start_ltd_serve(cwd, *args, ...)`: a real `ltd serve` process on a free loopback port (or a
  given one, to restart a server where it was), healthy before it returns; its output goes to a
  log file under `cwd`, whose tail a failure shows. `LtdServer.stop()` sends SIGTERM and waits.
  The `live_server` fixture (tests/conftest.py) starts them for a test and stops every one it
  started; `ltd_serve(...)` is the same as a context manager (for wider-scoped fixtures).
- `served(app)`: an ASGI app in this process under uvicorn in a thread, for the few tests that
  must inject an app of their own (a database hook, a stub that answers 503).

A server's environment is this one without any `LTD_` variable (nothing from the developer's
shell leaks in), plus what the test gives: `database_url` (default: none, so the embedded
default, a SQLite file `ltd.db` in `cwd`), `worker_token`, and `env` (any other variables).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

LTD = (sys.executable, "-m", "ltd")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
_logs = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ltd_env(env: Mapping[str, str] | None = None, **settings: str | None) -> dict[str, str]:
    """This environment without any LTD_ variable, plus `settings` (as LTD_<NAME>, None: left
    unset) and `env` (verbatim)."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("LTD_")}
    out.update({f"LTD_{k.upper()}": v for k, v in settings.items() if v is not None})
    out.update(env or {})
    return out


@dataclass
class LtdServer:
    """A running `ltd serve`: its URL, port, process and log file."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> tuple[int, float]:
        """SIGTERM, then wait: its exit status and the seconds it took (killed, and an
        AssertionError, when it lingers past `timeout_s`)."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"ltd serve ignored SIGTERM for {timeout_s} s\n{self.tail()}"
            ) from None
        return status, time.monotonic() - started

    def close(self) -> None:
        """Stop it if it still runs (a test that stopped it itself has nothing left to do); a
        requested stop must be a clean one, exit 0."""
        if self.proc.poll() is None:
            status, _ = self.stop()
            assert status == 0, f"ltd serve exited {status} on SIGTERM\n{self.tail()}"


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], timeout_s: float = START_TIMEOUT_S
) -> None:
    """Return once `url`/healthz answers 200; fail when `proc` exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited early ({proc.returncode})"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server never became healthy in {timeout_s} s")


def start_ltd_serve(
    cwd: Path,
    *args: str,
    database_url: str | None = None,
    worker_token: str | None = None,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    program: Sequence[str] = LTD,
) -> LtdServer:
    """`<program> serve --port P *args` in `cwd` (`program`: `python -m ltd`, or a stand-in that
    passes its arguments to `ltd.cli.main`), returned once /healthz answers."""
    port = port or free_port()
    log = cwd / f"serve-{port}-{next(_logs)}.log"
    environment = ltd_env(env, database_url=database_url, worker_token=worker_token)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*program, "serve", "--port", str(port), *args],
            cwd=cwd,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LtdServer(f"http://127.0.0.1:{port}", port, proc, log)
    try:
        wait_healthy(server.url, proc)
    except AssertionError as exc:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise AssertionError(f"{exc}\n--- {log.name}:\n{server.tail()}") from None
    return server


@contextmanager
def ltd_serve(cwd: Path, *args: str, **options: Any) -> Iterator[LtdServer]:
    """`start_ltd_serve(cwd, *args, **options)`, stopped on the way out."""
    server = start_ltd_serve(cwd, *args, **options)
    try:
        yield server
    finally:
        server.close()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` (an ASGI app) on a free loopback port by uvicorn in a thread; yields its URL once
    uvicorn has started (lifespan included), and stops it afterwards."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
