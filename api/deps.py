"""FastAPI dependencies, as `Annotated` aliases: settings, database, clock and access control.

They never block, so they are `async def`: FastAPI would run plain functions in its thread pool,
one thread hop each per request.

Access: worker endpoints need `Authorization: Bearer <LTD_WORKER_TOKEN>` (503 when the service
has no worker token); when LTD_API_KEYS is set, the other /v1 endpoints need one of the keys, as
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Tokens are compared in constant time and
never logged.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, SecretStr, ValidationError

from api.db import Database
from api.service import Clock
from api.settings import Settings


async def app_settings(request: Request) -> Settings:
    """The settings the app was created with (`create_app(settings)`, by default the
    environment's cached `get_settings()`)."""
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_clock(request: Request) -> Clock:
    return request.app.state.clock  # type: ignore[no-any-return]


DbDep = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]

_api_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKeyBearer",
    description="One of LTD_API_KEYS (only when the service sets them).",
)
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader")
_worker_bearer = HTTPBearer(
    auto_error=False, scheme_name="WorkerToken", description="LTD_WORKER_TOKEN."
)

BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_api_bearer)]
ApiKeyHeaderDep = Annotated[str | None, Depends(_api_key_header)]
WorkerBearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_worker_bearer)]


def _matches(given: str, secrets: tuple[SecretStr, ...]) -> bool:
    """True when `given` equals one of `secrets`; compares against all, in constant time each."""
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(given.encode(), secret.get_secret_value().encode())
    return found


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def require_api_key(
    settings: SettingsDep, bearer: BearerDep, header: ApiKeyHeaderDep
) -> None:
    """Pass when no API keys are configured, or the request carries one of them."""
    if not settings.api_keys:
        return
    given = header if header is not None else (bearer.credentials if bearer else None)
    if given is None or not _matches(given, settings.api_keys):
        raise _unauthorized(
            "missing or invalid API key (Authorization: Bearer <key> or X-API-Key: <key>)"
        )


async def require_worker_token(settings: SettingsDep, bearer: WorkerBearerDep) -> None:
    """Pass only with the worker token; without one configured, worker endpoints are off."""
    if settings.worker_token is None:
        raise HTTPException(
            503,
            "worker endpoints are disabled: set LTD_WORKER_TOKEN on the "
            "service (ltd serve --with-worker generates one)",
        )
    if bearer is None or not _matches(bearer.credentials, (settings.worker_token,)):
        raise _unauthorized("missing or invalid worker token (Authorization: Bearer <token>)")


def _integral(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def strict_json(model: type[BaseModel]) -> Any:
    """A route dependency that validates the JSON body as `model` in pydantic's strict mode, as
    the OpenAPI schema reads: `true` is not the integer 1, nor `"5"` the number 5 (FastAPI's
    own validation of the body parameter is lax). As in JSON Schema, 60.0 is an integer.
    Refusals are 422s located under `body`; a body that is not JSON is left to FastAPI."""

    async def check(request: Request) -> None:
        try:
            data = json.loads(await request.body(), parse_float=_integral)
        except ValueError:
            return
        try:
            model.model_validate_json(json.dumps(data), strict=True)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from None

    return Depends(check)


# The statuses the access checks and the body limit answer with, for the OpenAPI document.
Responses = dict[int | str, dict[str, Any]]
BAD_BODY = {"description": "The body could not be read as the declared content type"}
TOO_LARGE = {"description": "The body is over LTD_MAX_BODY_BYTES; nothing was read or stored"}
API_KEY_RESPONSES: Responses = {
    400: BAD_BODY,
    401: {"description": "LTD_API_KEYS is set and the request carries no valid key"},
    413: TOO_LARGE,
}
WORKER_RESPONSES: Responses = {
    400: BAD_BODY,
    401: {"description": "The worker token is missing or wrong"},
    413: TOO_LARGE,
    503: {"description": "The service has no LTD_WORKER_TOKEN: worker endpoints are off"},
}
