"""`ApiClient`: base URL, bearer token, timeouts, retries with back-off, and the server's
answers sorted into a few errors that callers can act on.

Retries (tenacity) cover only failures that a second try can fix without doing anything twice:
a connection that was never made (any method: nothing reached the server), and for GET, which
is idempotent, also a timeout, a dropped connection or a 502/503/504.

The errors, and what the CLI makes of them (`ltd.cli.main`'s exit codes):

    ApiUnavailableError  no connection, a timeout, a 5xx            the server failed: exit 3
    ApiAuthError         401/403: the token or key was refused      bad input (the key): exit 2
    ApiRefusedError      404/409: unknown id, or a state conflict   bad input (the id): exit 2
    ApiInputError        422 or another 4xx: the request is wrong   bad input: exit 2
"""

from __future__ import annotations

from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

DEFAULT_API_URL = "http://127.0.0.1:8000"  # where `ltd serve` listens by default
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_ATTEMPTS = 3
RETRY_STATUSES = frozenset({502, 503, 504})
JSON_HEADERS = {"Content-Type": "application/json"}


class ApiError(Exception):
    """The API answered with an error, or could not be reached. `status` is None when no
    answer came back."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status, self.detail = status, detail


class ApiUnavailableError(ApiError):
    """No connection, a timeout, or a server error (5xx): try again later."""


class ApiAuthError(ApiError):
    """401/403: the token or key was refused; retrying will not help."""


class ApiRefusedError(ApiError):
    """404 or 409: the resource is unknown, or its state refuses the request."""


class ApiInputError(ApiError):
    """422 (or another 4xx): the request itself is wrong; `detail` is the server's."""


def http_url(value: str) -> str:
    """`value` as an API's base URL: http or https with a host, no trailing slash (ValueError
    otherwise, naming the value)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http:// or https:// URL with a host: {value!r}")
    return value.rstrip("/")


class _RetryableStatusError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response


def _retryable(method: str) -> Any:
    idempotent = method.upper() == "GET"

    def check(exc: BaseException) -> bool:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return True  # the request never reached the server
        return idempotent and isinstance(
            exc, httpx.TimeoutException | httpx.RemoteProtocolError | _RetryableStatusError
        )

    return retry_if_exception(check)


class ApiClient:
    """One connection pool to an ltd API; one per thread."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.attempts = attempts
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        response = self._http.request(method, path, **kw)
        if method.upper() == "GET" and response.status_code in RETRY_STATUSES:
            raise _RetryableStatusError(response)
        return response

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Send a request (with the retries above); a 2xx response, or one of the errors."""
        retrying = Retrying(
            retry=_retryable(method),
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=0.2, max=2.0),
            reraise=True,
        )
        where = f"{method} {self.base_url}{path}"
        try:
            response = retrying(self._send, method, path, **kw)
        except _RetryableStatusError as exc:
            response = exc.response
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise ApiUnavailableError(f"{where}: cannot reach the server ({reason})") from exc
        return _checked(response, where)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: BaseModel | None = None) -> httpx.Response:
        """POST `body` as JSON: the fields its maker set, so that the server's defaults fill
        the rest, and an explicit null (a measurement that has no value) stays."""
        if body is None:
            return self.request("POST", path)
        return self.request(
            "POST", path, content=body.model_dump_json(exclude_unset=True), headers=JSON_HEADERS
        )


def _checked(response: httpx.Response, where: str) -> httpx.Response:
    """The response if it is a success, else the error its status means."""
    status = response.status_code
    if status < 400:
        return response
    text = " ".join(response.text[:300].split())  # one line: a proxy's page is a log line
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = text
    message = f"{where} answered {status}: {detail if detail is not None else text}"
    if status in (401, 403):
        raise ApiAuthError(message, status=status, detail=detail)
    if status in (404, 409):
        raise ApiRefusedError(message, status=status, detail=detail)
    if status >= 500:
        raise ApiUnavailableError(message, status=status, detail=detail)
    raise ApiInputError(message, status=status, detail=detail)
