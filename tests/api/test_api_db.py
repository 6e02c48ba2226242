"""Migrations and engine set-up on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from api.db import Database, migrate

HEAD = "0004"
OLD_ROWS = json.loads((Path(__file__).parent / "data" / "old_rows.json").read_text())


def test_migrate_creates_the_schema_and_is_idempotent(database_url):
    migrate(database_url)
    migrate(database_url)
    db = Database(database_url)
    try:
        tables = set(inspect(db.engine).get_table_names())
        assert {"plans", "jobs", "device_profiles", "alembic_version"} <= tables
        with db.read() as session:
            assert session.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
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
            stored = json.loads(
                session.scalar(text("SELECT plan_json FROM plans WHERE id = 'p_old'"))
            )
            assert session.scalar(text("SELECT count(*) FROM device_profiles")) == 0
        # Kept, with the projection section a plan of that version lacked (0004).
        assert stored["id"] == "p_old" and stored["projection"]["method"] == "flops"
    finally:
        db.dispose()


def test_upgrading_from_0002_keeps_stored_plans_jobs_and_profiles(database_url):
    """Rows the previous head's service stored (and the first release's, under it) keep every
    column; jobs gain no owner; only plans without a projection section change, by gaining it."""
    from tests.api.test_old_rows import insert_old_rows

    migrate(database_url, "0002")
    db = Database(database_url)
    try:
        insert_old_rows(db)
        tables = ("plans", "jobs", "device_profiles")
        with db.read() as session:
            before = {t: _rows(session, t) for t in tables}
        migrate(database_url)
        with db.read() as session:
            after = {t: _rows(session, t) for t in tables}
            assert session.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
        assert after["device_profiles"] == before["device_profiles"]
        assert after["jobs"] == {k: {**row, "owner": None} for k, row in before["jobs"].items()}
        assert after["plans"].keys() == before["plans"].keys()
        for plan_id, row in after["plans"].items():
            old = json.loads(before["plans"][plan_id]["plan_json"])
            new = json.loads(row["plan_json"])
            if "projection" in old:
                assert row == before["plans"][plan_id]  # byte for byte
            else:
                assert new == {**old, "projection": new["projection"]}
                assert new["projection"]["method"] == "flops"
                ratio = new["random_ltd"]["wall_clock_hours"] / new["baseline"]["wall_clock_hours"]
                assert new["projection"]["time_ratio"] == ratio
            assert {k: v for k, v in row.items() if k != "plan_json"} == {
                k: v for k, v in before["plans"][plan_id].items() if k != "plan_json"
            }
        migrate(database_url)  # again: nothing left to do, nothing changes
        with db.read() as session:
            assert {t: _rows(session, t) for t in tables} == after
    finally:
        db.dispose()


def _rows(session, table):
    """A table's rows by id, as dicts."""
    result = session.execute(text(f"SELECT * FROM {table}"))
    return {row["id"]: dict(row) for row in result.mappings()}


def test_processes_migrating_one_sqlite_file_at_once_all_succeed(tmp_path):
    """Replicas that start together on one fresh SQLite file: each migrates or waits for the
    one that does (the database's write lock), none crashes."""
    url = f"sqlite:///{tmp_path / 'together.db'}"
    code = f"from api.db import migrate; migrate({url!r})"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    outcomes = [(p.communicate(timeout=120)[1], p.returncode) for p in procs]
    outcomes = [(status, err) for err, status in outcomes]
    assert [status for status, _ in outcomes] == [0] * 6, outcomes
    db = Database(url)
    try:
        with db.read() as session:
            assert session.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
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
