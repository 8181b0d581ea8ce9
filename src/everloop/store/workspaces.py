"""Rows of ``workspaces``: an organization's named file areas (both dialects).

A session's files live in a workspace (``sessions.workspace_id``): by default its *automatic*
one, made in the session's creating transaction (``session_id`` set, named
``session-<hex of the session id>``) and deleted with it; or a shared one named at creation,
which outlives every session that uses it. The files themselves are ``store.files`` /
``store.workspace_files``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.store import files as file_store
from everloop.store.tables import sessions, workspace_files, workspaces

AUTOMATIC_PREFIX = "session-"


@dataclass(frozen=True, slots=True)
class WorkspaceRow:
    id: str
    organization_id: str
    name: str
    description: str | None
    status: str
    owner_principal_id: str
    session_id: str | None
    created_at: str
    updated_at: str
    archived_at: str | None
    deleted_at: str | None

    @property
    def is_automatic(self) -> bool:
        return self.session_id is not None


def _row(row: Any) -> WorkspaceRow:
    return WorkspaceRow(**dict(row._mapping))


def automatic_name(session_id: str) -> str:
    return AUTOMATIC_PREFIX + session_id.split("_", 1)[-1]


def automatic_id(session_id: str) -> str:
    """A session's automatic workspace id: ``wsp_`` and the session id's hex (so migration
    0026 could make them in SQL; unique as the session ids are)."""
    return "wsp_" + session_id.split("_", 1)[-1]


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(workspaces.insert().values(**values))


async def create_automatic(
    conn: AsyncConnection, org_id: str, session_id: str, owner_principal_id: str, ts: str
) -> str:
    """A new session's own workspace (one insert, in the session's creating transaction)."""
    workspace_id = automatic_id(session_id)
    await insert(
        conn,
        {
            "id": workspace_id,
            "organization_id": org_id,
            "name": automatic_name(session_id),
            "description": None,
            "status": "active",
            "owner_principal_id": owner_principal_id,
            "session_id": session_id,
            "created_at": ts,
            "updated_at": ts,
            "archived_at": None,
            "deleted_at": None,
        },
    )
    return workspace_id


async def get(conn: AsyncConnection, org_id: str, workspace_id: str) -> WorkspaceRow | None:
    row = (
        await conn.execute(
            select(workspaces).where(
                workspaces.c.id == workspace_id,
                workspaces.c.organization_id == org_id,
                workspaces.c.deleted_at.is_(None),
            )
        )
    ).first()
    return _row(row) if row else None


async def name_taken(
    conn: AsyncConnection, org_id: str, name: str, *, other_than: str | None = None
) -> bool:
    query = select(workspaces.c.id).where(
        workspaces.c.organization_id == org_id,
        workspaces.c.name == name,
        workspaces.c.deleted_at.is_(None),
    )
    if other_than is not None:
        query = query.where(workspaces.c.id != other_than)
    return (await conn.scalar(query.limit(1))) is not None


async def listing(
    conn: AsyncConnection, org_id: str, *, search: str | None, include_archived: bool
) -> list[WorkspaceRow]:
    """The organization's live workspaces by name; ``search`` is a case-insensitive substring
    of the name or the description."""
    query = select(workspaces).where(
        workspaces.c.organization_id == org_id, workspaces.c.deleted_at.is_(None)
    )
    if not include_archived:
        query = query.where(workspaces.c.status == "active")
    if search:
        needle = search.lower()
        query = query.where(
            or_(
                func.lower(workspaces.c.name).contains(needle, autoescape=True),
                func.lower(func.coalesce(workspaces.c.description, "")).contains(
                    needle, autoescape=True
                ),
            )
        )
    rows = await conn.execute(query.order_by(workspaces.c.name))
    return [_row(r) for r in rows]


async def update_row(conn: AsyncConnection, workspace_id: str, values: dict[str, Any]) -> None:
    await conn.execute(update(workspaces).where(workspaces.c.id == workspace_id).values(**values))


async def of_session(conn: AsyncConnection, session_id: str) -> str | None:
    """The workspace holding a session's files (one read of the session's row by key)."""
    value = await conn.scalar(select(sessions.c.workspace_id).where(sessions.c.id == session_id))
    return str(value) if value is not None else None


async def is_archived(conn: AsyncConnection, workspace_id: str) -> bool:
    """Whether the workspace is archived (its files read-only until it is restored)."""
    status = await conn.scalar(select(workspaces.c.status).where(workspaces.c.id == workspace_id))
    return status == "archived"


async def delete_automatic(conn: AsyncConnection, session_id: str, ts: str) -> None:
    """A deleted session's automatic workspace goes with it: its files, and the row (marked
    deleted, which frees its name). A shared workspace the session used is untouched."""
    found = (
        await conn.execute(
            select(workspaces.c.id).where(
                workspaces.c.session_id == session_id, workspaces.c.deleted_at.is_(None)
            )
        )
    ).scalars()
    for workspace_id in list(found):
        await file_store.delete_workspace(conn, workspace_id)
        await update_row(conn, workspace_id, {"deleted_at": ts, "updated_at": ts})


async def copy_files(conn: AsyncConnection, source: str, target: str) -> None:
    """Deep-copy workspace ``source``'s entries into ``target`` (each with a new file id)."""
    target_id = literal(target, workspace_files.c.workspace_id.type)
    paths = (
        await conn.execute(
            select(workspace_files.c.path)
            .where(workspace_files.c.workspace_id == source)
            .order_by(workspace_files.c.path)
        )
    ).scalars()
    columns = [c for c in workspace_files.c if c.name not in ("workspace_id", "id")]
    for path in list(paths):
        file_id = file_store.new_file_id()
        await conn.execute(
            workspace_files.insert().from_select(
                ["workspace_id", "id", *(c.name for c in columns)],
                select(target_id, literal(file_id, workspace_files.c.id.type), *columns).where(
                    workspace_files.c.workspace_id == source, workspace_files.c.path == path
                ),
            )
        )
