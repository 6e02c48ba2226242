"""`WorkerClient`: the worker's side of the API's worker protocol (DESIGN.md, "Jobs and
workers"), in the wire models of `wire.worker`:

    claim(worker_id)                         ClaimRequest      -> ClaimPublic | None (204)
    heartbeat(job_id, lease_id, progress)    HeartbeatRequest  -> HeartbeatPublic
    complete(job_id, lease_id, result)       CompleteRequest   -> JobPublic
    fail(job_id, lease_id, error, retryable) FailRequest       -> JobPublic
    release(job_id, lease_id)                ReleaseRequest    -> JobPublic

Every request carries `Authorization: Bearer <worker token>` (`client.base.ApiClient`). Failures
are sorted for the loop: `ApiUnavailableError` (no connection, a timeout, a 5xx: try again
later), `LeaseLostError` (409 or 404: the job is no longer ours, abandon it), `WorkerAuthError`
(401/403, or 503 because the API has no worker token: retrying will not help).
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel

from client.base import ApiAuthError, ApiClient, ApiRefusedError, ApiUnavailableError
from planner.validation import ValidationResult
from wire.jobs import JobPublic
from wire.worker import (
    ClaimPublic,
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    HeartbeatPublic,
    HeartbeatRequest,
    ReleaseRequest,
)

LeaseLostError = ApiRefusedError  # the API refused a report under this lease, or forgot the job
WorkerAuthError = ApiAuthError

__all__ = ["ApiUnavailableError", "LeaseLostError", "WorkerAuthError", "WorkerClient"]


class WorkerClient(ApiClient):
    """One HTTP connection pool to the API; use one per thread."""

    def __init__(
        self, api_url: str, token: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(api_url, token, transport=transport)

    def _post(self, path: str, body: BaseModel) -> httpx.Response:
        try:
            return self.post(path, body)
        except ApiUnavailableError as exc:
            if exc.status == 503 and "worker" in str(exc):  # the API has no worker token set
                raise WorkerAuthError(str(exc), status=503) from exc
            raise

    def claim(self, worker_id: str) -> ClaimPublic | None:
        """The oldest queued job under a fresh lease, or None when nothing is queued."""
        response = self._post("/v1/worker/claim", ClaimRequest(worker_id=worker_id))
        if response.status_code == 204:
            return None
        return ClaimPublic.model_validate_json(response.content)

    def heartbeat(
        self, job_id: str, lease_id: str, progress: float, message: str | None
    ) -> HeartbeatPublic:
        """Renew the lease and report progress (clamped to 0..1; NaN as 0); `cancelled` says
        stop."""
        fraction = min(max(progress, 0.0), 1.0) if progress == progress else 0.0
        body = HeartbeatRequest(lease_id=lease_id, progress=fraction, message=message)
        response = self._post(f"/v1/worker/jobs/{job_id}/heartbeat", body)
        return HeartbeatPublic.model_validate_json(response.content)

    def complete(self, job_id: str, lease_id: str, result: ValidationResult) -> JobPublic:
        body = CompleteRequest(lease_id=lease_id, result=result)
        response = self._post(f"/v1/worker/jobs/{job_id}/complete", body)
        return JobPublic.model_validate_json(response.content)

    def fail(self, job_id: str, lease_id: str, error: str, *, retryable: bool) -> JobPublic:
        """Report an error; `FailRequest` keeps its text to the limit the API holds too."""
        body = FailRequest(lease_id=lease_id, error=error, retryable=retryable)
        response = self._post(f"/v1/worker/jobs/{job_id}/fail", body)
        return JobPublic.model_validate_json(response.content)

    def release(self, job_id: str, lease_id: str) -> JobPublic:
        response = self._post(
            f"/v1/worker/jobs/{job_id}/release", ReleaseRequest(lease_id=lease_id)
        )
        return JobPublic.model_validate_json(response.content)
