"""The CLI's exit codes against a server: 3 when the server cannot be reached or fails (5xx),
naming the URL and what happened; 2 when it refuses the input (422, an unknown id, a refused key
or token), naming what to fix; bad settings (LTD_...) are bad input too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

pytest.importorskip("starlette")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from ltd.cli import main  # noqa: E402
from ltd.settings import get_cli_settings  # noqa: E402
from tests.servers import free_port, served  # noqa: E402
from worker.settings import get_worker_settings  # noqa: E402

CHECK = ["check", "--model", "gpt2", "--train-batch-size", "8", "--train-steps", "100"]
SUBMIT = ["submit", "--model", "gpt2", "--train-batch-size", "8", "--train-steps", "100"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings read from this test's environment, with no LTD_ variable of the shell's."""
    for name in ("LTD_API_URL", "LTD_API_KEY", "LTD_WORKER_TOKEN", "LTD_WORKER_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    get_cli_settings.cache_clear()
    get_worker_settings.cache_clear()
    yield
    get_cli_settings.cache_clear()
    get_worker_settings.cache_clear()


@pytest.fixture
def answering() -> Iterator[Callable[..., str]]:
    """`answering(status, detail)`: the URL of a stub server (an app of its own, in this
    process) that answers every request so."""
    with ExitStack() as stack:

        def start(status: int, detail: str = "stub") -> str:
            async def answer(request: Request) -> JSONResponse:
                return JSONResponse({"detail": detail}, status_code=status)

            app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
            return stack.enter_context(served(app))

        yield start


def test_an_unreachable_server_exits_3_naming_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, err = run(capsys, *CHECK, "--server", url)
    assert code == 3, err
    assert f"POST {url}/v1/checks" in err and "cannot reach the server" in err
    assert "Traceback" not in err
    code, err = run(capsys, *SUBMIT, "--server", url, "--no-wait")
    assert code == 3 and f"{url}/v1/jobs" in err, err


@pytest.mark.parametrize("status", [500, 503])
def test_a_failing_server_exits_3_naming_the_url_and_status(
    capsys: pytest.CaptureFixture[str], answering: Callable[..., str], status: int
) -> None:
    url = answering(status, "the database is down")
    code, err = run(capsys, *CHECK, "--server", url)
    assert code == 3, err
    assert f"POST {url}/v1/checks answered {status}: the database is down" in err


def test_a_refused_request_exits_2(
    capsys: pytest.CaptureFixture[str], answering: Callable[..., str]
) -> None:
    url = answering(422, "train_steps: too many")
    code, err = run(capsys, *CHECK, "--server", url)
    assert code == 2 and "request: the server refused it" in err and "train_steps" in err, err


def test_a_refused_api_key_exits_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
    answering: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = answering(401, "missing or invalid API key")
    monkeypatch.setenv("LTD_API_KEY", "wrong-key")
    code, err = run(capsys, *CHECK, "--server", url)
    assert code == 2 and "LTD_API_KEY: the server refused the key" in err, err
    assert "wrong-key" not in err


def test_an_unknown_plan_id_exits_2(
    capsys: pytest.CaptureFixture[str], answering: Callable[..., str]
) -> None:
    url = answering(404, "no plan p_nope")
    code, err = run(capsys, "submit", "--plan-id", "p_nope", "--server", url, "--no-wait")
    assert code == 2 and "id: not found" in err and "p_nope" in err, err


def test_the_worker_exits_2_on_a_refused_token_and_3_when_the_service_has_none(
    capsys: pytest.CaptureFixture[str], answering: Callable[..., str]
) -> None:
    refused = answering(401, "missing or invalid worker token")
    code, err = run(capsys, "worker", "--api", refused, "--token", "wrong", "--once")
    assert code == 2 and "--token: refused" in err, err
    off = answering(503, "worker endpoints are disabled: set LTD_WORKER_TOKEN")
    code, err = run(capsys, "worker", "--api", off, "--token", "any", "--once")
    assert code == 3 and "worker endpoints are disabled" in err and off in err, err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ([*CHECK, "--server", "localhost:8000"], "--server"),
        (["worker", "--api", "ftp://host", "--token", "t", "--once"], "--api"),
        (["worker", "--once"], "--token"),
    ],
)
def test_a_bad_flag_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    code, err = run(capsys, *argv)
    assert code == 2 and f"{named}: " in err, err


@pytest.mark.parametrize(
    ("variable", "value", "argv"),
    [
        ("LTD_API_URL", "not a url", [*SUBMIT, "--no-wait"]),
        ("LTD_API_URL", "127.0.0.1:8000", ["worker", "--token", "t", "--once"]),
        ("LTD_WORKER_DATA_DIR", "/nonexistent/ltd-data", ["worker", "--token", "t", "--once"]),
    ],
)
def test_a_bad_variable_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    argv: list[str],
) -> None:
    monkeypatch.setenv(variable, value)
    code, err = run(capsys, *argv)
    assert code == 2 and f"{variable}: " in err and "Traceback" not in err, err
