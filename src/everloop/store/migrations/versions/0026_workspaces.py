"""Workspaces: ``workspaces`` and ``workspace_files`` (a session's files re-keyed by workspace),
``sessions.workspace_id``. Every live session gets its automatic workspace (id ``wsp_`` + the
session id's hex, name ``session-`` + that hex) with its files moved in; ``session_files`` goes.

Revision ID: 0026_workspaces
Revises: 0027_memories
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026_workspaces"
down_revision: str | None = "0027_memories"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.String(48)
Ts = sa.String(32)

_FILE_COLUMNS = (
    "path, parent_path, id, is_directory, is_readonly, content, size_bytes, content_hash, "
    "created_at, updated_at"
)
# "session_" is 8 characters: the hex of a session id starts at the 9th.
_WSP_OF_SESSION = "'wsp_' || substr({col}, 9)"


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", Id, primary_key=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner_principal_id", Id, nullable=False),
        sa.Column("session_id", Id, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.Column("archived_at", Ts, nullable=True),
        sa.Column("deleted_at", Ts, nullable=True),
    )
    op.create_index(
        "ux_workspaces_org_name",
        "workspaces",
        ["organization_id", "name"],
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "workspace_files",
        sa.Column("workspace_id", Id, sa.ForeignKey("workspaces.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("parent_path", sa.String(1024), nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("is_directory", sa.Boolean(), nullable=False),
        sa.Column("is_readonly", sa.Boolean(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(80), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.Column("updated_by_session_id", Id, nullable=True),
    )
    op.create_index("ix_workspace_files_parent", "workspace_files", ["workspace_id", "parent_path"])
    op.add_column("sessions", sa.Column("workspace_id", Id, nullable=True))

    # Every live session's automatic workspace, then its files moved in.
    wsp = _WSP_OF_SESSION.format(col="id")
    op.execute(
        "INSERT INTO workspaces (id, organization_id, name, description, status, "
        "owner_principal_id, session_id, created_at, updated_at, archived_at, deleted_at) "
        f"SELECT {wsp}, organization_id, 'session-' || substr(id, 9), NULL, 'active', "
        "owner_principal_id, id, created_at, created_at, NULL, NULL "
        "FROM sessions WHERE deleted_at IS NULL"
    )
    op.execute(f"UPDATE sessions SET workspace_id = {wsp} WHERE deleted_at IS NULL")
    op.execute(
        f"INSERT INTO workspace_files (workspace_id, {_FILE_COLUMNS}, updated_by_session_id) "
        f"SELECT s.workspace_id, {_prefixed('f')}, NULL "
        "FROM session_files f JOIN sessions s ON s.id = f.session_id "
        "WHERE s.workspace_id IS NOT NULL"
    )
    with op.batch_alter_table("session_files", schema=None) as batch_op:
        batch_op.drop_index("ix_session_files_parent")
    op.drop_table("session_files")


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in _FILE_COLUMNS.split(","))


def downgrade() -> None:
    op.create_table(
        "session_files",
        sa.Column("session_id", Id, sa.ForeignKey("sessions.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("parent_path", sa.String(1024), nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("is_directory", sa.Boolean(), nullable=False),
        sa.Column("is_readonly", sa.Boolean(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(80), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_session_files_parent", "session_files", ["session_id", "parent_path"])
    # Automatic workspaces' files go back to their sessions; shared workspaces' are lost.
    op.execute(
        f"INSERT INTO session_files (session_id, {_FILE_COLUMNS}) "
        f"SELECT w.session_id, {_prefixed('f')} "
        "FROM workspace_files f JOIN workspaces w ON w.id = f.workspace_id "
        "WHERE w.session_id IS NOT NULL AND w.deleted_at IS NULL"
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("workspace_id")
    op.drop_index("ix_workspace_files_parent", table_name="workspace_files")
    op.drop_table("workspace_files")
    op.drop_index("ux_workspaces_org_name", table_name="workspaces")
    op.drop_table("workspaces")
