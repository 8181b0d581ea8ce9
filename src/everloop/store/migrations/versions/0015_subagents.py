"""Subagents: session tasks and their messages; a session's tree root, depth and descendant usage

Revision ID: 0015_subagents
Revises: 0014_seal_mcp_headers
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0015_subagents"
down_revision: str | None = "0014_seal_mcp_headers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Id = sa.String(48)
Ts = sa.String(32)


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("root_session_id", Id, nullable=True))
        batch.add_column(sa.Column("capability_allowlist", Json, nullable=True))
        batch.add_column(
            sa.Column("subagent_depth", sa.Integer(), nullable=False, server_default="0")
        )
        for bucket in ("input", "output", "cache_read", "cache_creation"):
            batch.add_column(
                sa.Column(
                    f"descendant_{bucket}_tokens",
                    sa.BigInteger(),
                    nullable=False,
                    server_default="0",
                )
            )
    op.create_index("ix_sessions_parent", "sessions", ["parent_session_id"])
    op.create_table(
        "session_tasks",
        sa.Column("id", Id, primary_key=True),
        sa.Column("session_id", Id, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("root_session_id", Id, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("spec", Json, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_detail", sa.String(200), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("error", Json, nullable=True),
        sa.Column("result", Json, nullable=True),
        sa.Column("child_session_id", Id, nullable=True),
        sa.Column("wake_policy", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("cancel_requested_at", Ts, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.Column("started_at", Ts, nullable=True),
        sa.Column("finished_at", Ts, nullable=True),
        sa.UniqueConstraint("session_id", "display_name", name="uq_session_tasks_name"),
    )
    op.create_index("ix_session_tasks_root_state", "session_tasks", ["root_session_id", "state"])
    op.create_index("ix_session_tasks_child", "session_tasks", ["child_session_id"])
    op.create_index(
        "ix_session_tasks_org_created", "session_tasks", ["organization_id", "created_at"]
    )
    op.create_table(
        "session_task_messages",
        sa.Column("id", Id, primary_key=True),
        sa.Column("task_id", Id, sa.ForeignKey("session_tasks.id"), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("content", Json, nullable=False),
        sa.Column("in_reply_to", sa.String(100), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index("ix_session_task_messages_task", "session_task_messages", ["task_id", "id"])


def downgrade() -> None:
    op.drop_table("session_task_messages")
    op.drop_table("session_tasks")
    op.drop_index("ix_sessions_parent", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        for column in (
            "descendant_cache_creation_tokens",
            "descendant_cache_read_tokens",
            "descendant_output_tokens",
            "descendant_input_tokens",
            "subagent_depth",
            "capability_allowlist",
            "root_session_id",
        ):
            batch.drop_column(column)
