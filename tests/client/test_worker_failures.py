"""How the worker's client sorts failures (`client.worker`): who answered decides, never the URL
(every worker URL holds `/v1/worker/`). A load balancer's, a proxy's or uvicorn's 502/503/504,
a 408/429, a timeout, a dropped or refused connection is transient (`ApiUnavailableError`); only
the API's own answers stop: 401/403 and its 503 "worker endpoints are disabled"
(`WorkerAuthError`), 404/409 (`LeaseLostError`); 413/422 are the request's own fault
(`ApiInputError`). Every operation of the protocol sorts alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from client.worker import (
    ApiInputError,
    ApiUnavailableError,
    LeaseLostError,
    WorkerAuthError,
    WorkerClient,
)
from planner.validation import ValidationResult
from tests.factories import bare_validation_result

TOKEN = "failures-token"
RESULT = ValidationResult.model_validate(bare_validation_result(flops_saving=0.2, seconds=1.0))
NGINX_503 = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>"
    "\r\n</body>\r\n</html>\r\n"
)
API_OFF = "worker endpoints are disabled: set LTD_WORKER_TOKEN on the service"

OPERATIONS: dict[str, Callable[[WorkerClient], Any]] = {
    "claim": lambda c: c.claim("w-1"),
    "heartbeat": lambda c: c.heartbeat("j_1", "L-1", 0.5, "step 1"),
    "complete": lambda c: c.complete("j_1", "L-1", RESULT),
    "fail": lambda c: c.fail("j_1", "L-1", "boom", retryable=True),
    "release": lambda c: c.release("j_1", "L-1"),
}


def text(status: int, body: str, **headers: str) -> httpx.Response:
    """A proxy's or load balancer's answer: text, not the API's JSON."""
    return httpx.Response(status, text=body, headers=headers)


def api(status: int, detail: Any, **headers: str) -> httpx.Response:
    """The API's own answer: JSON with a `detail`."""
    return httpx.Response(status, json={"detail": detail}, headers=headers)


TRANSIENT, STOP, LOST, INPUT = ApiUnavailableError, WorkerAuthError, LeaseLostError, ApiInputError
# (who answers, the answer or the exception the transport raises, the error it must become)
CASES: list[tuple[str, httpx.Response | Exception, type[Exception]]] = [
    ("nginx 503", text(503, NGINX_503, Server="nginx"), TRANSIENT),
    ("uvicorn --limit-concurrency", text(503, "Service Unavailable"), TRANSIENT),
    ("a proxy naming the path", text(503, "no healthy upstream for /v1/worker/claim"), TRANSIENT),
    ("the API, its database down", api(503, "database unavailable", Server="uvicorn"), TRANSIENT),
    ("a gateway's 502", text(502, "Bad Gateway"), TRANSIENT),
    ("a gateway's 504", text(504, "Gateway Timeout"), TRANSIENT),
    ("a proxy's 408", text(408, "Request Timeout"), TRANSIENT),
    ("a rate limit", text(429, "Too Many Requests"), TRANSIENT),
    ("a read timeout", httpx.ReadTimeout("timed out"), TRANSIENT),
    ("a refused connection", httpx.ConnectError("connection refused"), TRANSIENT),
    ("a dropped connection", httpx.RemoteProtocolError("server disconnected"), TRANSIENT),
    ("the API without a worker token", api(503, API_OFF), STOP),
    ("the API refusing the token", api(401, "missing or invalid worker token"), STOP),
    ("the API forbidding", api(403, "forbidden"), STOP),
    ("the API refusing the lease", api(409, "lease not current"), LOST),
    ("the API not knowing the job", api(404, "no job j_1"), LOST),
    ("a body over the limit", api(413, "body too large"), INPUT),
    ("an invalid body", api(422, [{"loc": ["body", "result"], "msg": "bad"}]), INPUT),
]
KINDS = (ApiUnavailableError, WorkerAuthError, LeaseLostError, ApiInputError)


def client_answering(answer: httpx.Response | Exception) -> tuple[WorkerClient, list[str]]:
    """A WorkerClient whose every request gets `answer` (or raises it); the paths it sent."""
    sent: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    transport = httpx.MockTransport(handle)
    return WorkerClient("http://api.test", TOKEN, transport=transport), sent


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(("who", "answer", "kind"), CASES, ids=[c[0] for c in CASES])
def test_each_failure_is_sorted_by_who_answered(
    operation: str, who: str, answer: httpx.Response | Exception, kind: type[Exception]
) -> None:
    client, sent = client_answering(answer)
    with client, pytest.raises(kind) as raised:
        OPERATIONS[operation](client)
    assert sent and all(path.startswith("/v1/worker/") for path in sent)
    others = [k for k in KINDS if k is not kind]
    assert not isinstance(raised.value, tuple(others)), (who, type(raised.value))
    status = answer.status_code if isinstance(answer, httpx.Response) else None
    assert raised.value.status == status  # type: ignore[attr-defined]


def test_the_real_api_without_a_worker_token_is_told_apart_from_a_proxy(
    live_server: Callable[..., Any],
) -> None:
    """The API's own answer (`api.deps.require_worker_token`) is what the client recognises:
    the two sides agree on the words, not only on the status."""
    pytest.importorskip("fastapi")
    server = live_server(worker_token=None)
    with WorkerClient(server.url, TOKEN) as client, pytest.raises(WorkerAuthError) as raised:
        client.claim("w-1")
    assert raised.value.status == 503 and "LTD_WORKER_TOKEN" in str(raised.value)
