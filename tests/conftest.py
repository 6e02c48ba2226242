"""Shared test settings: a Hypothesis profile sized for the 2-core CI machine, and the
`live_server` fixture (tests/servers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.servers import LtdServer, start_ltd_serve

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LtdServer]]:
    """`live_server(*args, database_url=..., worker_token=..., env=..., port=..., cwd=...)`: a
    real `ltd serve` process (`tests.servers.start_ltd_serve`; in `tmp_path` unless `cwd` says
    otherwise), healthy when it returns; every server it started is stopped after the test."""
    started: list[LtdServer] = []

    def start(*args: str, cwd: Path | None = None, **options: Any) -> LtdServer:
        server = start_ltd_serve(cwd or tmp_path, *args, **options)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.close()
