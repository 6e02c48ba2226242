"""`/healthz` and `/metrics` (outside /v1: no API key, for probes and scrapers; /metrics needs
LTD_METRICS_KEY when the service sets one)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from api import crud
from api.db import unavailable
from api.deps import ClockDep, DbDep, SettingsDep, require_metrics_key

router = APIRouter(tags=["health"])

WHY = {
    "unreachable": "no connection to the database (refused, lost or timed out)",
    "locked": "another connection holds the database's write lock (SQLite busy)",
    "timeout": "the database did not answer within the probe's timeout",
}


@router.get(
    "/healthz",
    responses={
        503: {
            "description": "The database does not answer, or is locked: `database` says which, "
            "`reason` in words"
        }
    },
)
async def healthz(request: Request) -> JSONResponse:
    """200 `{status: ok}` when the database answered a query (SQLite: granted the write lock)
    within the last second, else 503 `{status: unavailable, database: unreachable | locked |
    timeout, reason}`. (`api.health.HealthProbe`: its own connection and thread, never the
    routes' pool.)"""
    why = await request.app.state.health.status()
    if why is not None:
        body = {"status": "unavailable", "database": why, "reason": WHY.get(why, why)}
        return JSONResponse(body, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require_metrics_key)],
    responses={401: {"description": "LTD_METRICS_KEY is set and the request does not carry it"}},
)
def metrics(request: Request, db: DbDep, clock: ClockDep, settings: SettingsDep) -> Response:
    """Prometheus text: requests and latency by route, jobs by state, queue depth, and whether
    the database answered (`ltd_database_up`; while it does not, the job gauges keep their last
    values, so a scrape never fails for the database)."""
    now = clock()
    lapse_at = db.availability.lapse_at(now, grace_s=settings.lease_seconds)
    counts = None
    try:
        with db.read() as session:
            counts = crud.count_jobs_by_state(session, now=lapse_at)
    except SQLAlchemyError as exc:
        if not unavailable(exc):
            raise
    body = request.app.state.metrics.render(counts)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
