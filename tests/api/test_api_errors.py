"""Only the planner's refusal (`PlanInputError`) and the body's validation are a 422: any other
error a planner function raises is a bug, answered 500 without its text and logged with its
traceback through the `api` logger. On a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytest

from api.main import create_app

with warnings.catch_warnings():  # see tests/api/conftest.py
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "the exception's own text, which may quote the input"


@pytest.mark.parametrize("error", [ZeroDivisionError, ValueError, KeyError])
@pytest.mark.parametrize("planner_function", ["resolve", "plan"])
def test_a_planner_bug_is_a_logged_500_that_says_nothing_of_it(
    settings,
    clock,
    plan_request,
    monkeypatch,
    caplog,
    error: type[Exception],
    planner_function: str,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise error(SECRET)

    monkeypatch.setattr(f"api.service.{planner_function}", broken)  # as api.service calls it
    caplog.set_level(logging.ERROR, logger="api")
    with TestClient(create_app(settings, clock=clock), raise_server_exceptions=False) as client:
        response = client.post("/v1/plans", json=plan_request())
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert SECRET not in response.text
    (record,) = [r for r in caplog.records if r.name == "api" and r.levelno == logging.ERROR]
    assert "POST /v1/plans" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is error
    assert "Traceback" in caplog.text and SECRET in caplog.text  # the log keeps the detail


def test_the_planners_refusal_is_still_a_422_naming_the_field(client, plan_request) -> None:
    response = client.post("/v1/plans", json=plan_request(random_ltd={"min_value": 4096}))
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["loc"][0] == "body" and "min_value" in detail["loc"], detail
