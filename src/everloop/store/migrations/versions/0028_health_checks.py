"""Agent health checks: ``health_check_runs`` and ``health_check_cases``.

Revision ID: 0028_health_checks
Revises: 0026_workspaces
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0028_health_checks"
down_revision: str | None = "0026_workspaces"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Id = sa.String(48)
Ts = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "health_check_runs",
        sa.Column("id", Id, primary_key=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("agent_id", Id, nullable=False),
        sa.Column("config_hash", sa.String(80), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("judge_model_id", Id, nullable=True),
        sa.Column("cases", Json, nullable=False),
        sa.Column("summary", Json, nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("principal_id", Id, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("principal_role", sa.String(32), nullable=False),
        sa.Column("principal_kind", sa.String(32), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("completed_at", Ts, nullable=True),
    )
    op.create_index("ix_health_check_runs_agent", "health_check_runs", ["agent_id", "created_at"])
    op.create_index("ix_health_check_runs_status", "health_check_runs", ["status"])
    op.create_table(
        "health_check_cases",
        sa.Column("run_id", Id, sa.ForeignKey("health_check_runs.id"), primary_key=True),
        sa.Column("case_index", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("session_id", Id, nullable=True),
        sa.Column("turn_id", Id, nullable=True),
        sa.Column("started_at", Ts, nullable=True),
        sa.Column("result", Json, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("health_check_cases")
    op.drop_index("ix_health_check_runs_status", table_name="health_check_runs")
    op.drop_index("ix_health_check_runs_agent", table_name="health_check_runs")
    op.drop_table("health_check_runs")
