"""`/healthz` and `/metrics` (outside /v1: no API key, for probes and scrapers)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from api import crud, service
from api.deps import ClockDep, DbDep

router = APIRouter(tags=["health"])
log = logging.getLogger("api")


@router.get("/healthz", responses={503: {"description": "The database does not answer"}})
def healthz(db: DbDep) -> JSONResponse:
    """200 `{status: ok}` when the database answers a query, else 503."""
    try:
        db.ping()
    except SQLAlchemyError as exc:
        log.warning("health check: database unavailable: %s", type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", response_class=Response)
def metrics(request: Request, db: DbDep, clock: ClockDep) -> Response:
    """Prometheus text: requests and latency by route, jobs by state, queue depth."""
    service.sweep_expired_leases(db, now=clock())
    with db.read() as session:
        counts = crud.count_jobs_by_state(session)
    body = request.app.state.metrics.render(counts)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
