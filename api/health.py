"""The health check behind `/healthz`: a database ping that never queues behind the routes.

It pings on a connection and a thread of its own (not the routes' pool, not the thread pool
that serves blocking routes), at most once per `max_age_s`: probes in between get the last
answer, so a load balancer polling hard costs the database nothing. A ping that takes longer
than `timeout_s` answers "unavailable" without waiting further.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.db import make_engine

log = logging.getLogger("api")


class HealthProbe:
    """`await probe.check()` -> True when the database answered `SELECT 1` recently."""

    def __init__(self, url: str, *, max_age_s: float = 1.0, timeout_s: float = 2.0) -> None:
        self.max_age_s, self.timeout_s = max_age_s, timeout_s
        self._engine = make_engine(url, pool_size=1, max_overflow=0, connect_timeout_s=timeout_s)
        self._thread: ThreadPoolExecutor | None = None  # made on first use, again after close
        self._last: tuple[float, bool] | None = None  # (monotonic time, answer)
        self._pending: asyncio.Future[bool] | None = None

    def _ping(self) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError as exc:
            log.warning("health check: database unavailable: %s", type(exc).__name__)
            return False

    def _record(self, future: asyncio.Future[bool]) -> None:
        self._pending = None
        ok = not future.cancelled() and future.exception() is None and future.result()
        self._last = (time.monotonic(), ok)

    async def check(self) -> bool:
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
            return False

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)
            self._thread, self._pending, self._last = None, None, None
        self._engine.dispose()
