"""client-side tool calls awaiting results; idempotency keys

Revision ID: 0007
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_json = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
)


def upgrade() -> None:
    op.create_table(
        "client_tool_calls",
        sa.Column("call_id", sa.String(length=100), nullable=False),
        sa.Column("turn_id", sa.String(length=48), nullable=False),
        sa.Column("session_id", sa.String(length=48), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("arguments", _json, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", _json, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("deadline", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("answered_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("turn_id", "call_id", name=op.f("pk_client_tool_calls")),
    )
    op.create_index(
        "ix_client_tool_calls_session_status", "client_tool_calls", ["session_id", "status"]
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("organization_id", sa.String(length=48), nullable=False),
        sa.Column("principal_id", sa.String(length=48), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint(
            "organization_id", "principal_id", "key", name=op.f("pk_idempotency_keys")
        ),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("ix_client_tool_calls_session_status", table_name="client_tool_calls")
    op.drop_table("client_tool_calls")
