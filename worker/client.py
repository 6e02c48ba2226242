"""The worker's side of the API's worker protocol (DESIGN.md, "Jobs and workers").

    POST {api}/v1/worker/claim                {worker_id}                  -> 200 claim | 204
    POST {api}/v1/worker/jobs/{id}/heartbeat  {lease_id, progress, message} -> {cancelled, ...}
    POST {api}/v1/worker/jobs/{id}/complete   {lease_id, result}
    POST {api}/v1/worker/jobs/{id}/fail       {lease_id, error, retryable}
    POST {api}/v1/worker/jobs/{id}/release    {lease_id}

Every request carries `Authorization: Bearer <worker token>` (`client.base.ApiClient`). Failures
are sorted for the loop: `ApiUnavailableError` (no connection, a timeout, a 5xx: try again
later), `LeaseLostError` (409 or 404: the job is no longer ours, abandon it), `WorkerAuthError`
(401/403, or 503 because the API has no worker token: retrying will not help).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from client.base import ApiAuthError, ApiClient, ApiRefusedError, ApiUnavailableError
from planner.document import Plan
from planner.validation import ValidationResult, ValidationSettings

LeaseLostError = ApiRefusedError  # the API refused a report under this lease, or forgot the job
WorkerAuthError = ApiAuthError

__all__ = ["ApiUnavailableError", "Claim", "LeaseLostError", "WorkerAuthError", "WorkerClient"]


@dataclass(frozen=True)
class Claim:
    """A job this worker holds under `lease_id`."""

    job_id: str
    settings: ValidationSettings
    plan: Plan
    lease_id: str
    lease_expires_at: str


class WorkerClient(ApiClient):
    """One HTTP connection pool to the API; use one per thread."""

    def __init__(
        self, api_url: str, token: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(api_url, token, transport=transport)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return self.post(path, body)
        except ApiUnavailableError as exc:
            if exc.status == 503 and "worker" in str(exc):  # the API has no worker token set
                raise WorkerAuthError(str(exc), status=503) from exc
            raise

    def claim(self, worker_id: str) -> Claim | None:
        """The oldest queued job under a fresh lease, or None when nothing is queued."""
        data = self._post("/v1/worker/claim", {"worker_id": worker_id})
        if data is None:
            return None
        return Claim(
            job_id=data["job"]["id"],
            settings=ValidationSettings.model_validate(data["job"].get("settings") or {}),
            plan=Plan.model_validate(data["plan"]),
            lease_id=data["lease_id"],
            lease_expires_at=data["lease_expires_at"],
        )

    def heartbeat(self, claim: Claim, progress: float, message: str | None) -> bool:
        """Renew the lease and report progress; True when the job was cancelled."""
        body = {
            "lease_id": claim.lease_id,
            "progress": min(max(progress, 0.0), 1.0),
            "message": message,
        }
        answer = self._post(f"/v1/worker/jobs/{claim.job_id}/heartbeat", body)
        return bool(answer.get("cancelled", False))

    def complete(self, claim: Claim, result: ValidationResult) -> None:
        self._post(
            f"/v1/worker/jobs/{claim.job_id}/complete",
            {"lease_id": claim.lease_id, "result": result.model_dump(mode="json")},
        )

    def fail(self, claim: Claim, error: str, *, retryable: bool) -> None:
        self._post(
            f"/v1/worker/jobs/{claim.job_id}/fail",
            {"lease_id": claim.lease_id, "error": error[:4000], "retryable": retryable},
        )

    def release(self, claim: Claim) -> None:
        self._post(f"/v1/worker/jobs/{claim.job_id}/release", {"lease_id": claim.lease_id})
