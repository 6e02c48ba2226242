"""Engines, sessions and migrations, for SQLite and PostgreSQL alike.

SQLite: WAL journal (readers never wait for the writer), a busy timeout (writers queue for the
lock instead of failing), and explicit transactions: reads `BEGIN` (deferred), writes
`BEGIN IMMEDIATE`, so a read-modify-write such as a claim holds the write lock from its first
statement and cannot deadlock on a lock upgrade. PostgreSQL (psycopg 3): plain READ COMMITTED
transactions; the queue takes rows with `FOR UPDATE SKIP LOCKED` (see `api.crud`).

Run the migrations by hand with ``ltd migrate`` (reads LTD_DATABASE_URL); the API also runs
them at start unless LTD_MIGRATE_ON_START is false.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


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


class Database:
    """One engine and its two kinds of transaction: `read()` and `write()`."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.url = url
        self.engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        self.is_sqlite = is_sqlite(url)
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)
        self.generation = 0  # moves on with every write this process commits (api.cache)
        self._generation_lock = threading.Lock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (SQLite: deferred, never waits for writers)."""
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed on exit, rolled back on an exception
        (SQLite: `BEGIN IMMEDIATE`, so it holds the write lock from the start)."""
        try:
            with self._write() as session, session.begin():
                yield session
        finally:
            with self._generation_lock:
                self.generation += 1

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config() -> Config:
    """Alembic's config for the migrations shipped inside this package."""
    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (default: the newest schema)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()
