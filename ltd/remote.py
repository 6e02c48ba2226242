"""Talking to an ltd server from the CLI (httpx)."""

from __future__ import annotations

import os
from typing import Any

from planner.check import CheckLimits, CheckResult
from planner.plan import Plan, PlanRequest


class RemoteError(Exception):
    pass


def headers() -> dict[str, str]:
    key = os.environ.get("LTD_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def remote_check(server: str, req: PlanRequest, limits: CheckLimits,
                 previous: Plan | None) -> CheckResult:
    import httpx

    from ltd.cli import InputError

    body: dict[str, Any] = {"request": req.model_dump(mode="json", exclude_none=True),
                            "limits": limits.model_dump(exclude_none=True)}
    if previous is not None:
        body["compare_plan"] = previous.model_dump(mode="json")
    try:
        resp = httpx.post(server.rstrip("/") + "/v1/checks", json=body, headers=headers(),
                          timeout=60)
    except httpx.HTTPError as exc:
        raise InputError("--server", f"cannot reach {server}: {exc}") from None
    if resp.status_code == 422:
        detail = resp.json().get("detail")
        raise InputError("request", f"the server refused it: {detail}")
    if resp.status_code >= 400:
        raise InputError("--server", f"{server} answered {resp.status_code}: {resp.text[:300]}")
    return CheckResult.model_validate(resp.json())
