"""Memories: ``memories`` (named, org-scoped file stores, optionally synced from git) and
``memory_files`` (their file trees)

Revision ID: 0027_memories
Revises: 0025_channels
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0027_memories"
down_revision: str | None = "0025_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Id = sa.String(48)
Ts = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "memories",
        sa.Column("id", Id, primary_key=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("source_type", sa.String(16), nullable=False),
        sa.Column("source", Json, nullable=True),
        sa.Column("source_credentials_encrypted", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sync_status", sa.String(16), nullable=False),
        sa.Column("last_synced_at", Ts, nullable=True),
        sa.Column("last_sync_error", sa.Text(), nullable=True),
        sa.Column("synced_commit", sa.String(64), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.Column("archived_at", Ts, nullable=True),
        sa.UniqueConstraint("organization_id", "name", name="uq_memories_org_name"),
    )
    op.create_table(
        "memory_files",
        sa.Column("memory_id", Id, sa.ForeignKey("memories.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("parent_path", sa.String(1024), nullable=False),
        sa.Column("is_directory", sa.Boolean(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(80), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_memory_files_parent", "memory_files", ["memory_id", "parent_path"])


def downgrade() -> None:
    op.drop_index("ix_memory_files_parent", table_name="memory_files")
    op.drop_table("memory_files")
    op.drop_table("memories")
