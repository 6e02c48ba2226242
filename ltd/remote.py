"""The CLI's calls to an ltd server (`ltd submit`, `ltd check --server`), over `client.base`."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from client.base import ApiClient
from planner.check import CheckLimits, CheckResult
from planner.document import Plan, request_from_plan
from planner.errors import PlanInputError
from planner.jobs import JobPublic
from planner.request import PlanRequest


class ServerClient(ApiClient):
    """An ltd server, with the API key from LTD_API_KEY when it is set."""

    def __init__(self, server: str) -> None:
        super().__init__(server, os.environ.get("LTD_API_KEY"))

    def store_plan(self, request: PlanRequest) -> Plan:
        body = request.model_dump(mode="json", exclude_none=True)
        return Plan.model_validate(self.post("/v1/plans", body))

    def get_plan(self, plan_id: str) -> Plan:
        return Plan.model_validate(self.get(f"/v1/plans/{plan_id}"))

    def submit_job(self, body: dict[str, Any]) -> JobPublic:
        return JobPublic.model_validate(self.post("/v1/jobs", body))

    def get_job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self.get(f"/v1/jobs/{job_id}"))

    def check(self, req: PlanRequest, limits: CheckLimits, previous: Plan | None) -> CheckResult:
        """`POST /v1/checks`; an earlier plan is stored there first (by its request, so its id
        is the same) to be compared against."""
        body: dict[str, Any] = {
            "request": req.model_dump(mode="json", exclude_none=True),
            "limits": limits.model_dump(exclude_none=True),
        }
        if previous is not None:
            body["compare_plan_id"] = self.store_plan(request_from_plan(previous)).id
        return CheckResult.model_validate(self.post("/v1/checks", body))

    def follow_job(self, job_id: str, *, timeout_s: float, poll_s: float = 1.0) -> JobPublic:
        """Poll a job until it ends, with a progress bar on the terminal."""
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
                message = f"{job.state}: {job.progress_message or ''}"
                bar.update(task, completed=job.progress, description=message[:60])
                if job.state.terminal:
                    return job
                if time.monotonic() > deadline:
                    raise PlanInputError(
                        "--wait-minutes",
                        f"job {job_id} still {job.state}; follow it later with its id",
                    )
                time.sleep(poll_s)
