"""`plan(request)`: a baseline and a random-LTD run side by side, from one request.

The steps, in their modules: the request (`planner.request`) is resolved (`planner.resolve`:
defaults settled, the plan id, the two runs as step profiles), then summarised into the plan
document (`planner.document`).
"""

from __future__ import annotations

from typing import Any

from planner.document import Plan, plan_from_runs
from planner.request import PlanRequest, parse_request
from planner.resolve import build_runs, resolve


def plan(request: PlanRequest | dict[str, Any]) -> Plan:
    """The plan document for a request (a PlanRequest or its JSON form)."""
    req = request if isinstance(request, PlanRequest) else parse_request(request)
    return plan_from_runs(build_runs(resolve(req)))
