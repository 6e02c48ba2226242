"""The lease view three ways agree: `queue.lease_lapse` (Python, what GET /v1/jobs/{id} shows),
`crud.job_state_at` (SQL, counts) and `crud.in_state_at` (SQL, the indexed state filter), on
every combination of state, lease and attempts, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from api import crud, queue
from api.db import Database, migrate
from api.models import JobRow, JobState, PlanRow

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_python_and_both_sql_forms_agree(database_url: str) -> None:
    migrate(database_url)
    db = Database(database_url)
    leases = [None, NOW - timedelta(seconds=1), NOW, NOW + timedelta(seconds=1)]
    try:
        with db.write() as session:
            session.add(PlanRow(id="p", request_json="{}", plan_json="{}", created_at=NOW))
            session.flush()
            for i, (state, lease, attempts) in enumerate(
                itertools.product(JobState, leases, (1, 2, 3))
            ):
                session.add(
                    JobRow(
                        id=f"j{i}",
                        plan_id="p",
                        state=state.value,
                        settings_json="{}",
                        attempts=attempts,
                        max_attempts=3,
                        progress=0.0,
                        lease_expires_at=lease,
                        created_at=NOW,
                        updated_at=NOW,
                    )  # fmt: skip
                )
        with db.read() as session:
            rows = session.scalars(select(JobRow)).all()
            shown = {
                row.id: JobState((queue.lease_lapse(row, now=NOW) or {}).get("state", row.state))
                for row in rows
            }
            sql = dict(session.execute(select(JobRow.id, crud.job_state_at(NOW))).all())
            assert {k: JobState(v) for k, v in sql.items()} == shown
            for state in JobState:
                filtered = session.scalars(
                    select(JobRow.id).where(crud.in_state_at(state, NOW))
                ).all()
                assert set(filtered) == {k for k, v in shown.items() if v == state}, state
            # running, lease at or before NOW (2 leases) x 3 attempt counts: 4 requeued, 2 failed
            assert sum(shown[r.id] != r.state for r in rows) == 6
    finally:
        db.dispose()
