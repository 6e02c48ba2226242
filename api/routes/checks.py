"""`/v1/checks`: a CI budget gate (`ltd check --server URL`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import ValidationError

from api import service
from api.body import JsonBody
from api.deps import API_KEY_RESPONSES, ClockDep, DbDep, require_api_key
from api.errors import FieldError
from planner import CheckResult, Plan, check_plan
from wire.plans import CheckCreate

BODY = JsonBody(CheckCreate)

router = APIRouter(
    prefix="/v1/checks",
    tags=["checks"],
    dependencies=[Depends(require_api_key)],
    responses=API_KEY_RESPONSES,
)


@router.post(
    "",
    response_model=CheckResult,
    responses={404: {"description": "compare_plan_id names no stored plan"}},
    openapi_extra=BODY.openapi,
)
def create_check(
    body: Annotated[CheckCreate, Depends(BODY)], db: DbDep, clock: ClockDep
) -> CheckResult:
    """Plan `request` (stored like `POST /v1/plans`) and hold it to `limits`:
    `{passed, violations: [{limit, allowed, actual}], plan, compared_to, changes}`.
    A failed check is still a 200: `passed` says so."""
    _, plan_json = service.get_or_create_plan(
        db, body.request, loc=["body", "request"], now=clock()
    )
    previous = None
    if body.compare_plan_id is not None:
        stored = service.stored_plan(db, body.compare_plan_id)
        try:
            previous = Plan.model_validate_json(stored)
        except ValidationError:  # stored by an earlier version whose plans no longer read
            raise FieldError(
                ["body", "compare_plan_id"],
                f"the stored plan {body.compare_plan_id!r} no longer reads as a plan of this "
                "version: plan it again and compare with that",
            ) from None
    return check_plan(Plan.model_validate_json(plan_json), body.limits, previous)
