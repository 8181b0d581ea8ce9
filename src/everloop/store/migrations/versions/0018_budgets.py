"""Budgets and their ledger: ``budgets``, ``budget_ledger``

Revision ID: 0018_budgets
Revises: 0017_schedules
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0018_budgets"
down_revision: str | None = "0017_schedules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Id = sa.String(48)
Ts = sa.String(32)
HAS_REF = sa.text("ref_id IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("id", Id, primary_key=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("soft_limit", sa.Float(), nullable=True),
        sa.Column("period", Json, nullable=True),
        sa.Column("period_started_at", Ts, nullable=True),
        sa.Column("balance", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metadata", Json, nullable=True),
        sa.Column("warned_period", Ts, nullable=True),
        sa.Column("resumed_soft_limit", sa.Float(), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index(
        "ix_budgets_subject", "budgets", ["organization_id", "subject_type", "subject_id"]
    )
    op.create_table(
        "budget_ledger",
        sa.Column("id", Id, primary_key=True),
        sa.Column("budget_id", Id, sa.ForeignKey("budgets.id"), nullable=False),
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("meter_source", sa.String(32), nullable=False),
        sa.Column("ref_type", sa.String(32), nullable=True),
        sa.Column("ref_id", sa.String(100), nullable=True),
        sa.Column("session_id", Id, nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index("ix_budget_ledger_budget", "budget_ledger", ["budget_id", "created_at"])
    op.create_index(
        "uq_budget_ledger_ref",
        "budget_ledger",
        ["budget_id", "ref_type", "ref_id"],
        unique=True,
        sqlite_where=HAS_REF,
        postgresql_where=HAS_REF,
    )


def downgrade() -> None:
    op.drop_table("budget_ledger")
    op.drop_table("budgets")
