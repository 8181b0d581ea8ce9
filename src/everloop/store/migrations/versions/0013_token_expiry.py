"""access_tokens.expires_at: a token may expire (NULL: never)

Revision ID: 0013_token_expiry
Revises: 0012_sessions_live
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_token_expiry"
down_revision: str | None = "0012_sessions_live"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("access_tokens", sa.Column("expires_at", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_tokens") as batch:
        batch.drop_column("expires_at")
