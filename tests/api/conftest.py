"""Fixtures for the API tests: a real database per test (SQLite file, or a fresh PostgreSQL
schema), a controllable clock, an app client, and fixtures for the factories of tests/factories.py.

`database_url` runs every test that uses it twice: on SQLite and on PostgreSQL. The PostgreSQL
run reads LTD_TEST_POSTGRES_URL (default: the CI machines' server); when that server does not
answer, it skips locally and FAILS under CI (env CI set), so CI never silently skips it.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url
from starlette.exceptions import StarletteDeprecationWarning

from api.main import create_app
from api.settings import Settings
from tests import factories

with warnings.catch_warnings():
    # Starlette asks for `httpx2` instead of `httpx`: a warning about the HTTP library its test
    # client imports, not about our code (installing httpx2 silences it for good).
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

POSTGRES_URL = os.environ.get(
    "LTD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
WORKER_TOKEN = "test-worker-token"


def _libpq_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _postgres_or_skip() -> None:
    try:
        with psycopg.connect(_libpq_dsn(POSTGRES_URL), connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at LTD_TEST_POSTGRES_URL is unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the PostgreSQL tests)")
        pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections see only a fresh schema of their own, dropped afterwards."""
    _postgres_or_skip()
    schema = "ltd_test_" + uuid.uuid4().hex[:12]
    dsn = _libpq_dsn(POSTGRES_URL)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A real, empty database: a SQLite file, or a PostgreSQL schema of this test's own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ltd.db'}"
    return str(request.getfixturevalue("postgres_url"))


class FakeClock:
    """Aware UTC time that moves 1 ms per reading (so creation order is strict) and jumps on
    `advance(seconds)`."""

    def __init__(self) -> None:
        self._now = datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(milliseconds=1)
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, worker_token=WORKER_TOKEN, lease_seconds=30, max_attempts=3
    )


@pytest.fixture
def make_client(clock: FakeClock) -> Iterator[Callable[..., TestClient]]:
    """`make_client(settings)`: a started app (migrated) and its client, closed afterwards."""
    with ExitStack() as stack:

        def make(settings: Settings) -> TestClient:
            app = create_app(settings, clock=clock)
            return stack.enter_context(TestClient(app))

        yield make


@pytest.fixture
def client(make_client: Callable[..., TestClient], settings: Settings) -> TestClient:
    return make_client(settings)


@pytest.fixture
def worker_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {WORKER_TOKEN}"}


@pytest.fixture
def plan_request() -> Callable[..., dict[str, Any]]:
    """A small plan request (GPT-2 small, 8 sequences, 100 steps) with overrides."""
    return factories.gpt2_plan_request


@pytest.fixture
def validation_result() -> Callable[..., dict[str, Any]]:
    """A plausible ValidationResult body, as a worker on a CPU would report it."""
    return factories.validation_result


@pytest.fixture
def stored_plan(client: TestClient, plan_request: Callable[..., dict[str, Any]]) -> str:
    """The id of a stored tiny plan."""
    response = client.post("/v1/plans", json=plan_request())
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def queued_job(client: TestClient, stored_plan: str) -> str:
    """The id of a queued job for `stored_plan`."""
    response = client.post("/v1/jobs", json={"plan_id": stored_plan})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many generated cases the OpenAPI fuzz test ran, per database."""
    for name, module in list(sys.modules.items()):
        cases = getattr(module, "FUZZ_CASES", None) if name.endswith("test_openapi_fuzz") else None
        if cases:
            ran = ", ".join(f"{n} on {db}" for db, n in cases.items())
            terminalreporter.write_line(f"OpenAPI fuzz: {sum(cases.values())} cases ({ran})")
