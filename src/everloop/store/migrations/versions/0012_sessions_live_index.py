"""sessions: one partial index for listings, (organization_id, created_at, id, deleted_at) of the
live (not deleted) sessions, instead of (organization_id, created_at) and (organization_id,
deleted_at, created_at, id)

PostgreSQL cannot read ``deleted_at IS NULL`` on an index column as an equality, so it would not
use (organization_id, deleted_at, created_at, id) for the order of a listing (it sorted the
whole organization to seek a page); a partial index serves both dialects, and covers a listing's
keyset seek and count (SQLite wants ``deleted_at`` among the columns to call it covering). One
index instead of two to maintain on every session write.

Revision ID: 0012_sessions_live
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_sessions_live"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_sessions_org_live",
        "sessions",
        ["organization_id", "created_at", "id", "deleted_at"],
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.drop_index("ix_sessions_org_live_created", table_name="sessions")
    op.drop_index("ix_sessions_org_created", table_name="sessions")


def downgrade() -> None:
    op.create_index("ix_sessions_org_created", "sessions", ["organization_id", "created_at"])
    op.create_index(
        "ix_sessions_org_live_created",
        "sessions",
        ["organization_id", "deleted_at", "created_at", "id"],
    )
    op.drop_index("ix_sessions_org_live", table_name="sessions")
