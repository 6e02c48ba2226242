"""The whole OpenAPI document, fuzzed: schemathesis generates requests for every operation
(valid and invalid ones) and runs every check it has on each answer: no server error, only
documented status codes and content types, bodies and headers as the schema says, schema-valid
requests accepted and schema-violating ones refused, auth enforced, 405s with an Allow header.
One check is made stricter where it must bend: a schema-valid request may be refused (422) only
for a rule of meaning that JSON Schema cannot state, never for one of shape.

On SQLite and on PostgreSQL. CI runs a fixed seed (`derandomize`) with FUZZ_EXAMPLES cases per
operation and database (default 60: over 2,000 cases in all); `make fuzz` runs a random seed
with more cases. The terminal summary prints how many cases ran.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks

from api.main import create_app
from api.settings import Settings

with warnings.catch_warnings():  # see tests/api/conftest.py
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow  # over 2,000 generated requests: `make test`, not `make test-fast`

API_KEY, WORKER_TOKEN, METRICS_KEY = "fuzz-api-key", "fuzz-worker-token", "fuzz-metrics-key"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
RANDOM = os.environ.get("FUZZ_RANDOM", "") not in ("", "0")

# Rules that JSON Schema cannot state (min_value <= max_value, a grid strictly ascending, a
# plan the planner can build) refuse schema-valid requests with a 422 whose errors are of these
# types; any other type (missing, int_type, greater_than, extra_forbidden, ...) is a rule the
# schema should have stated.
MEANING = {"value_error", "plan_input"}


@schemathesis.check
def positive_data_accepted_or_refused_on_meaning(ctx: Any, response: Any, case: Any) -> None:
    """schemathesis' positive_data_acceptance, except that a schema-valid request may be
    refused with a 422 whose every error is a rule of meaning (MEANING), never of shape."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if response.status_code == 422:
        kinds = {error["type"] for error in response.json()["detail"]}
        assert kinds <= MEANING, f"schema-valid request refused for its shape: {response.text}"
    elif response.status_code not in (200, 201, 202, 204, 401, 404, 409):
        raise AssertionError(f"schema-valid request answered {response.status_code}")


load_all_checks()
ALL_CHECKS = [
    check for check in CHECKS.get_all() if check.__name__ != "positive_data_acceptance"
] + [positive_data_accepted_or_refused_on_meaning]
FUZZ_CASES: dict[str, int] = {}  # database -> cases run (printed by tests/api/conftest.py)


class _Current:
    """The ASGI app under test: the fuzzed schema calls this, and a fixture points it at an app
    over the database of the test (the OpenAPI document is the same for every database)."""

    def __init__(self) -> None:
        # Only for the document: this app never opens its database.
        self.app: Any = create_app(
            Settings(database_url="sqlite:///unused.db", migrate_on_start=False)
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


CURRENT = _Current()
schema = schemathesis.openapi.from_asgi("/openapi.json", CURRENT)
# A body over LTD_MAX_BODY_BYTES is refused unread (413): a rejection like any other.
# No generated Authorization header: every call sends a valid one of its own (the auth checks
# still send their invalid ones). A generated one, replaced, could still count as the negated
# part of a case whose other part reads as valid once sent (`?device=false` for a string), and
# negative_data_rejection would then call a valid request accepted negative data.
schema.config.generation.update(with_security_parameters=False)
schema.config.checks.negative_data_rejection.expected_statuses.append("413")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fuzz_database(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """Points CURRENT at a started app over a fresh database; yields the database's name."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    app = create_app(
        Settings(
            database_url=url,
            worker_token=WORKER_TOKEN,
            api_keys=f"fuzz:{API_KEY}",
            metrics_key=METRICS_KEY,
        )
    )
    with TestClient(app):  # its lifespan: migrations, and the engine disposed at the end
        CURRENT.app = app
        yield str(request.param)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    database=None if not RANDOM else settings.default.database,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: Any, fuzz_database: str) -> None:
    token = (
        WORKER_TOKEN
        if case.path.startswith("/v1/worker")
        else METRICS_KEY
        if case.path == "/metrics"
        else API_KEY
    )
    FUZZ_CASES[fuzz_database] = FUZZ_CASES.get(fuzz_database, 0) + 1
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=ALL_CHECKS)
