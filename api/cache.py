"""A short-lived read cache of stored documents (plans by id, jobs by id), per process.

Hot reads (a plan polled by CI, a job polled by `ltd submit --wait`) are served from memory on the
event loop, without a database round trip or a hop to the thread pool. Documents are kept under
the key of the row they were read from (`api.db.row_key`: `("plans", id)`, `("jobs", id)`); other
keys (a request body's plan id) name no row. An entry is dropped:
- at once, when this process writes its row (`Database.written_at`), so a client reads its own
  writes and a worker's report shows on the next read, while writes to other rows (a queue's
  claims of other jobs) leave it be. A row written whole (a plan a completion calibrates) is
  replaced by the committed document instead (write-through, `Database.on_written`);
- after `LTD_READ_CACHE_SECONDS` (default 1 s), so that writes committed by another replica of
  the service show within about that time. Until twice that age, a read still answers from the
  entry while it refreshes it in the background (stale-while-revalidate), so that entries
  expiring together never make a burst of readers wait on the database: another replica's write
  shows at most twice the TTL later;
- when the entries' text passes 64 MiB (oldest first).
`LTD_READ_CACHE_SECONDS=0` turns it off. Misses read the database in the thread pool.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.db import Database, RowKey


class ReadCache:
    """Documents read from the database, by row key, while this process has not written their
    row since and for at most `ttl_s` seconds (`read`: up to twice that while it refreshes
    them); at most `max_bytes` of their text in all."""

    def __init__(self, db: Database, *, ttl_s: float, max_bytes: int = 64 * 2**20) -> None:
        self._db, self.ttl_s, self.max_bytes = db, ttl_s, max_bytes
        self._entries: dict[RowKey, tuple[Any, int, float, int]] = {}  # oldest first
        self._bytes = 0
        self._lock = threading.Lock()
        self._pending: dict[RowKey, tuple[int, asyncio.Future[Any]]] = {}  # loads, by row
        db.on_written.append(self.put_written)

    def get(self, key: RowKey) -> Any | None:
        entry = self._entries.get(key)
        age = self._age(key, entry)
        return entry[0] if entry is not None and age is not None and age <= self.ttl_s else None

    def put(self, key: RowKey, value: Any, *, generation: int | None = None) -> None:
        """Keep `value` under `key`, as read at `generation` (default: now)."""
        if self.ttl_s <= 0:
            return
        generation = self._db.generation if generation is None else generation
        now, size = time.monotonic(), _size(key) + _size(value)
        with self._lock:  # pool threads fill it too
            kept = self._entries.get(key)
            if kept is not None and kept[1] > generation:
                return  # a read that began before the write that cached the kept one
            self._drop(key)
            while self._entries:  # the oldest first: too much in all, or out of date
                oldest = next(iter(self._entries))
                fits = self._bytes + size <= self.max_bytes
                if fits and now - self._entries[oldest][2] <= 2 * self.ttl_s:
                    break
                self._drop(oldest)
            self._entries[key] = (value, generation, now, size)
            self._bytes += size

    def put_written(self, key: RowKey, document: Any, generation: int) -> None:
        """A document this process wrote whole (`api.db.touch`), committed at `generation`: kept
        at once, so readers of its row do not wait for the database (write-through)."""
        self.put(key, document, generation=generation)

    def _age(self, key: RowKey, entry: tuple[Any, int, float, int] | None) -> float | None:
        """Seconds since the entry was kept, or None: no entry, or its row written since."""
        if entry is None or self._db.written_at(key) > entry[1]:
            return None
        return time.monotonic() - entry[2]

    def _drop(self, key: RowKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[3]

    def fill(
        self, key: RowKey, load: Callable[[], Any | None], generation: int | None = None
    ) -> Any | None:
        """`load()` (a blocking database read), kept under `key` unless None. `generation`:
        the one before the read began (default: now), so a write of its row during it voids the
        entry."""
        generation = self._db.generation if generation is None else generation
        value = load()
        if value is not None:
            self.put(key, value, generation=generation)
        return value

    async def read(self, key: RowKey, load: Callable[[], Any | None]) -> Any | None:
        """The cached value, else `load()` run in the thread pool (and cached). An entry past
        its TTL but not past twice it is answered while one load refreshes it. Readers that
        miss together share one load, unless their row was written after it began
        (read-your-writes)."""
        entry = self._entries.get(key)
        age = self._age(key, entry)
        if entry is not None and age is not None and age <= 2 * self.ttl_s:
            if age > self.ttl_s:
                self._load(key, load)  # in the background
            return entry[0]
        return await asyncio.shield(self._load(key, load))

    def _load(self, key: RowKey, load: Callable[[], Any | None]) -> asyncio.Future[Any]:
        """The load of `key` in flight that began after its row's last write, else a new one."""
        flight = self._pending.get(key)
        if flight is None or self._db.written_at(key) > flight[0]:
            generation = self._db.generation
            pending = asyncio.ensure_future(run_in_threadpool(self.fill, key, load, generation))
            flight = self._pending[key] = (generation, pending)
            pending.add_done_callback(lambda _: self._land(key, pending))
        return flight[1]

    def _land(self, key: RowKey, pending: asyncio.Future[Any]) -> None:
        if self._pending.get(key, (0, None))[1] is pending:  # not since replaced by a newer one
            del self._pending[key]
        if not pending.cancelled():
            pending.exception()  # retrieved: a refresh that failed leaves its entry to age out

    async def reread(self, key: RowKey, load: Callable[[], Any | None]) -> Any | None:
        """`load()` in the thread pool, whatever is cached (and cached)."""
        return await run_in_threadpool(self.fill, key, load)


def _size(value: Any) -> int:
    """About the memory an entry holds: its text, or 1 KiB for anything else."""
    if isinstance(value, str | bytes):
        return len(value) + 64
    if isinstance(value, tuple):
        return sum(_size(item) for item in value)
    return 1024
