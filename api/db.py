"""Engines, sessions and migrations, for SQLite and PostgreSQL alike.

SQLite: WAL journal (readers never wait for the writer), a busy timeout (writers queue for the
lock instead of failing), and explicit transactions: reads `BEGIN` (deferred), writes
`BEGIN IMMEDIATE`, so a read-modify-write such as a claim holds the write lock from its first
statement and cannot deadlock on a lock upgrade. PostgreSQL (psycopg 3): plain READ COMMITTED
transactions; the queue takes rows with `FOR UPDATE SKIP LOCKED` (see `api.crud`).

Run the migrations by hand with ``ltd migrate`` (reads LTD_DATABASE_URL); the API also runs
them at start unless LTD_MIGRATE_ON_START is false. Concurrent starts are safe: PostgreSQL
migrates under an advisory lock (`migrations/env.py`), SQLite under the database's own write lock
(`BEGIN IMMEDIATE`), so a second process waits and then finds the schema current.

Outages: `Database` remembers when this process last found the database unreachable or locked
(`Availability`), so that leases which ran out meanwhile are not held against their workers
(`Availability.lapse_at`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(
    url: str,
    *,
    busy_timeout_ms: int = 10_000,
    pool_size: int | None = None,
    max_overflow: int = 20,
    connect_timeout_s: float | None = None,
) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and explicit BEGIN modes.
    `connect_timeout_s`: PostgreSQL gives up connecting after it (the health check's)."""
    # Pools hold more connections than a process uses at once (LTD_THREADS route threads plus
    # one event-loop reader): a connection opened and closed per request (overflow) would cost
    # more than the query.
    if not is_sqlite(url):
        timeout = (
            {}
            if connect_timeout_s is None
            else {"connect_timeout": max(1, round(connect_timeout_s))}
        )
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size or 10,
            max_overflow=max_overflow,
            connect_args=timeout,
        )
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        pool_size=pool_size or 40,
        max_overflow=max_overflow,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver's own BEGINs off: we issue them below
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe under WAL
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


MIGRATION_BUSY_TIMEOUT_MS = 120_000  # how long a second migrating process waits (SQLite)


# The drivers' own errors for a database that cannot serve (SQLAlchemy wraps them as
# OperationalError, except when they are raised while it handles another error).
DRIVER_OUTAGES = (sqlite3.OperationalError, psycopg.OperationalError)


def outage_kind(exc: BaseException) -> str | None:
    """Why the database could not serve, when `exc` says it is unreachable or locked (a
    refused or lost connection, a connect timeout, SQLite's "database is locked", no free pooled
    connection): "locked" or "unreachable". None for any other error (a bug of a query).

    The errors `exc` was raised from or while handling count too: a pool's pre-ping on a
    connection whose socket just closed fails with the driver's OperationalError, and then
    raises a ProgrammingError while it puts the connection back (psycopg: "can't change
    'autocommit' now")."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, PoolTimeoutError):
            return "unreachable"
        if isinstance(cause, (OperationalError, *DRIVER_OUTAGES)) or (
            isinstance(cause, DBAPIError) and cause.connection_invalidated
        ):
            text = str(getattr(cause, "orig", cause)).lower()
            return "locked" if "locked" in text or "busy" in text else "unreachable"
        suppressed = cause.__suppress_context__  # `raise ... from None`: not its cause
        cause = cause.__cause__ or (None if suppressed else cause.__context__)
    return None


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database is unreachable or locked (`outage_kind`)."""
    return outage_kind(exc) is not None


@dataclass
class Outage:
    """When this process first failed to reach (or lock) the database, and when a write next
    committed (None: not yet)."""

    started_at: datetime
    ended_at: datetime | None = None


class Availability:
    """This process's view of the database's outages, for the lease rule.

    A worker cannot renew its lease while the database is down, so a lease that ran out during
    an outage, or within `grace` of its end, says nothing about the worker: until then leases
    are judged as of the moment the outage began (`lapse_at`), and the worker's next heartbeat
    renews its lease. A lease that had run out before the outage lapses as ever. An outage
    starts at the first read or write that fails for want of the database, and ends at the next
    committed write (SQLite's readers go on while the write lock is held). Per process: each
    replica judges by the outages it saw itself."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.last: Outage | None = None
        self._lock = threading.Lock()

    def failed(self) -> None:
        with self._lock:
            if self.last is None or self.last.ended_at is not None:
                self.last = Outage(self.clock())

    def succeeded(self) -> None:
        with self._lock:
            if self.last is not None and self.last.ended_at is None:
                self.last.ended_at = self.clock()

    def lapse_at(self, now: datetime, *, grace_s: float) -> datetime:
        """The time to judge leases by at `now`: `now`, or the start of an outage that is not
        yet `grace_s` seconds over."""
        outage = self.last
        if outage is None:
            return now
        if outage.ended_at is not None and now >= outage.ended_at + timedelta(seconds=grace_s):
            return now
        return min(now, outage.started_at)


RowKey = tuple[Hashable, ...]  # (table name, *primary key): a row, as the read cache names it
MAX_WRITTEN_ROWS = 100_000  # rows whose last write `Database` remembers (api.cache)


def row_key(table: str, *primary_key: Hashable) -> RowKey:
    """The name of a row: its table and primary key, e.g. `row_key("plans", plan_id)`."""
    return (table, *primary_key)


def touch(session: Session, key: RowKey, document: Any = None) -> None:
    """Record that this write transaction changes the row `key` by a statement the ORM does not
    track (a bulk UPDATE); rows changed through ORM objects are recorded by themselves.
    `document`: the row as the read cache keeps it, when the statement wrote all of it: once
    committed, it is handed to `Database.on_written` (write-through), so readers need not wait
    for the database. (Not aware of savepoints: none is used.)"""
    session.info.setdefault("touched", {})[key] = document


def _touch_flushed(session: Session, _context: Any) -> None:
    """After each flush: the rows its ORM objects inserted, changed or deleted (`touch`)."""
    for obj in (*session.new, *session.dirty, *session.deleted):
        state = inspect(obj)
        primary_key = state.mapper.primary_key_from_instance(obj)
        touch(session, row_key(state.mapper.local_table.name, *primary_key))


class Database:
    """One engine and its two kinds of transaction: `read()` and `write()`.

    It also keeps, for the read cache (`api.cache`), a count of the write transactions this
    process has ended (`generation`) and, for each row they changed, the count as of its last
    change (`written_at`): a document read at generation g is current unless its row was
    written after g."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 10_000,
        connect_timeout_s: float | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.url = url
        self.engine = make_engine(
            url, busy_timeout_ms=busy_timeout_ms, connect_timeout_s=connect_timeout_s
        )
        self.is_sqlite = is_sqlite(url)
        self.availability = Availability(clock or (lambda: datetime.now(UTC)))
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)
        event.listen(self._write, "after_flush", _touch_flushed)
        self.generation = 0  # moves on with every write transaction this process ends
        self._written: dict[RowKey, int] = {}  # a row's generation as of its last write
        self._forgotten = 0  # rows not in _written count as written at this generation
        self._generation_lock = threading.Lock()
        # Called with (row key, document, generation) for each document a write committed.
        self.on_written: list[Callable[[RowKey, Any, int], None]] = []

    def written_at(self, key: RowKey) -> int:
        """The generation as of the last write this process made to the row `key` (or later:
        rows are forgotten beyond MAX_WRITTEN_ROWS, and then count as written when they were)."""
        return self._written.get(key, self._forgotten)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (SQLite: deferred, never waits for writers)."""
        try:
            with self._read() as session, session.begin():
                yield session
        except Exception as exc:
            if unavailable(exc):
                self.availability.failed()
            raise

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed on exit, rolled back on an exception
        (SQLite: `BEGIN IMMEDIATE`, so it holds the write lock from the start). A commit ends
        an outage (`Availability`); a failure to reach or lock the database starts one."""
        touched: dict[RowKey, Any] = {}
        began, committed = self.generation, False
        try:
            with self._write() as session, session.begin():
                touched = session.info.setdefault("touched", touched)
                yield session
            committed = True
        except Exception as exc:
            if unavailable(exc):
                self.availability.failed()
            raise
        else:
            self.availability.succeeded()
        finally:  # after the commit (or rollback): earlier reads of the rows it touched are stale
            generation, alone = self._ended(touched, began)
        for key in alone if committed else ():
            for written in self.on_written if touched[key] is not None else ():
                try:
                    written(key, touched[key], generation)
                except Exception:  # the write is committed: a cache's failure is not its own
                    log.exception("on_written listener failed for %s", key)

    def _ended(self, touched: dict[RowKey, Any], began: int) -> tuple[int, list[RowKey]]:
        """Count a write transaction as ended, with the rows it touched: its generation, and the
        rows no other write ended on while it ran. Only those are handed to `on_written`: two
        overlapping writes of a row may end in the other order than they committed, and then
        neither document is known to be the committed one (the row's entry is dropped)."""
        with self._generation_lock:
            alone = [key for key in touched if self.written_at(key) <= began]
            self.generation += 1
            if len(self._written) + len(touched) > MAX_WRITTEN_ROWS:
                self._forgotten = self.generation  # first: a reader never sees a row forgotten
                self._written = {}
            for key in touched:
                self._written[key] = self.generation
            return self.generation, alone

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config() -> Config:
    """Alembic's config for the migrations shipped inside this package."""
    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (default: the newest schema), in one
    transaction that holds the database's lock from its first statement (SQLite: `BEGIN
    IMMEDIATE`; PostgreSQL: an advisory lock), so processes that start together migrate one
    after the other."""
    engine = make_engine(url, busy_timeout_ms=MIGRATION_BUSY_TIMEOUT_MS)
    try:
        with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()
