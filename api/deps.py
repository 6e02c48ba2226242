"""FastAPI dependencies, as `Annotated` aliases: settings, database, clock and access control.

They never block, so they are `async def`: FastAPI would run plain functions in its thread pool,
one thread hop each per request.

Access: worker endpoints need `Authorization: Bearer <LTD_WORKER_TOKEN>` (503 when the service
has no worker token); when LTD_API_KEYS or LTD_ADMIN_KEYS is set, the other /v1 endpoints need
one of the keys, as `Authorization: Bearer <key>` or `X-API-Key: <key>`, and the request acts for
the key's owner (`Caller`): a job belongs to the owner that submitted it, and only that owner and
admin keys see or cancel it. On an open service (no keys) every request sees every job.
`/metrics` needs LTD_METRICS_KEY when it is set. Tokens are compared in constant time and never
logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from pydantic import SecretStr

from api.cache import ReadCache
from api.db import Database
from api.service import Clock
from api.settings import ApiKey, Settings


async def app_settings(request: Request) -> Settings:
    """The settings the app was created with (`create_app(settings)`, by default the
    environment's cached `get_settings()`)."""
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_clock(request: Request) -> Clock:
    return request.app.state.clock  # type: ignore[no-any-return]


async def get_cache(request: Request) -> ReadCache:
    return request.app.state.cache  # type: ignore[no-any-return]


DbDep = Annotated[Database, Depends(get_db)]
CacheDep = Annotated[ReadCache, Depends(get_cache)]
ClockDep = Annotated[Clock, Depends(get_clock)]


@dataclass(frozen=True)
class Caller:
    """Who a /v1 request acts for: the owner of its key (None on an open service) and whether
    it sees every job (an admin key, or a service without keys)."""

    owner: str | None
    admin: bool

    def sees(self, owner: str | None) -> bool:
        """Whether this caller may read and cancel a job of `owner`. A job submitted while the
        service was open has no owner: once keys are set, only admins see it."""
        return self.admin or (owner is not None and owner == self.owner)


OPEN_SERVICE = Caller(owner=None, admin=True)


def _matches(given: str, secrets: tuple[SecretStr, ...]) -> bool:
    """True when `given` equals one of `secrets`; compares against all, in constant time each."""
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(given.encode(), secret.get_secret_value().encode())
    return found


def _caller(given: str, settings: Settings) -> Caller | None:
    """The caller whose key `given` is, or None; compares against every key, in constant time
    each, whichever matches (an admin key and an API key are never the same: `Settings`)."""
    found: Caller | None = None
    keys: list[tuple[ApiKey, bool]] = [(k, False) for k in settings.api_keys]
    keys += [(k, True) for k in settings.admin_keys]
    for key, admin in keys:
        if hmac.compare_digest(given.encode(), key.key.get_secret_value().encode()):
            found = Caller(owner=key.owner, admin=admin)
    return found


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


# The access checks read the headers themselves (one dependency each: FastAPI's cost per
# dependency is a large part of a cached read), and `document_security` states them in the
# OpenAPI document as FastAPI's security classes would.
async def require_api_key(request: Request) -> None:
    """Pass when no keys are configured, or the request carries one of them; either way the
    request's `Caller` is left in `request.state.caller` (routes read it, `CallerDep`)."""
    settings: Settings = request.app.state.settings
    if not settings.keyed:
        request.state.caller = OPEN_SERVICE
        return
    given = request.headers.get("x-api-key") or _bearer(request)
    caller = None if given is None else _caller(given, settings)
    if caller is None:
        raise _unauthorized(
            "missing or invalid API key (Authorization: Bearer <key> or X-API-Key: <key>)"
        )
    request.state.caller = caller


async def get_caller(request: Request) -> Caller:
    """The caller `require_api_key` identified (it runs first: a router dependency)."""
    return request.state.caller  # type: ignore[no-any-return]


CallerDep = Annotated[Caller, Depends(get_caller)]


async def require_metrics_key(request: Request) -> None:
    """Pass when LTD_METRICS_KEY is unset, or the request carries it as a bearer token."""
    settings: Settings = request.app.state.settings
    if settings.metrics_key is None:
        return
    given = _bearer(request)
    if given is None or not _matches(given, (settings.metrics_key,)):
        raise _unauthorized("missing or invalid metrics key (Authorization: Bearer <key>)")


async def require_worker_token(request: Request) -> None:
    """Pass only with the worker token; without one configured, worker endpoints are off."""
    settings: Settings = request.app.state.settings
    if settings.worker_token is None:
        raise HTTPException(
            503,
            "worker endpoints are disabled: set LTD_WORKER_TOKEN on the "
            "service (ltd serve --with-worker generates one)",
        )
    given = _bearer(request)
    if given is None or not _matches(given, (settings.worker_token,)):
        raise _unauthorized("missing or invalid worker token (Authorization: Bearer <token>)")


SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "ApiKeyBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "One of LTD_API_KEYS or LTD_ADMIN_KEYS (only when the service sets "
        "them). A key sees only its own jobs; an admin key sees every job.",
    },
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "WorkerToken": {"type": "http", "scheme": "bearer", "description": "LTD_WORKER_TOKEN."},
    "MetricsKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "LTD_METRICS_KEY (only when the service sets it).",
    },
}


def document_security(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the access checks stated: worker endpoints need the worker
    token, every other /v1 endpoint one of the API keys, /metrics the metrics key."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema["paths"].items():
        security: list[dict[str, list[str]]]
        if path.startswith("/v1/worker/"):
            security = [{"WorkerToken": []}]
        elif path.startswith("/v1/"):
            security = [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]
        elif path == "/metrics":
            security = [{"MetricsKey": []}]
        else:
            continue
        for operation in operations.values():
            operation["security"] = security
    return schema


# The statuses the access checks and the body limit answer with, for the OpenAPI document.
Responses = dict[int | str, dict[str, Any]]
BAD_BODY = {"description": "The body could not be read as the declared content type"}
TOO_LARGE = {"description": "The body is over LTD_MAX_BODY_BYTES; nothing was read or stored"}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}
DATABASE_UNAVAILABLE = {
    "description": "The database is unreachable or locked: nothing was done; try again after "
    "Retry-After seconds",
    "headers": RETRY_AFTER,
}
API_KEY_RESPONSES: Responses = {
    400: BAD_BODY,
    401: {
        "description": "LTD_API_KEYS or LTD_ADMIN_KEYS is set and the request carries no valid key"
    },
    413: TOO_LARGE,
    503: DATABASE_UNAVAILABLE,
}
WORKER_RESPONSES: Responses = {
    400: BAD_BODY,
    401: {"description": "The worker token is missing or wrong"},
    413: TOO_LARGE,
    503: {
        "description": "The service has no LTD_WORKER_TOKEN (worker endpoints are off), or the "
        "database is unreachable or locked (with Retry-After: try again)",
        "headers": RETRY_AFTER,
    },
}
