"""The Agent Execution API: ``agent_channels``, ``agent_keys``, ``runtime_tokens``, and
``ix_sessions_owner_activity`` (a caller's sessions of an agent, most recently active first)

Revision ID: 0025_channels
Revises: 0024_human_input
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0025_channels"
down_revision: str | None = "0024_human_input"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Id = sa.String(48)
Ts = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "agent_channels",
        sa.Column("id", Id, primary_key=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("agent_id", Id, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("allow_member_tokens", sa.Boolean(), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("deleted_at", Ts, nullable=True),
    )
    op.create_index("ix_agent_channels_agent", "agent_channels", ["agent_id"])
    op.create_table(
        "agent_keys",
        sa.Column("id", Id, primary_key=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("agent_id", Id, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("principal_id", Id, sa.ForeignKey("principals.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_hint", sa.String(24), nullable=False),
        sa.Column("permissions", Json, nullable=False),
        sa.Column("created_by_principal_id", Id, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("expires_at", Ts, nullable=True),
        sa.Column("revoked_at", Ts, nullable=True),
    )
    op.create_index("ix_agent_keys_agent", "agent_keys", ["agent_id"])
    op.create_table(
        "runtime_tokens",
        sa.Column("id", Id, primary_key=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("channel_id", Id, sa.ForeignKey("agent_channels.id"), nullable=False),
        sa.Column("agent_key_id", Id, sa.ForeignKey("agent_keys.id"), nullable=False),
        sa.Column("principal_id", Id, sa.ForeignKey("principals.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
    )
    op.create_index("ix_runtime_tokens_expires", "runtime_tokens", ["expires_at"])
    op.create_index(
        "ix_sessions_owner_activity", "sessions", ["owner_principal_id", "agent_id", "updated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_owner_activity", table_name="sessions")
    op.drop_index("ix_runtime_tokens_expires", table_name="runtime_tokens")
    op.drop_table("runtime_tokens")
    op.drop_index("ix_agent_keys_agent", table_name="agent_keys")
    op.drop_table("agent_keys")
    op.drop_index("ix_agent_channels_agent", table_name="agent_channels")
    op.drop_table("agent_channels")
