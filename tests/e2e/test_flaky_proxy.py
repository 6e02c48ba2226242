"""A worker behind a flaky proxy, over real processes (DESIGN.md, "Jobs and workers"): `ltd
serve`, a real `ltd worker` training a small CPU job, and between them a reverse proxy that
answers 503 itself to every third request, as a load balancer does during a rolling restart.
A 503 that the API did not send is transient: the job succeeds on its first attempt with one
result, and the idle worker polls on; it never exits."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_faults import (
    ONE_THREAD,
    TOKEN,
    Procs,
    db_rows,
    get_job,
    in_state,
    sigterm,
    start_api,
    url_of,
)
from tests.factories import tiny_plan_request
from tests.servers import LtdServer, free_port, ltd_env

pytestmark = pytest.mark.slow

NGINX_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
RELAYED = ("content-type", "retry-after", "location")


class FlakyProxy:
    """A reverse proxy on a free loopback port in front of `upstream`. Of each kind of request
    (the last part of its path: claim, heartbeat, complete, ...) it answers the 1st, 4th, 7th...
    itself, 503 with nginx's page and nothing passed on; the others it forwards and relays.
    Deterministic by kind, so that a 503 surely meets a claim, a heartbeat and the complete."""

    def __init__(self, upstream: str) -> None:
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()  # requests by kind
        self.refused: Counter[str] = Counter()  # of them answered 503 here
        forward = httpx.Client(base_url=upstream, timeout=30)  # thread-safe; one pool
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the worker's client expects

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self.relay()

            def do_POST(self) -> None:  # noqa: N802
                self.relay()

            def relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if proxy.refuse(self.path.split("?")[0].rsplit("/", 1)[-1]):
                    self.answer(503, {"Content-Type": "text/html"}, NGINX_503)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                response = forward.request(self.command, self.path, content=body, headers=headers)
                kept = {k: v for k, v in response.headers.items() if k.lower() in RELAYED}
                self.answer(response.status_code, kept, response.content)

            def answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._forward = forward
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def refuse(self, kind: str) -> bool:
        with self.lock:
            self.seen[kind] += 1
            refused = self.seen[kind] % 3 == 1
            self.refused[kind] += refused
            return refused

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        with self.lock:
            return Counter(self.seen), Counter(self.refused)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._forward.close()


@pytest.fixture
def procs(tmp_path: Path, live_server: Callable[..., LtdServer]) -> Iterator[Procs]:
    children = Procs(tmp_path, live_server)
    try:
        yield children
    finally:
        children.close()


def submit_throughput_job(http: httpx.Client) -> str:
    """A throughput job of the tiny model on the CPU, a few seconds long; its id."""
    settings = {
        "mode": "throughput", "implementation": "native", "warmup_steps": 0,
        "measure_steps": 40, "device": "cpu",
    }  # fmt: skip
    created = http.post(
        "/v1/jobs", json={"plan_request": tiny_plan_request(), "settings": settings}
    )
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


def while_alive(
    procs: Procs, worker: subprocess.Popen[bytes], check: Callable[[], Any]
) -> Callable[[], Any]:
    """`check` for `Procs.wait_for`, failing at once (with its log) should the worker exit."""

    def checked() -> Any:
        assert worker.poll() is None, f"the worker exited\n{procs.tail(worker)}"
        return check()

    return checked


def test_a_worker_behind_a_proxy_that_answers_503_to_every_third_request(procs: Procs) -> None:
    lease_s = 2  # heartbeats every 2/3 s: several meet the proxy during the job
    port = free_port()
    start_api(procs, port, lease_s=lease_s)
    proxy = FlakyProxy(url_of(port))
    try:
        with httpx.Client(base_url=url_of(port), timeout=30) as http:
            job_id = submit_throughput_job(http)
            args = ["worker", "--api", proxy.url, "--worker-id", "w1", "--poll-interval", "0.3"]
            worker = procs.start("w1", args, ltd_env(ONE_THREAD, worker_token=TOKEN))
            ended = in_state(http, job_id, "succeeded", "failed")
            job = procs.wait_for("the job to end", while_alive(procs, worker, ended), 120)
            seen, refused = proxy.counts()
            log = procs.tail(worker, 20_000)
            assert job["state"] == "succeeded", (job, log)
            assert job["attempts"] == 1 and job["worker_id"] == "w1" and job["error"] is None
            assert db_rows(procs.root, "SELECT id FROM jobs WHERE result_json IS NOT NULL") == [
                (job_id,)
            ]
            # The proxy's 503s met the claim, a heartbeat and the complete, and changed nothing.
            assert refused["claim"] >= 1 and refused["complete"] == 1, (seen, refused)
            assert refused["heartbeat"] >= 1 and seen["heartbeat"] >= 2, (seen, refused, log)
            assert "heartbeat refused" not in log and "lease lost" not in log, log

            # Idle, the worker polls on through further 503s on its claims: it never exits.
            more = while_alive(
                procs, worker, lambda: proxy.counts()[1]["claim"] >= refused["claim"] + 2
            )
            procs.wait_for("two more refused claims", more, 30)
            assert worker.poll() is None, procs.tail(worker)
            assert get_job(http, job_id) == job  # nothing ran it again
            status, _ = sigterm(worker)
            assert status == 0, procs.tail(worker)
    finally:
        proxy.close()
