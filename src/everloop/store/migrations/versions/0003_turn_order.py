"""turns.input_sequence: a session's turns run in the order of their input events

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.add_column(
            sa.Column("input_sequence", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.create_index("ix_turns_session_order", ["session_id", "input_sequence"])


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_index("ix_turns_session_order")
        batch.drop_column("input_sequence")
