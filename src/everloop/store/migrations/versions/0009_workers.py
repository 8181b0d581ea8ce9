"""workers: executors with heartbeats, for the reaper; sessions listing index

Revision ID: 0009
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("executor_id", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("application_version", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.String(length=32), nullable=False),
        sa.Column("heartbeat_at", sa.String(length=32), nullable=False),
        sa.Column("running_turns", sa.Integer(), nullable=False),
        sa.Column("stopped_at", sa.String(length=32), nullable=True),
        sa.Column("recovered_at", sa.String(length=32), nullable=True),
        sa.Column("recovered_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("executor_id", name=op.f("pk_workers")),
    )
    # Listing sessions pages by (org, created_at) among the not-deleted.
    op.create_index(
        "ix_sessions_org_live_created",
        "sessions",
        ["organization_id", "deleted_at", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_org_live_created", table_name="sessions")
    op.drop_table("workers")
