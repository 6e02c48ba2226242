"""Migrations and engine set-up on both databases."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import inspect, text

from api.db import Database, migrate


def test_migrate_creates_the_schema_and_is_idempotent(database_url):
    migrate(database_url)
    migrate(database_url)
    db = Database(database_url)
    try:
        tables = set(inspect(db.engine).get_table_names())
        assert {"plans", "jobs", "device_profiles", "alembic_version"} <= tables
        with db.read() as session:
            assert session.scalar(text("SELECT version_num FROM alembic_version")) == "0002"
    finally:
        db.dispose()


def test_upgrading_from_0001_keeps_stored_plans(database_url):
    migrate(database_url, "0001")
    db = Database(database_url)
    try:
        with db.write() as session:
            session.execute(
                text(
                    "INSERT INTO plans (id, request_json, plan_json, created_at) "
                    "VALUES ('p_old', '{}', '{\"id\": \"p_old\"}', '2026-11-01 00:00:00')"
                )
            )
        migrate(database_url)
        with db.read() as session:
            assert session.scalar(text("SELECT plan_json FROM plans WHERE id = 'p_old'")) == (
                '{"id": "p_old"}'
            )
            assert session.scalar(text("SELECT count(*) FROM device_profiles")) == 0
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=1234)
    try:
        with db.read() as session:
            assert session.scalar(text("PRAGMA journal_mode")) == "wal"
            assert session.scalar(text("PRAGMA busy_timeout")) == 1234
            assert session.scalar(text("PRAGMA foreign_keys")) == 1
    finally:
        db.dispose()


def test_migrations_run_as_ltd_migrate(tmp_path):
    url = f"sqlite:///{tmp_path / 'cmd.db'}"
    env = {**os.environ, "LTD_DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "ltd", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    db = Database(url)
    try:
        assert "jobs" in inspect(db.engine).get_table_names()
    finally:
        db.dispose()
