"""Load benchmark of the REST service on loopback, driven by `wrk` (never a Python client).

Starts one uvicorn process (1 worker, uvicorn's default loop/http) serving `bench_app()`: the
service plus a bare `GET /bench/bare` route, the side-by-side reference of what the same stack
serves with no work. Seeds one plan and one job over HTTP, then runs wrk against each route, in
rounds that start with the bare route: each ratio is taken within its round, so that a machine
whose speed drifts (a shared 2-core VM) moves both sides of it.

    python benchmarks/bench_api.py                  # routes, SQLite, -t2 -c32, 3 rounds of 4 s
    python benchmarks/bench_api.py --seconds 3 --connections 64
    python benchmarks/bench_api.py --database postgres          # fresh schema, dropped after
    python benchmarks/bench_api.py --scenario claimers --database postgres
    python benchmarks/bench_api.py --scenario mixed --database postgres   # issue 17's mixed load
    python benchmarks/bench_api.py --scenario all --database both   # routes and mixed, both DBs

Targets: routes: req/s >= 0.6 x bare (the stored POST >= 0.8) and p99 < 50 ms; claimers:
readers' p99 < 150 ms while 4 claimer processes enqueue, claim and release/fail jobs; mixed: one
wrk load at 64 connections cycling through a stored plan's GET, POSTs of 50 distinct plan
requests (each stored on its first POST) and a job's GET, p99 < 150 ms with 0 errors, while 4
claimer processes claim and complete (with a result that calibrates the plan) at least 200 jobs.
The mixed load runs 30 s after a 2 s warm-up: every wrk run opens its 64 connections afresh, and
their first half second has requests waiting up to ~0.5 s outside the app (its own latency stays
under 2 ms), which weighs over 1% of a 12 s run (docs/benchmarks.md). Non-2xx responses are
errors (MISS).
Needs `wrk` (apt-get install wrk). The server and wrk share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
from fastapi import FastAPI

from planner.recipes import paper_run

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WORKER_TOKEN = "bench-worker-token"
MIXED_SECONDS = 30
PLAN_REQUEST = paper_run()
# A claimer process: enqueue a job, claim one, then release it or fail it; until `stop` exists.
CLAIMER = """
import os, sys, httpx
base, token, plan_id, worker, stop = sys.argv[1:]
auth, claims, errors = {"Authorization": f"Bearer {token}"}, 0, 0
with httpx.Client(base_url=base, timeout=30) as http:
    while not os.path.exists(stop):
        ok = http.post("/v1/jobs", json={"plan_id": plan_id}).status_code == 202
        r = http.post("/v1/worker/claim", headers=auth, json={"worker_id": worker})
        ok = ok and r.status_code in (200, 204)
        if r.status_code == 200:
            claims += 1
            job, body = r.json()["job"]["id"], {"lease_id": r.json()["lease_id"]}
            fail = {"error": "bench", "retryable": False} if claims % 2 == 0 else {}
            action = "fail" if fail else "release"
            r = http.post(f"/v1/worker/jobs/{job}/{action}", headers=auth, json=body | fail)
            ok = ok and r.status_code == 200
        errors += not ok
print(claims, errors)
"""


# A completing claimer: enqueue a job of its plan, claim one, complete it with a result (the
# plan is calibrated in the same transaction); until `stop` exists.
COMPLETER = """
import json, os, sys, httpx
base, token, plan_id, worker, stop, result = sys.argv[1:]
auth, done, errors = {"Authorization": f"Bearer {token}"}, 0, 0
with httpx.Client(base_url=base, timeout=30) as http:
    while not os.path.exists(stop):
        ok = http.post("/v1/jobs", json={"plan_id": plan_id}).status_code == 202
        r = http.post("/v1/worker/claim", headers=auth, json={"worker_id": worker})
        ok = ok and r.status_code in (200, 204)
        if r.status_code == 200:
            body = {"lease_id": r.json()["lease_id"], "result": json.loads(result)}
            c = http.post(f"/v1/worker/jobs/{r.json()['job']['id']}/complete", headers=auth,
                          json=body)
            done += c.status_code == 200
            ok = ok and c.status_code == 200
        errors += not ok
print(done, errors)
"""
# What a CPU worker reports for a small job: enough to calibrate the plan it completes.
RESULT = {
    "device": "cpu", "gpu_name": None, "torch_version": "2.13.0", "dtype": "float32",
    "num_layers": 4, "num_ltd_layers": 2, "micro_batch_size": 1, "seq_len": 2048,
    "scaled_down": [], "step_times": [], "step_time_fit": [100.0, 0.0, 0.02, 0.0, 0.0],
    "measured_wall_clock_saving": 0.2, "flops_saving": 0.3, "mfu": None,
    "peak_memory_bytes": 1, "seconds": 1.0,
}  # fmt: skip
MIXED_LUA = """
local bodies, i = {}, 0
function init(args)
  plan, job = args[1], args[2]
  for n = 1, 50 do bodies[n] = string.format(%r, n) end
end
function request()
  i = i + 1
  local k = i %% 3
  if k == 0 then return wrk.format("GET", "/v1/plans/" .. plan) end
  if k == 1 then return wrk.format("GET", "/v1/jobs/" .. job) end
  return wrk.format("POST", "/v1/plans", {["Content-Type"] = "application/json"},
                    bodies[(i %% 50) + 1])
end
"""


def mixed_body(n: int) -> dict[str, object]:
    """The n-th of the mixed load's 50 distinct plan requests (n = 1..50)."""
    return {**PLAN_REQUEST, "train_tokens": 300_000_000_000 + n * 1_000_000_000}


def bench_app() -> FastAPI:
    """The service (settings from the LTD_ environment) plus the bare reference route."""
    from api.main import create_app
    from api.settings import Settings

    app = create_app(Settings())

    @app.get("/bench/bare")
    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    return app


@dataclass
class WrkResult:
    route: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def run_wrk(
    route: str, url: str, args: argparse.Namespace, conns: int, lua: str, *script_args: str
) -> WrkResult:
    """Run wrk with `--latency` against `url` (optionally a Lua script, given `script_args`)
    and parse its report."""
    script = ["-s", lua] if lua else []
    cmd = ["wrk", "--latency", f"-t{args.threads}", f"-c{conns}", f"-d{args.seconds}s"]
    extra = ["--", *script_args] if script_args else []
    out = subprocess.run(
        [*cmd, *script, url, *extra], capture_output=True, text=True, check=True
    ).stdout
    return parse_wrk(route, out)


def parse_wrk(route: str, out: str) -> WrkResult:
    """wrk's `--latency` report as a WrkResult."""

    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        return float(m.group(1)) * UNITS_MS[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        route,
        float(rps.group(1)) if rps else 0.0,
        latency("50"),
        latency("99"),
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(n) for n in sock.groups()) if sock else 0,
    )


@contextmanager
def database(args: argparse.Namespace, tmp: str) -> Iterator[str]:
    """A SQLite file in `tmp`, or a fresh PostgreSQL schema (search_path), dropped afterwards."""
    if args.database == "sqlite":
        yield f"sqlite:///{tmp}/bench.db"
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in args.postgres_url else "?"
    try:
        yield f"{args.postgres_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:  # the app's migrate_on_start must have filled the schema
            query = "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
            tables = sorted(conn.execute(text(query), {"s": schema}).scalars())
            print(f"schema {schema}: {len(tables)} tables {tables or '(NONE!)'}; dropped")
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, database_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LTD_DATABASE_URL": database_url, "LTD_WORKER_TOKEN": WORKER_TOKEN}
    env.pop("LTD_API_KEYS", None)
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.bench_api:bench_app"]
    cmd += ["--app-dir", str(REPO), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return subprocess.Popen([*cmd, "--no-access-log", "--log-level", "warning"], env=env, cwd=REPO)


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy")


def print_table(rounds: list[list[WrkResult]], p99_target_ms: float, with_bare: bool) -> None:
    """One row a route: median req/s over the rounds, median of its ratio to the bare route of
    the same round (each round's first), median p50, worst p99, errors summed."""
    head = f"{'route':<24} {'req/s':>8} {'x bare':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>9}"
    print(f"{head}  target: {'ratio >= 0.6, ' if with_bare else ''}p99 < {p99_target_ms:g} ms")
    for runs in zip(*rounds, strict=True):
        ratio = None
        if with_bare:
            pairs = zip(runs, rounds, strict=True)
            ratio = statistics.median(r.requests_per_s / rnd[0].requests_per_s for r, rnd in pairs)
        rps = statistics.median(r.requests_per_s for r in runs)
        p50, p99 = statistics.median(r.p50_ms for r in runs), max(r.p99_ms for r in runs)
        non_2xx, sock = sum(r.non_2xx for r in runs), sum(r.socket_errors for r in runs)
        ok = p99 < p99_target_ms and non_2xx + sock == 0 and (ratio is None or ratio >= 0.6)
        print(
            f"{runs[0].route:<24} {rps:>8.0f} {'' if ratio is None else f'{ratio:.2f}':>7} "
            f"{p50:>8.2f} {p99:>8.2f} {f'{non_2xx}/{sock}':>9}  {'PASS' if ok else 'MISS'}"
        )
    if with_bare and len(rounds) > 1:
        bare = ", ".join(f"{rnd[0].requests_per_s:.0f}" for rnd in rounds)
        print(f"bare route by round: {bare} req/s (each ratio is taken within its round)")
    print("errors: non-2xx/3xx responses / socket errors (incl. timeouts: wrk's is 2 s)")


def claimers(args: argparse.Namespace, base: str, tmp: str, plan: str, job: str) -> None:
    """Readers under wrk (64 connections) while 4 claimer processes work the queue."""
    stop = Path(tmp) / "stop"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, base, WORKER_TOKEN, plan, f"bench-{i}", str(stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    start = time.monotonic()
    try:
        time.sleep(1.0)  # let the claimers import httpx and start claiming
        results = [
            run_wrk("GET /v1/plans/{id}", f"{base}/v1/plans/{plan}", args, 64, ""),
            run_wrk("GET /v1/jobs/{id}", f"{base}/v1/jobs/{job}", args, 64, ""),
        ]
    finally:
        stop.touch()
        try:
            outputs = [p.communicate(timeout=60)[0].split() for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    elapsed = time.monotonic() - start
    claims = sum(int(o[0]) for o in outputs if len(o) == 2)
    errors = sum(int(o[1]) for o in outputs if len(o) == 2)
    errors += sum(p.returncode != 0 for p in procs)  # a crashed claimer counts as one error
    print(f"wrk -t{args.threads} -c64 -d{args.seconds}s per route; 4 claimer processes")
    print_table([results], 150.0, with_bare=False)
    print(
        f"claims: {claims} in {elapsed:.1f} s ({claims / elapsed:.0f}/s), claimer errors: {errors}"
    )


def mixed(args: argparse.Namespace, base: str, tmp: str, plan: str, job: str) -> None:
    """Issue 17's mixed load: stored GETs, POSTs of 50 distinct bodies and job GETs, one wrk
    at 64 connections, while 4 claimer processes claim and complete jobs."""
    template = json.dumps(mixed_body(0)).replace(
        '"train_tokens": 300000000000', '"train_tokens": 3%02d000000000'
    )
    with httpx.Client(base_url=base, timeout=60) as http:  # store the 50 plans first
        for n in range(1, 51):
            http.post("/v1/plans", json=mixed_body(n)).raise_for_status()
    lua = Path(tmp) / "mixed.lua"
    lua.write_text(MIXED_LUA % template)
    stop = Path(tmp) / "stop"
    result = json.dumps(RESULT)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", COMPLETER, base, WORKER_TOKEN, plan, f"bench-{i}", str(stop),
             result],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]  # fmt: skip
    start = time.monotonic()
    try:
        time.sleep(1.0)  # let the claimers import httpx and start claiming
        # A warm-up, not counted (as in the routes scenario): the server's first requests
        warm = argparse.Namespace(**{**vars(args), "seconds": 2})
        run_wrk("warm-up", base, warm, 64, str(lua), plan, job)
        res = run_wrk("mixed (plan GET, 50 POSTs, job GET)", base, args, 64, str(lua), plan, job)
    finally:
        stop.touch()
        try:
            outputs = [p.communicate(timeout=60)[0].split() for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    elapsed = time.monotonic() - start
    done = sum(int(o[0]) for o in outputs if len(o) == 2)
    errors = sum(int(o[1]) for o in outputs if len(o) == 2) + sum(p.returncode != 0 for p in procs)
    print(f"wrk -t{args.threads} -c64 -d{args.seconds}s, one script cycling the three requests")
    print_table([[res]], 150.0, with_bare=False)
    ok = done >= 200 and errors == 0
    print(
        f"jobs completed by 4 claimers: {done} in {elapsed:.1f} s ({done / elapsed:.0f}/s), "
        f"claimer errors: {errors}  {'PASS' if ok else 'MISS'} (target: >= 200, 0 errors)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        choices=["routes", "claimers", "mixed", "all"],
        default="routes",
        help="all: routes, then mixed",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres", "both"],
        default="sqlite",
        help="both: SQLite, then PostgreSQL, each on a server of its own",
    )
    parser.add_argument(
        "--postgres-url", default=os.environ.get("LTD_TEST_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (routes scenario)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument(
        "--seconds",
        type=int,
        default=None,
        help=f"wrk -d, seconds: per route (default 4), or of the mixed load (default "
        f"{MIXED_SECONDS}: long enough for 200 jobs, and for wrk's start to weigh under 1%%)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of all routes, the bare one first in each"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_api: `wrk` not found; install it: apt-get install wrk", file=sys.stderr)
        return 2
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    scenarios = ["routes", "mixed"] if args.scenario == "all" else [args.scenario]
    for db in databases:
        for scenario in scenarios:
            seconds = args.seconds or (MIXED_SECONDS if scenario == "mixed" else 4)
            run = argparse.Namespace(
                **{**vars(args), "database": db, "scenario": scenario, "seconds": seconds}
            )
            print(f"\n## {scenario} on {db}")
            run_scenario(run)
    return 0


def run_scenario(args: argparse.Namespace) -> None:
    """One scenario on one database, on a server of its own."""
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}, uvicorn {version('uvicorn')}, 1 worker; "
        f"database: {args.database}"
    )
    with tempfile.TemporaryDirectory() as tmp, database(args, tmp) as url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(port, url)
        try:
            wait_healthy(base, proc)
            with httpx.Client(base_url=base, timeout=60) as http:
                plan = http.post("/v1/plans", json=PLAN_REQUEST).raise_for_status().json()["id"]
                job = http.post("/v1/jobs", json={"plan_id": plan}).raise_for_status().json()["id"]
            if args.scenario == "claimers":
                claimers(args, base, tmp, plan, job)
                return
            if args.scenario == "mixed":
                mixed(args, base, tmp, plan, job)
                return
            lua = Path(tmp) / "post.lua"  # wrk's POST: method, JSON body, Content-Type
            lua.write_text(
                f'wrk.method = "POST"\nwrk.body = [==[{json.dumps(PLAN_REQUEST)}]==]\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            routes = [
                ("GET /bench/bare", "/bench/bare", ""),
                ("GET /v1/plans/{id}", f"/v1/plans/{plan}", ""),
                ("POST /v1/plans (stored)", "/v1/plans", str(lua)),
                ("GET /v1/jobs/{id}", f"/v1/jobs/{job}", ""),
                ("GET /healthz", "/healthz", ""),
            ]
            conns = args.connections
            warm = argparse.Namespace(**{**vars(args), "seconds": 1})
            for name, path, lua_script in routes:  # warm-up, not counted: first-request costs
                run_wrk(name, base + path, warm, conns, lua_script)
            rounds = [
                [run_wrk(name, base + path, args, conns, s) for name, path, s in routes]
                for _ in range(args.rounds)
            ]
            print(
                f"wrk -t{args.threads} -c{conns} -d{args.seconds}s per route, {args.rounds} rounds"
            )
            print_table(rounds, 50.0, with_bare=True)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
