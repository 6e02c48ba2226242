"""Job owners; device profiles found by device and dtype.

Jobs record the owner of the key that submitted them (`jobs.owner`; NULL for jobs submitted
while the service had no keys, and for every job stored before this revision: only admin keys
see those once keys are set). Device profiles are keyed by a hash of their content from now on
(`planner.device.DeviceProfile.id`); stored rows keep their ids, which now always name the numbers
last stored under them. `GET /v1/device-profiles?device=&dtype=` finds the latest by an index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("owner", sa.String(64), nullable=True))
    op.create_index("ix_jobs_owner_created", "jobs", ["owner", "created_at"])
    op.create_index(
        "ix_device_profiles_latest", "device_profiles", ["device_name", "dtype", "updated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_device_profiles_latest", table_name="device_profiles")
    op.drop_index("ix_jobs_owner_created", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("owner")
