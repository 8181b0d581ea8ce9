"""client_tool_calls: ``kind`` (client | question | approval), the calls a turn waits for a
person on: a client-side tool's result, the answers to ``ask_user`` questions, or the decision
on a tool call that needs approval. Rows recorded before are client-side calls.

Revision ID: 0024_human_input
Revises: 0021_session_forks
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_human_input"
down_revision: str | None = "0021_session_forks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("client_tool_calls") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="client"))


def downgrade() -> None:
    with op.batch_alter_table("client_tool_calls") as batch:
        batch.drop_column("kind")
