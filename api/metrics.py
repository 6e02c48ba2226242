"""Prometheus metrics: requests and latency by route template, jobs by state, queue depth.

Each app has its own registry, so several apps in one process (tests) do not collide. Routes are
labelled by their template (`/v1/jobs/{job_id}`), never the raw path, to bound the label count.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.models import JobState

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """The service's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ltd_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ltd_http_request_duration_seconds",
            "Request latency in seconds, by route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.jobs = Gauge("ltd_jobs", "Jobs by state.", ["state"], registry=self.registry)
        self.queue_depth = Gauge(
            "ltd_queue_depth", "Jobs waiting for a worker.", registry=self.registry
        )
        self.database_up = Gauge(
            "ltd_database_up",
            "1 when the last scrape could read the database, else 0.",
            registry=self.registry,
        )

    def render(self, jobs_by_state: dict[JobState, int] | None) -> bytes:
        """The Prometheus text exposition, job gauges refreshed from `jobs_by_state` (None: the
        database did not answer; the gauges keep their last values)."""
        self.database_up.set(0 if jobs_by_state is None else 1)
        for state, n in (jobs_by_state or {}).items():
            self.jobs.labels(state=state.value).set(n)
        if jobs_by_state is not None:
            self.queue_depth.set(jobs_by_state.get(JobState.QUEUED, 0))
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task) that times every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
