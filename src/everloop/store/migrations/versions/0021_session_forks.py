"""Session forks: a session's fork lineage, and the session a copied secret was sealed for

``sessions.forked_from_session_id`` / ``forked_from_sequence`` name the session a fork was taken
from and the sequence of its log it was taken at. ``session_secrets.sealed_for_session_id`` names
the session whose id is bound into a secret's sealed value when that is not the row's own session
(a fork copies its parent's sealed values without opening them).

Revision ID: 0021_session_forks
Revises: 0020_event_search
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_session_forks"
down_revision: str | None = "0020_event_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.String(48)


def upgrade() -> None:
    # Nullable columns: a plain ADD COLUMN on both dialects (no table rebuild on SQLite).
    op.add_column("sessions", sa.Column("forked_from_session_id", Id, nullable=True))
    op.add_column("sessions", sa.Column("forked_from_sequence", sa.BigInteger(), nullable=True))
    op.add_column("session_secrets", sa.Column("sealed_for_session_id", Id, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session_secrets") as batch:
        batch.drop_column("sealed_for_session_id")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("forked_from_sequence")
        batch.drop_column("forked_from_session_id")
