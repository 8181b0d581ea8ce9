"""Schedules and agent identities: ``agent_identities``, ``session_schedules``,
``schedule_executions``

Revision ID: 0017_schedules
Revises: 0016_sessions_live_parent
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_schedules"
down_revision: str | None = "0016_sessions_live_parent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.String(48)
Ts = sa.String(32)
ENABLED = sa.text("enabled")
NOT_MANUAL = sa.text("trigger <> 'manual'")


def upgrade() -> None:
    op.create_table(
        "agent_identities",
        sa.Column("id", Id, primary_key=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("principal_id", Id, sa.ForeignKey("principals.id"), nullable=False),
        sa.Column("owner_principal_id", Id, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("locale", sa.String(35), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.UniqueConstraint("organization_id", "name", name="uq_agent_identities_name"),
    )
    op.create_table(
        "session_schedules",
        sa.Column("id", Id, primary_key=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("session_id", Id, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("owner_principal_id", Id, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("cron_expression", sa.String(200), nullable=True),
        sa.Column("scheduled_at", Ts, nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("catch_up_missed", sa.Boolean(), nullable=False),
        sa.Column("max_concurrent", sa.Integer(), nullable=True),
        sa.Column("next_trigger_at", Ts, nullable=True),
        sa.Column("last_triggered_at", Ts, nullable=True),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("claimed_at", Ts, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.UniqueConstraint("session_id", "name", name="uq_session_schedules_name"),
    )
    op.create_index(
        "ix_session_schedules_due",
        "session_schedules",
        ["next_trigger_at"],
        sqlite_where=ENABLED,
        postgresql_where=ENABLED,
    )
    op.create_index("ix_session_schedules_org", "session_schedules", ["organization_id", "id"])
    op.create_table(
        "schedule_executions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("schedule_id", Id, sa.ForeignKey("session_schedules.id"), nullable=False),
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("session_id", Id, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("scheduled_at", Ts, nullable=False),
        sa.Column("started_at", Ts, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("turn_id", Id, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index(
        "uq_schedule_executions_due",
        "schedule_executions",
        ["schedule_id", "scheduled_at"],
        unique=True,
        sqlite_where=NOT_MANUAL,
        postgresql_where=NOT_MANUAL,
    )
    op.create_index(
        "ix_schedule_executions_schedule", "schedule_executions", ["schedule_id", "started_at"]
    )


def downgrade() -> None:
    op.drop_table("schedule_executions")
    op.drop_table("session_schedules")
    op.drop_table("agent_identities")
