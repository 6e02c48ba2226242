"""The app factory: `create_app(settings=None)`; uvicorn's `--factory api.main:create_app`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI

from api.body import document_bodies
from api.cache import ReadCache
from api.db import Database, migrate
from api.deps import document_security
from api.errors import install_error_handlers
from api.health import HealthProbe
from api.limits import BodyLimitMiddleware
from api.metrics import Metrics, MetricsMiddleware
from api.routes import checks, device_profiles, health, jobs, plans, worker
from api.service import Clock, utcnow
from api.settings import Settings, get_settings

DESCRIPTION = """\
Plan random-LTD (random and layerwise token dropping) training runs, gate them in CI, and
validate them on real hardware through GPU workers.

Access: when the service sets `LTD_API_KEYS` (or `LTD_ADMIN_KEYS`), `/v1` endpoints need
`Authorization: Bearer <key>` or `X-API-Key: <key>`. A job belongs to the owner of the key that
submitted it: another key gets 404 for it, and lists only its own; admin keys see and cancel
every job. Plans and device profiles are shared (a plan is a function of its request; a profile
id, a hash of its numbers). Worker endpoints always need `Authorization: Bearer
<LTD_WORKER_TOKEN>`; `/metrics` needs `LTD_METRICS_KEY` when it is set.
Errors: 422 names the field (`detail[].loc`), 404 unknown ids, 409 state conflicts, 503 with
`Retry-After` when the database is unreachable or locked (`/healthz` says which).
"""


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The service. `settings` defaults to the environment's (`get_settings()`, cached);
    routes read them from `app.state.settings`. `clock` returns aware UTC datetimes (tests)."""
    if settings is None:
        settings = get_settings()
    clock = clock or utcnow
    db = Database(
        settings.database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        connect_timeout_s=settings.database_connect_timeout_seconds,
        clock=clock,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        app.state.worker_threads = anyio.CapacityLimiter(settings.worker_threads)
        if settings.migrate_on_start:
            migrate(settings.database_url)
        gc.collect()
        gc.freeze()  # what start-up built lives for good: full collections skip it (p99 latency)
        yield
        db.dispose()
        app.state.health.close()

    app = FastAPI(title="ltd-planner", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db
    app.state.health = HealthProbe(settings.database_url)
    app.state.cache = ReadCache(db, ttl_s=settings.read_cache_seconds)
    app.state.clock = clock
    app.state.metrics = Metrics()

    def openapi() -> dict[str, Any]:
        """FastAPI's document with what it cannot see stated: the bodies routes read through
        `api.body` and the access checks (`api.deps`). Built once."""
        if app.openapi_schema is None:
            schema = document_bodies(FastAPI.openapi(app))
            app.openapi_schema = document_security(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_error_handlers(app)
    for module in (plans, checks, jobs, device_profiles, worker, health):
        app.include_router(module.router)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
