"""Plans stored before the step-time model read as today's plans.

The first release stored plan documents without a `projection` section: it projected the
random-LTD run's wall-clock as the baseline's times the FLOPs ratio. Today's plan document states
its projection, so those documents no longer read (the report page, `compare_plan_id`, a claim of
their jobs, a job's calibration). This adds the section they lacked, saying what those plans did:
method `flops`, no device profile, and the time ratio their own figures hold. Nothing else of the
document changes: its id, figures and calibration stay as stored.

Pure JSON: this revision imports nothing of the planner, so it stays as it is when the planner
changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PLANS = sa.table("plans", sa.column("id", sa.String), sa.column("plan_json", sa.Text))
BATCH = 500


def flops_projection(document: dict[str, Any]) -> dict[str, Any]:
    """The projection a plan of the first release made: the random-LTD run's hours are the
    baseline's times the ratio of their FLOPs (its own `wall_clock_hours` hold it)."""
    hardware = document.get("hardware") or {}
    base = (document.get("baseline") or {}).get("wall_clock_hours") or 0.0
    ltd = (document.get("random_ltd") or {}).get("wall_clock_hours") or 0.0
    micro_batch = int(hardware.get("micro_batch_size") or 1)
    per_step = int(document.get("global_batch_size") or 1)
    gpus = int(hardware.get("num_gpus") or 1)
    return {
        "method": "flops",
        "device_profile": "none: stored by an earlier version, which projected the random-LTD "
        "run's hours as the baseline's times the FLOPs ratio",
        "device_profile_id": "",
        "micro_batch_size": micro_batch,
        "accumulation_steps": max(1, per_step // max(1, gpus * micro_batch)),
        "time_ratio": ltd / base if base else 1.0,
        "step_time_ms": {},
        "breakdown_ms": {},
    }


def upgrade() -> None:
    conn = op.get_bind()
    # The text filter only narrows the scan; each candidate is checked as JSON.
    query = (
        sa.select(PLANS.c.id, PLANS.c.plan_json)
        .where(sa.not_(PLANS.c.plan_json.contains('"projection"')))
        .order_by(PLANS.c.id)
    )
    last = ""
    while True:
        rows = conn.execute(query.where(PLANS.c.id > last).limit(BATCH)).all()
        if not rows:
            return
        for plan_id, text in rows:
            document = json.loads(text)
            if isinstance(document, dict) and "projection" not in document:
                document["projection"] = flops_projection(document)
                conn.execute(
                    sa.update(PLANS)
                    .where(PLANS.c.id == plan_id)
                    .values(plan_json=json.dumps(document, separators=(",", ":")))
                )
        last = rows[-1][0]


def downgrade() -> None:
    """Nothing to undo: earlier versions read a plan document's extra section and ignore it."""
