"""User connections: ``user_connections``, a user's sealed API key per provider and organization

Revision ID: 0022_user_connections
Revises: 0019_generations_by_model
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_user_connections"
down_revision: str | None = "0019_generations_by_model"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.String(48)
Ts = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "user_connections",
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("credentials_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_connections")
