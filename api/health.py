"""The health check behind `/healthz`: a database ping that never queues behind the routes.

It pings on a connection and a thread of its own (not the routes' pool, not the thread pool
that serves blocking routes), at most once per `max_age_s`: probes in between get the last
answer, so a load balancer polling hard costs the database nothing. A ping that takes longer
than `timeout_s` answers "timeout" without waiting further. The answer says why the database
cannot serve: "unreachable" (no connection), "locked" (SQLite: another connection holds the write
lock past the probe's busy timeout; the probe takes the write lock, as every write must) or
"timeout".
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.db import make_engine, outage_kind

log = logging.getLogger("api")

Answer = str | None  # None: the database serves; else why not ("unreachable", "locked", ...)


class HealthProbe:
    """`await probe.status()` -> None when the database answered recently, else why not;
    `await probe.check()` -> whether it did."""

    def __init__(self, url: str, *, max_age_s: float = 1.0, timeout_s: float = 2.0) -> None:
        self.max_age_s, self.timeout_s = max_age_s, timeout_s
        self._engine = make_engine(
            url,
            pool_size=1,
            max_overflow=0,
            connect_timeout_s=timeout_s,
            busy_timeout_ms=round(timeout_s * 500),  # "locked" before the probe times out
        )
        # SQLite: the ping takes the write lock, as every write must (WAL readers never wait).
        self._pinger = self._engine.execution_options(sqlite_begin="IMMEDIATE")
        self._thread: ThreadPoolExecutor | None = None  # made on first use, again after close
        self._last: tuple[float, Answer] | None = None  # (monotonic time, answer)
        self._pending: asyncio.Future[Answer] | None = None

    def _ping(self) -> Answer:
        try:
            with self._pinger.connect() as conn:  # closed: rolled back, the lock let go
                conn.execute(text("SELECT 1"))
            return None
        except SQLAlchemyError as exc:
            why = outage_kind(exc) or "unreachable"
            log.warning("health check: database %s: %s", why, type(exc).__name__)
            return why

    def _record(self, future: asyncio.Future[Answer]) -> None:
        self._pending = None
        failed = future.cancelled() or future.exception() is not None
        self._last = (time.monotonic(), "unreachable" if failed else future.result())

    async def status(self) -> Answer:
        if self._last is not None and time.monotonic() - self._last[0] < self.max_age_s:
            return self._last[1]
        if self._pending is None:  # one ping in flight, however many probes wait for it
            if self._thread is None:
                self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ltd-health")
            self._pending = asyncio.get_running_loop().run_in_executor(self._thread, self._ping)
            self._pending.add_done_callback(self._record)
        try:
            return await asyncio.wait_for(asyncio.shield(self._pending), self.timeout_s)
        except TimeoutError:
            return "timeout"

    async def check(self) -> bool:
        return await self.status() is None

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)
            self._thread, self._pending, self._last = None, None, None
        self._engine.dispose()
