"""`serve()`: migrate, then run the app under uvicorn until SIGINT or SIGTERM.

The service alone: a local worker (`ltd serve --with-worker`) is the CLI's business
(`ltd.serve`), which passes `on_listening` to start one once the server listens.

Secure by default: a service without keys (LTD_API_KEYS, LTD_ADMIN_KEYS) lets anyone who reaches
it read and cancel every job, so it listens only on loopback unless told `insecure_open`
(`ltd serve --insecure-open`), which it warns about (`check_exposure`).
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
import time
from collections.abc import Callable

import uvicorn

from api.db import migrate
from api.main import create_app
from api.settings import Settings, get_settings
from planner.errors import PlanInputError

log = logging.getLogger("api")

LISTEN_WAIT_S = 60.0  # how long `on_listening` waits for the server to listen before giving up


def is_loopback(host: str) -> bool:
    """Whether `host` listens on this machine only: `localhost` or a loopback address. Any other
    name may resolve to a public address, and "" or 0.0.0.0 or :: is every interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, settings: Settings, *, insecure_open: bool) -> None:
    """Refuse (PlanInputError naming --host: `ltd serve` exits 2) to listen beyond loopback
    without keys, unless `insecure_open`, which is logged as a warning."""
    if settings.keyed or is_loopback(host):
        return
    if not insecure_open:
        raise PlanInputError(
            "--host",
            f"{host or '(every interface)'} is not a loopback address, and the service has no "
            "keys: anyone who can reach it could read and cancel every job. Set LTD_API_KEYS "
            "(name:key pairs) or LTD_ADMIN_KEYS, or listen on 127.0.0.1, or pass "
            "--insecure-open to serve it open anyway",
        )
    log.warning(
        "serving on %s WITHOUT API KEYS (--insecure-open): anyone who can reach this port can "
        "submit, read and cancel every job; set LTD_API_KEYS to require keys",
        host or "every interface",
    )


def _shut_down_already(signum: int, _frame: object) -> None:
    """SIGTERM once uvicorn has shut down gracefully (it re-raises the signal): nothing left to
    do but return from `serve`, so that the process exits 0."""


def _when_listening(server: uvicorn.Server, callback: Callable[[], object]) -> None:
    """Call `callback` once `server` listens (never, when it stops first or never starts)."""
    deadline = time.monotonic() + LISTEN_WAIT_S
    while not server.started and not server.should_exit and time.monotonic() < deadline:
        time.sleep(0.05)
    if server.started and not server.should_exit:
        callback()


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    settings: Settings | None = None,
    on_listening: Callable[[], object] | None = None,
    insecure_open: bool = False,
) -> None:
    """Migrate the database, then run the service until interrupted (SIGINT/SIGTERM).
    `settings` defaults to the environment's; `on_listening` is called (in a thread of its own)
    once the server accepts connections. Beyond loopback it needs keys, or `insecure_open`
    (`check_exposure`).

    uvicorn shuts down gracefully on either signal, then re-raises it; a re-raised SIGTERM is
    ignored here, so `serve` returns and the process exits 0 (a clean, requested shutdown)."""
    settings = settings or get_settings()
    check_exposure(host, settings, insecure_open=insecure_open)
    migrate(settings.database_url)
    app = create_app(settings.model_copy(update={"migrate_on_start": False}))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
    if on_listening is not None:
        threading.Thread(
            target=_when_listening,
            args=(server, on_listening),
            name="ltd-on-listening",
            daemon=True,
        ).start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _shut_down_already)
    server.run()
