"""Device profiles for the step-time model.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_profiles",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("device_name", sa.String(200), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("torch_version", sa.String(64), nullable=True),
        sa.Column("profile_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_device_profiles_created_at", "device_profiles", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_device_profiles_created_at", table_name="device_profiles")
    op.drop_table("device_profiles")
