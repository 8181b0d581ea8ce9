"""sessions: ``parent_session_id`` joins the listings' partial index ``ix_sessions_org_live``

A listing hides subagents by default (``parent_session_id IS NULL``). With the column in the
index, the keyset seek and the count of a default listing still read index entries only (see
migration 0012 and store/session_rows.py), instead of a table row per session skipped.

Revision ID: 0016_sessions_live_parent
Revises: 0015_subagents
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_sessions_live_parent"
down_revision: str | None = "0015_subagents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("deleted_at IS NULL")
COLUMNS = ["organization_id", "created_at", "id", "deleted_at"]


def _create(columns: list[str]) -> None:
    op.create_index(
        "ix_sessions_org_live", "sessions", columns, sqlite_where=LIVE, postgresql_where=LIVE
    )


def upgrade() -> None:
    op.drop_index("ix_sessions_org_live", table_name="sessions")
    _create([*COLUMNS, "parent_session_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_org_live", table_name="sessions")
    _create(COLUMNS)
