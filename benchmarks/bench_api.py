"""Load benchmark of the REST service on loopback: stored plans and job reads.

Starts uvicorn (`api.main:create_app`, a SQLite file in a temporary directory) in a subprocess,
creates one plan and one job, then for each route runs `--clients` concurrent clients for
`--seconds` seconds, each sending its next request as soon as the last one answered, and prints
requests per second and p50/p99 latency in milliseconds. Stops by itself.

    python benchmarks/bench_api.py                  # 32 clients, 10 s per route
    python benchmarks/bench_api.py --clients 8 --seconds 3

Aim (DESIGN issue 3): >= 500 requests/s for stored plans with p99 < 100 ms on a 2-core machine.
The server and this load generator share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import httpx

PLAN_REQUEST = {
    "model": "gpt3-1.3b",
    "train_batch_size": 512,
    "train_tokens": 300_000_000_000,
    "ltd_train_tokens": 200_000_000_000,
    "random_ltd": {
        "min_value": 128,
        "max_value": 2048,
        "seq_per_step": 16,
        "require_steps": 133_333,
    },
}


@dataclass
class RouteResult:
    route: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, database_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LTD_DATABASE_URL": database_url}
    env.pop("LTD_API_KEYS", None)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(command, env=env)


def wait_healthy(base_url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy")


class Connection:
    """A minimal HTTP/1.1 keep-alive client: httpx's own overhead would make the load
    generator, not the server, the bottleneck on a 2-core machine."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request; return the status code and the body."""
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def load(
    route: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    port: int,
    clients: int,
    seconds: float,
) -> RouteResult:
    """`clients` closed-loop clients, one connection each, for `seconds` seconds."""
    latencies: list[float] = []
    errors = 0
    connections = [await Connection.open(port) for _ in range(clients)]
    await connections[0].request(method, path, body)  # warm the path once
    start = time.perf_counter()
    stop_at = start + seconds

    async def client(conn: Connection) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            status, _ = await conn.request(method, path, body)
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += status >= 400

    await asyncio.gather(*(client(c) for c in connections))
    elapsed = time.perf_counter() - start
    for conn in connections:
        conn.close()
    return RouteResult(route, len(latencies), errors, elapsed, latencies)


async def run(port: int, clients: int, seconds: float) -> list[RouteResult]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        plan = (await http.post("/v1/plans", json=PLAN_REQUEST)).raise_for_status().json()
        job = (await http.post("/v1/jobs", json={"plan_id": plan["id"]})).raise_for_status()
    job_id = job.json()["id"]
    plan_body = json.dumps(PLAN_REQUEST).encode()
    return [
        await load(
            "POST /v1/plans (stored)",
            "POST",
            "/v1/plans",
            plan_body,
            port=port,
            clients=clients,
            seconds=seconds,
        ),
        await load(
            "GET /v1/jobs/{id}",
            "GET",
            f"/v1/jobs/{job_id}",
            port=port,
            clients=clients,
            seconds=seconds,
        ),
    ]


def report(results: list[RouteResult], clients: int) -> None:
    print(f"{clients} concurrent clients, {os.cpu_count()} CPUs, SQLite")
    print(f"{'route':<26} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(
            f"{r.route:<26} {r.requests:>9} {r.errors:>7} {r.requests_per_s:>8.0f} "
            f"{r.percentile_ms(0.50):>8.1f} {r.percentile_ms(0.99):>8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per route, seconds")
    args = parser.parse_args()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, f"sqlite:///{tmp}/bench.db")
        try:
            wait_healthy(base_url, proc)
            results = asyncio.run(run(port, args.clients, args.seconds))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    report(results, args.clients)


if __name__ == "__main__":
    main()
