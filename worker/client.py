"""The worker's side of the API's worker protocol (DESIGN.md, "Jobs and workers"), over httpx.

    POST {api}/v1/worker/claim                {worker_id}                  -> 200 claim | 204
    POST {api}/v1/worker/jobs/{id}/heartbeat  {lease_id, progress, message} -> {cancelled, ...}
    POST {api}/v1/worker/jobs/{id}/complete   {lease_id, result}
    POST {api}/v1/worker/jobs/{id}/fail       {lease_id, error, retryable}
    POST {api}/v1/worker/jobs/{id}/release    {lease_id}

Every request carries `Authorization: Bearer <worker token>`. Failures are sorted for the loop:
`ApiUnavailableError` (no connection, a timeout, a 5xx: try again later), `LeaseLostError`
(409 or 404: the job is no longer ours, abandon it), `WorkerAuthError` (401/403: retrying will
not help).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from planner.plan import Plan
from planner.validation import ValidationResult, ValidationSettings

REQUEST_TIMEOUT_S = 30.0


class ApiUnavailableError(Exception):
    """The API could not be reached or answered with a server error; retry with back-off."""


class LeaseLostError(Exception):
    """The API refused a report under this lease (409) or forgot the job (404)."""


class WorkerAuthError(Exception):
    """The API rejected the worker token (401/403, or 503: worker endpoints disabled)."""


@dataclass(frozen=True)
class Claim:
    """A job this worker holds under `lease_id`."""

    job_id: str
    settings: ValidationSettings
    plan: Plan
    lease_id: str
    lease_expires_at: str


class WorkerClient:
    """One HTTP connection pool to the API; use one per thread."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"),
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}"},
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            response = self._http.post(path, json=body)
        except httpx.TransportError as exc:
            raise ApiUnavailableError(f"{path}: {exc!r}") from exc
        if response.status_code in (401, 403) or (
            response.status_code == 503 and "worker" in response.text
        ):
            raise WorkerAuthError(f"{path}: {response.status_code} {response.text[:200]}")
        if response.status_code >= 500:
            raise ApiUnavailableError(f"{path}: {response.status_code} {response.text[:200]}")
        if response.status_code in (404, 409):
            raise LeaseLostError(f"{path}: {response.status_code} {response.text[:200]}")
        response.raise_for_status()
        return response

    def claim(self, worker_id: str) -> Claim | None:
        """The oldest queued job under a fresh lease, or None when nothing is queued."""
        response = self._post("/v1/worker/claim", {"worker_id": worker_id})
        if response.status_code == 204:
            return None
        data = response.json()
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
        return bool(
            self._post(f"/v1/worker/jobs/{claim.job_id}/heartbeat", body)
            .json()
            .get("cancelled", False)
        )

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
