"""Client errors and their JSON form: 404 unknown ids, 409 state conflicts, 422 bad fields;
503 with Retry-After when the database is unreachable or locked (`database_unavailable`: the
request did nothing, a retry may succeed); and any other error, a bug, as a logged 500.

Every 422 has FastAPI's shape, `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`, whether
pydantic rejected the body or the planner did (`planner.PlanInputError`, whose dotted field path
becomes `loc`). The input is never echoed back: it may hold secrets. Only those two are a 422: a
planner that raises anything else (a ZeroDivisionError, a bare ValueError) has a bug, which is
logged with its traceback (logger `api`) and answered 500 without the exception's text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.db import outage_kind
from planner import PlanInputError
from planner.errors import field_loc, split_named

log = logging.getLogger("api")


class NotFoundError(Exception):
    """An id names nothing stored (404)."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")


class ConflictError(Exception):
    """The request clashes with the resource's state, e.g. a stale lease (409)."""


class FieldError(Exception):
    """A well-formed body whose field the planner refused (422)."""

    def __init__(self, loc: Sequence[str | int], msg: str, type_: str = "value_error") -> None:
        super().__init__(msg)
        self.loc, self.msg, self.type = list(loc), msg, type_


def plan_input_error(exc: PlanInputError, prefix: Sequence[str]) -> FieldError:
    """The planner's refusal as a 422 located under `prefix` (e.g. ["body", "request"])."""
    return FieldError([*prefix, *exc.field.split(".")], exc.message, "plan_input")


def _detail(loc: Sequence[str | int], msg: str, type_: str) -> dict[str, object]:
    return {"loc": list(loc), "msg": msg, "type": type_}


def _pydantic_detail(err: dict[str, Any]) -> dict[str, object]:
    """One pydantic error; a model-level rule that names its field first ("min_value: ...",
    the planner's convention) gets that field appended to `loc`."""
    loc, msg = field_loc(err["loc"]), str(err["msg"])
    named, rule = split_named(msg) if err["type"] == "value_error" else (None, msg)
    return _detail([*loc, named] if named else loc, rule, err["type"])


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [_pydantic_detail(e) for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def _field(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FieldError)
    return JSONResponse({"detail": [_detail(exc.loc, exc.msg, exc.type)]}, status_code=422)


async def _plan_input(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PlanInputError)
    err = plan_input_error(exc, ["body"])
    return JSONResponse({"detail": [_detail(err.loc, err.msg, err.type)]}, status_code=422)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    """Any error no other handler answers: a bug. Logged with its traceback; the answer says
    nothing of it (its text may hold the input). Starlette raises it again afterwards, for the
    server's own log and for test clients that ask for it."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


RETRY_AFTER_S = 5  # what a 503 asks a client to wait: about one PostgreSQL connect timeout


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After: the database is unreachable or locked. Logged without the driver's
    text (it names hosts); the request changed nothing (its transaction never committed)."""
    why = outage_kind(exc) or "unreachable"
    log.warning(
        "%s %s: database %s (%s)", request.method, request.url.path, why, type(exc).__name__
    )
    return JSONResponse(
        {"detail": f"the database is {why}: try again in {RETRY_AFTER_S} s"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _dbapi_error(request: Request, exc: Exception) -> JSONResponse:
    """A driver error: 503 when it lost the connection; else a bug, raised on to `_internal`
    (a logged 500)."""
    if outage_kind(exc) is None:
        raise exc
    return await _database_unavailable(request, exc)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 with an Allow header that lists every method the path serves (Starlette names only
    the first route that matched the path)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    allowed = {
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    }
    headers = {"Allow": ", ".join(sorted(allowed))}
    return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _method_not_allowed)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(FieldError, _field)
    app.add_exception_handler(PlanInputError, _plan_input)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeoutError, _database_unavailable)
    app.add_exception_handler(DBAPIError, _dbapi_error)
    app.add_exception_handler(Exception, _internal)
