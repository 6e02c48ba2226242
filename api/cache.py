"""A short-lived read cache of stored documents (plans by id, jobs by id), per process.

Hot reads (a plan polled by CI, a job polled by `ltd submit --wait`) are served from memory on the
event loop, without a database round trip or a hop to the thread pool. An entry is dropped:
- at once, when this process commits any write (`Database.generation` moves on), so a client
  reads its own writes and a worker's report shows on the next read;
- after `LTD_READ_CACHE_SECONDS` (default 1 s), so that writes committed by another replica of
  the service show within that time;
- when the entries' text passes 64 MiB (oldest first).
`LTD_READ_CACHE_SECONDS=0` turns it off. Misses read the database in the thread pool.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.db import Database


class ReadCache:
    """Documents read from the database, by key, while this process has written nothing since
    and for at most `ttl_s` seconds; at most `max_bytes` of their text in all."""

    def __init__(self, db: Database, *, ttl_s: float, max_bytes: int = 64 * 2**20) -> None:
        self._db, self.ttl_s, self.max_bytes = db, ttl_s, max_bytes
        self._entries: dict[Hashable, tuple[Any, int, float, int]] = {}  # oldest first
        self._bytes = 0
        self._lock = threading.Lock()
        self._pending: dict[tuple[Hashable, int], asyncio.Future[Any]] = {}

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, generation, stored_at, _ = entry
        if generation != self._db.generation or time.monotonic() - stored_at > self.ttl_s:
            return None
        return value

    def put(self, key: Hashable, value: Any, *, generation: int | None = None) -> None:
        """Keep `value` under `key`, as of `generation` (default: now)."""
        if self.ttl_s <= 0:
            return
        generation = self._db.generation if generation is None else generation
        now, size = time.monotonic(), _size(key) + _size(value)
        with self._lock:  # pool threads fill it too
            self._drop(key)
            while self._entries and (
                self._bytes + size > self.max_bytes or self._stale(next(iter(self._entries)), now)
            ):
                self._drop(next(iter(self._entries)))  # the oldest: too much, or stale
            self._entries[key] = (value, generation, now, size)
            self._bytes += size

    def _stale(self, key: Hashable, now: float) -> bool:
        _, generation, stored_at, _ = self._entries[key]
        return generation != self._db.generation or now - stored_at > self.ttl_s

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[3]

    def fill(
        self, key: Hashable, load: Callable[[], Any | None], generation: int | None = None
    ) -> Any | None:
        """`load()` (a blocking database read), kept under `key` unless None. `generation`:
        the one before the read began (default: now), so a write during it voids the entry."""
        generation = self._db.generation if generation is None else generation
        value = load()
        if value is not None:
            self.put(key, value, generation=generation)
        return value

    async def read(self, key: Hashable, load: Callable[[], Any | None]) -> Any | None:
        """The cached value, else `load()` run in the thread pool (and cached). Readers that
        miss together share one load, unless a write came between (read-your-writes)."""
        value = self.get(key)
        if value is not None:
            return value
        generation = self._db.generation
        flight = (key, generation)
        pending = self._pending.get(flight)
        if pending is None:
            load_now = run_in_threadpool(self.fill, key, load, generation)
            pending = asyncio.ensure_future(load_now)
            self._pending[flight] = pending
            pending.add_done_callback(lambda _: self._pending.pop(flight, None))
        return await asyncio.shield(pending)

    async def reread(self, key: Hashable, load: Callable[[], Any | None]) -> Any | None:
        """`load()` in the thread pool, whatever is cached (and cached)."""
        return await run_in_threadpool(self.fill, key, load)


def _size(value: Any) -> int:
    """About the memory an entry holds: its text, or 1 KiB for anything else."""
    if isinstance(value, str | bytes):
        return len(value) + 64
    if isinstance(value, tuple):
        return sum(_size(item) for item in value)
    return 1024
