"""Alembic environment: uses the connection `api.db.migrate` passes in, or LTD_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from api.models import Base

MIGRATION_LOCK_ID = 0x17D0  # PostgreSQL advisory lock: one replica migrates at a time


def run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    from api.db import make_engine
    from api.settings import Settings

    engine = make_engine(Settings().database_url)
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
run_online()
