"""`ServerClient`: an ltd server's public API (plans, checks, jobs) in the wire models, for the
CLI's `--server` commands and for scripts. Bodies go out as the models' JSON; answers are read
into `planner.Plan`, `planner.CheckResult`, `wire.jobs.JobPublic` and `JobsPublic`."""

from __future__ import annotations

import httpx

from client.base import ApiClient
from planner.check import CheckResult
from planner.document import Plan
from planner.request import PlanRequest
from wire.jobs import JobCreate, JobPublic, JobsPublic, JobState
from wire.plans import CheckCreate


class ServerClient(ApiClient):
    """One connection pool to an ltd server; `api_key` is one of its LTD_API_KEYS (None: the
    server has none)."""

    def __init__(
        self,
        server: str,
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(server, api_key, transport=transport)

    def create_plan(self, request: PlanRequest) -> Plan:
        """`POST /v1/plans`: the plan, computed or already stored under the same request."""
        return Plan.model_validate_json(self.post("/v1/plans", request).content)

    def get_plan(self, plan_id: str) -> Plan:
        return Plan.model_validate_json(self.get(f"/v1/plans/{plan_id}").content)

    def check(self, body: CheckCreate) -> CheckResult:
        """`POST /v1/checks`: the plan of `body.request` held to `body.limits`."""
        return CheckResult.model_validate_json(self.post("/v1/checks", body).content)

    def submit_job(self, body: JobCreate) -> JobPublic:
        """`POST /v1/jobs`: the queued job."""
        return JobPublic.model_validate_json(self.post("/v1/jobs", body).content)

    def get_job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate_json(self.get(f"/v1/jobs/{job_id}").content)

    def list_jobs(
        self, *, state: JobState | None = None, limit: int = 20, offset: int = 0
    ) -> JobsPublic:
        """`GET /v1/jobs`: a page of jobs, newest first, with the count of all that match."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if state is not None:
            params["state"] = state.value
        return JobsPublic.model_validate_json(self.get("/v1/jobs", params=params).content)

    def cancel_job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate_json(self.post(f"/v1/jobs/{job_id}/cancel").content)
