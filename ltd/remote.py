"""Talking to an ltd server from the CLI (httpx)."""

from __future__ import annotations

import os
from typing import Any

from planner.check import CheckLimits, CheckResult
from planner.plan import Plan, PlanRequest


def headers() -> dict[str, str]:
    key = os.environ.get("LTD_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def remote_check(
    server: str, req: PlanRequest, limits: CheckLimits, previous: Plan | None
) -> CheckResult:
    """`POST /v1/checks` on a server; an earlier plan is stored there first (by its request, so
    its id is the same) to be compared against."""
    from planner.plan import request_from_plan

    client = Client(server)
    body: dict[str, Any] = {
        "request": req.model_dump(mode="json", exclude_none=True),
        "limits": limits.model_dump(exclude_none=True),
    }
    if previous is not None:
        old = request_from_plan(previous).model_dump(mode="json", exclude_none=True)
        body["compare_plan_id"] = client.call("POST", "/v1/plans", json=old)["id"]
    return CheckResult.model_validate(client.call("POST", "/v1/checks", json=body))


TERMINAL = {"succeeded", "failed", "cancelled"}


class Client:
    """The few calls `ltd submit` makes; every error becomes an InputError (exit 2) that says
    what the server answered."""

    def __init__(self, server: str, timeout_s: float = 30.0) -> None:
        import httpx

        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server, headers=headers(), timeout=timeout_s)

    def call(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        from ltd.cli import InputError

        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise InputError("--server", f"cannot reach {self.server}: {exc}") from None
        if resp.status_code == 422:
            raise InputError("request", f"the server refused it: {resp.json().get('detail')}")
        if resp.status_code == 404:
            raise InputError("id", f"{path}: not found on {self.server}")
        if resp.status_code >= 400:
            raise InputError(
                "--server", f"{method} {path} answered {resp.status_code}: {resp.text[:300]}"
            )
        return resp.json()

    def submit_job(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/v1/jobs", json=body)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.call("GET", f"/v1/jobs/{job_id}")

    def get_plan(self, plan_id: str) -> Plan:
        return Plan.model_validate(self.call("GET", f"/v1/plans/{plan_id}"))

    def follow_job(self, job_id: str, *, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll a job until it ends, with a progress bar on the terminal."""
        import sys
        import time

        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        deadline = time.monotonic() + timeout_s
        columns = (
            TextColumn("job {task.fields[job]}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
        )
        with Progress(*columns, disable=not sys.stderr.isatty(), transient=True) as bar:
            task = bar.add_task("queued", total=1.0, job=job_id)
            while True:
                job = self.get_job(job_id)
                bar.update(
                    task,
                    completed=job.get("progress") or 0.0,
                    description=f"{job['state']}: {job.get('progress_message') or ''}"[:60],
                )
                if job["state"] in TERMINAL:
                    return job
                if time.monotonic() > deadline:
                    from ltd.cli import InputError

                    raise InputError(
                        "--wait-minutes",
                        f"job {job_id} still {job['state']}; follow it later with its id",
                    )
                time.sleep(poll_s)
