"""`/healthz` and `/metrics` (outside /v1: no API key, for probes and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api import crud
from api.deps import ClockDep, DbDep

router = APIRouter(tags=["health"])


@router.get("/healthz", responses={503: {"description": "The database does not answer"}})
async def healthz(request: Request) -> JSONResponse:
    """200 `{status: ok}` when the database answered a query within the last second, else 503.
    (`api.health.HealthProbe`: its own connection and thread, never the routes' pool.)"""
    if not await request.app.state.health.check():
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", response_class=Response)
def metrics(request: Request, db: DbDep, clock: ClockDep) -> Response:
    """Prometheus text: requests and latency by route, jobs by state, queue depth."""
    with db.read() as session:
        counts = crud.count_jobs_by_state(session, now=clock())
    body = request.app.state.metrics.render(counts)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
