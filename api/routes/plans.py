"""`/v1/plans`: compute, store and read plans.

`POST /v1/plans` always answers 201 with the plan document and `Location: /v1/plans/{id}`,
whether the plan was computed now or already stored: the id is a hash of the normalised request,
so the same request (in any spelling that normalises alike) is served from storage, unrecomputed.

Nothing blocks the event loop: a stored plan is served from the read cache (`api.cache`), and
every database call runs in the thread pool, so one slow round trip delays only its request.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api import crud, service
from api.body import JsonBody, read_json
from api.cache import ReadCache
from api.db import Database, row_key
from api.deps import API_KEY_RESPONSES, DbDep, require_api_key
from api.errors import NotFoundError
from api.routes import Id, json_text
from planner import Plan, PlanRequest
from planner.validation import ValidationResult
from present.report import render_report
from wire.limits import MAX_OFFSET, PAGE_SIZE
from wire.plans import PLAN_REQUEST_EXAMPLE, PlansPublic

router = APIRouter(
    prefix="/v1/plans",
    tags=["plans"],
    dependencies=[Depends(require_api_key)],
    responses=API_KEY_RESPONSES,
)

PLAN_EXAMPLES = {
    "preset": {"summary": "A preset model and a token budget", "value": PLAN_REQUEST_EXAMPLE},
    "paper": {
        "summary": "The paper's GPT-3 1.3B run (33.3% LayerToken saving)",
        "value": {
            "model": "gpt3-1.3b",
            "train_batch_size": 512,
            "train_tokens": 300_000_000_000,
            "ltd_train_tokens": 200_000_000_000,
            "random_ltd": {
                "min_value": 128,
                "max_value": 2048,
                "seq_per_step": 16,
                "require_steps": 133_333,
            },
        },
    },
}


BODY = JsonBody(PlanRequest, examples=PLAN_EXAMPLES)
MEMO_BODY_BYTES = 16_384  # request bodies up to this size keep their plan id in the read cache


@router.post(
    "",
    status_code=201,
    response_model=Plan,
    responses={422: {"description": "A field of the request is invalid (named in loc)"}},
    openapi_extra=BODY.openapi,
)
async def create_plan(body: Annotated[bytes, Depends(read_json)], http: Request) -> Response:
    """Plan a request, or return the stored plan of the same normalised request (201 both)."""
    # The app's parts from `http.app.state`, not as dependencies: FastAPI's cost per dependency
    # is a large part of a cached read (docs/benchmarks.md).
    db: Database = http.app.state.db
    cache: ReadCache = http.app.state.cache
    # The same bytes plan to the same id: bytes already validated and planned need neither again.
    plan_id: str | None = cache.get(("plan id", body))
    document: str | None = None
    if plan_id is not None:
        document = await _cached_plan(cache, db, plan_id)
    if document is not None:
        return json_text(document, 201, {"Location": f"/v1/plans/{plan_id}"})
    request = BODY.parse(body)
    # A stored profile named by id is read first (in get_or_create_plan): the plan id hashes
    # the profile's numbers. An id always names the same numbers (a profile never changes), so
    # the bytes are memoised all the same.
    if not isinstance(request.hardware.device_profile, str):
        plan_id = service.plan_id_of(request, loc=["body"])
        document = await _cached_plan(cache, db, plan_id)
    if document is None:  # a new plan, or a stored profile to read: in the thread pool
        plan_id, created = await run_in_threadpool(
            service.get_or_create_plan, db, request, loc=["body"], now=http.app.state.clock()
        )
        document = created
    if len(body) <= MEMO_BODY_BYTES:
        cache.put(("plan id", body), plan_id)
    return json_text(document, 201, {"Location": f"/v1/plans/{plan_id}"})


async def _cached_plan(cache: ReadCache, db: Database, plan_id: str) -> str | None:
    """The stored plan document, from the read cache or the database (None: unknown id)."""
    return await cache.read(row_key("plans", plan_id), partial(service.find_plan, db, plan_id))  # type: ignore[no-any-return]


@router.get("", response_model=PlansPublic)
def list_plans(
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE, description="Plans per page.")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Plans to skip.")] = 0,
) -> Response:
    """Stored plans, newest first: `{data: [plan, ...], count}`."""
    with db.read() as session:
        documents, count = crud.list_plan_json(session, limit=limit, offset=offset)
    return json_text('{"data":[' + ",".join(documents) + f'],"count":{count}}}')


@router.get(
    "/{plan_id}/report", response_class=HTMLResponse, responses={404: {"description": "Unknown id"}}
)
def plan_report(plan_id: Id, db: DbDep) -> HTMLResponse:
    """The plan as a page people look at: projection, figures (inline SVG, no external assets),
    and once a validation job has succeeded, its measurements and the calibrated projection."""
    document = Plan.model_validate_json(service.stored_plan(db, plan_id))
    with db.read() as session:
        job = crud.latest_succeeded_job(session, plan_id=plan_id)
        result = _readable(job.result_json) if job and job.result_json else None
        job_id = job.id if result is not None and job is not None else None
    return HTMLResponse(render_report(document, result, job_id))


def _readable(result_json: str) -> ValidationResult | None:
    """A stored result, or None when it no longer reads (an earlier version stored it, e.g.
    a diverged run's NaN loss as null): the page then shows the plan without it. Its calibrated
    projection, stored in the plan, still shows."""
    try:
        return ValidationResult.model_validate_json(result_json)
    except ValidationError:
        return None


@router.get("/{plan_id}", response_model=Plan, responses={404: {"description": "Unknown id"}})
async def get_plan(plan_id: Id, http: Request) -> Response:
    """A stored plan; `calibrated` is set once a validation job of it has succeeded."""
    db: Database = http.app.state.db
    cache: ReadCache = http.app.state.cache
    document = await _cached_plan(cache, db, plan_id)
    if document is None:
        raise NotFoundError("plan", plan_id)
    return json_text(document)
