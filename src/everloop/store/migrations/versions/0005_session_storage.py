"""session storage: files, key-values, secrets and leases

Revision ID: 0005
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _session_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["session_id"], ["sessions.id"], name=op.f(f"fk_{table}_session_id_sessions")
    )


def upgrade() -> None:
    op.create_table(
        "session_files",
        sa.Column("session_id", sa.String(length=48), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("parent_path", sa.String(length=1024), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("is_directory", sa.Boolean(), nullable=False),
        sa.Column("is_readonly", sa.Boolean(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        _session_fk("session_files"),
        sa.PrimaryKeyConstraint("session_id", "path", name=op.f("pk_session_files")),
    )
    with op.batch_alter_table("session_files", schema=None) as batch_op:
        batch_op.create_index("ix_session_files_parent", ["session_id", "parent_path"])

    op.create_table(
        "session_kv",
        sa.Column("session_id", sa.String(length=48), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        _session_fk("session_kv"),
        sa.PrimaryKeyConstraint("session_id", "key", name=op.f("pk_session_kv")),
    )
    op.create_table(
        "session_secrets",
        sa.Column("session_id", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        _session_fk("session_secrets"),
        sa.PrimaryKeyConstraint("session_id", "name", name=op.f("pk_session_secrets")),
    )
    op.create_table(
        "session_leases",
        sa.Column("session_id", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("expires_at", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        _session_fk("session_leases"),
        sa.PrimaryKeyConstraint("session_id", "name", name=op.f("pk_session_leases")),
    )
    with op.batch_alter_table("session_leases", schema=None) as batch_op:
        batch_op.create_index("ix_session_leases_expires", ["expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("session_leases", schema=None) as batch_op:
        batch_op.drop_index("ix_session_leases_expires")
    op.drop_table("session_leases")
    op.drop_table("session_secrets")
    op.drop_table("session_kv")
    with op.batch_alter_table("session_files", schema=None) as batch_op:
        batch_op.drop_index("ix_session_files_parent")
    op.drop_table("session_files")
