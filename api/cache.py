"""A short-lived read cache of stored documents (plans by id, jobs by id), per process.

Hot reads (a plan polled by CI, a job polled by `ltd submit --wait`) are served from memory on the
event loop, without a database round trip or a hop to the thread pool. An entry is dropped:
- at once, when this process commits any write (`Database.generation` moves on), so a client
  reads its own writes and a worker's report shows on the next read;
- after `LTD_READ_CACHE_SECONDS` (default 1 s), so that writes committed by another replica of
  the service show within that time.
`LTD_READ_CACHE_SECONDS=0` turns it off. Misses read the database in the thread pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.db import Database


class ReadCache:
    def __init__(self, db: Database, *, ttl_s: float, max_entries: int = 10_000) -> None:
        self._db, self.ttl_s, self.max_entries = db, ttl_s, max_entries
        self._entries: dict[Hashable, tuple[Any, int, float]] = {}
        self._pending: dict[tuple[Hashable, int], asyncio.Future[Any]] = {}

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, generation, stored_at = entry
        if generation != self._db.generation or time.monotonic() - stored_at > self.ttl_s:
            return None
        return value

    def fill(self, key: Hashable, load: Callable[[], Any | None]) -> Any | None:
        """`load()` (a blocking database read), kept under `key` unless None."""
        generation = self._db.generation  # before the read: a write during it voids the entry
        value = load()
        if value is not None and self.ttl_s > 0:
            if len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest
            self._entries[key] = (value, generation, time.monotonic())
        return value

    async def read(self, key: Hashable, load: Callable[[], Any | None]) -> Any | None:
        """The cached value, else `load()` run in the thread pool (and cached). Readers that
        miss together share one load, unless a write came between (read-your-writes)."""
        value = self.get(key)
        if value is not None:
            return value
        flight = (key, self._db.generation)
        pending = self._pending.get(flight)
        if pending is None:
            pending = asyncio.ensure_future(run_in_threadpool(self.fill, key, load))
            self._pending[flight] = pending
            pending.add_done_callback(lambda _: self._pending.pop(flight, None))
        return await asyncio.shield(pending)
