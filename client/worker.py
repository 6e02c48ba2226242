"""`WorkerClient`: the worker's side of the API's worker protocol (DESIGN.md, "Jobs and
workers"), in the wire models of `wire.worker`:

    claim(worker_id)                         ClaimRequest      -> ClaimPublic | None (204)
    heartbeat(job_id, lease_id, progress)    HeartbeatRequest  -> HeartbeatPublic
    complete(job_id, lease_id, result)       CompleteRequest   -> JobPublic
    fail(job_id, lease_id, error, retryable) FailRequest       -> JobPublic
    release(job_id, lease_id)                ReleaseRequest    -> JobPublic

Every request carries `Authorization: Bearer <worker token>` (`client.base.ApiClient`). Failures
are sorted for the loop by who answered, not by the URL (every worker URL holds `/v1/worker/`):

    ApiUnavailableError  transient: retry with back-off and jitter, never a credential or lease
                         error. No connection, a timeout, a dropped connection; any 5xx (502,
                         503, 504 from a load balancer or proxy, the API's own 503 when its
                         database is down); 408 and 429 (a proxy's "not now").
    WorkerAuthError      stop: 401/403 (the token was refused), or the API's own 503 saying the
                         service has no worker token (`service_has_no_worker_token`: a JSON body
                         whose `detail` begins "worker endpoints are disabled", as
                         `api.deps.require_worker_token` answers; no proxy sends that).
    LeaseLostError       stop: 409 (the lease is not current) or 404: the job is no longer ours.
    ApiInputError        the request itself is wrong (400, 413, 422, ...): sending it again
                         changes nothing; a result refused so fails its job with the reason.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel

from client.base import (
    ApiAuthError,
    ApiClient,
    ApiError,
    ApiInputError,
    ApiRefusedError,
    ApiUnavailableError,
)
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

# What `api.deps.require_worker_token` answers (503) when the service has no LTD_WORKER_TOKEN.
WORKER_ENDPOINTS_OFF = "worker endpoints are disabled"
# 4xx statuses that a proxy or load balancer answers for "not now" (request timeout, rate limit).
TRANSIENT_4XX = frozenset({408, 429})

__all__ = [
    "ApiInputError",
    "ApiUnavailableError",
    "LeaseLostError",
    "WorkerAuthError",
    "WorkerClient",
    "service_has_no_worker_token",
]


def service_has_no_worker_token(exc: ApiError) -> bool:
    """True only for the API's own 503 on a worker endpoint of a service without a worker token:
    its JSON `detail` says so. Any other 503 (a load balancer during a rolling restart, uvicorn's
    `--limit-concurrency`, a proxy, the API's database down) is transient."""
    detail = exc.detail
    return exc.status == 503 and isinstance(detail, str) and detail.startswith(WORKER_ENDPOINTS_OFF)


class WorkerClient(ApiClient):
    """One HTTP connection pool to the API; use one per thread."""

    def __init__(
        self, api_url: str, token: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(api_url, token, transport=transport)

    def _post(self, path: str, body: BaseModel) -> httpx.Response:
        """POST with the failures sorted as the module says."""
        try:
            return self.post(path, body)
        except ApiUnavailableError as exc:
            if service_has_no_worker_token(exc):
                raise WorkerAuthError(str(exc), status=503, detail=exc.detail) from exc
            raise
        except ApiInputError as exc:
            if exc.status in TRANSIENT_4XX:
                raise ApiUnavailableError(str(exc), status=exc.status, detail=exc.detail) from exc
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
