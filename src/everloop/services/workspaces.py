"""Workspaces: an organization's named file areas, which sessions share.

Every session's files live in a workspace: its automatic one (made with it, deleted with it),
or a shared one named by ``workspace_id`` at ``POST /v1/sessions``. A shared workspace outlives
its sessions; ``DELETE`` archives it (its files stay readable; writes through the API are a
409 ``workspace_archived``). An automatic workspace is reached like any other, but is archived
or deleted only with its session. The files are ``store.workspace_files.Workspace``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.timestamps import now
from everloop.errors import Conflict, InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.services.files import FileLimits, opened
from everloop.store import workspaces as store
from everloop.store.db import Database
from everloop.store.workspace_files import Workspace
from everloop.store.workspaces import AUTOMATIC_PREFIX, WorkspaceRow

WorkspaceInfo = WorkspaceRow  # what the routes read of a workspace

STATUSES = ("active", "archived")


async def resolve_shared(conn: AsyncConnection, org_id: str, workspace_id: str) -> WorkspaceRow:
    """The workspace a new session names (same organization, active): 404 naming the field
    otherwise (another organization's workspace is not found)."""
    ids.parse("wsp", workspace_id, field="workspace_id")
    row = await store.get(conn, org_id, workspace_id)
    if row is None:
        raise NotFound(f"workspace '{workspace_id}' not found", field="workspace_id")
    if row.status != "active":
        raise InvalidInput(
            f"workspace '{workspace_id}' is archived and cannot be used",
            code="workspace_archived",
            field="workspace_id",
        )
    return row


class WorkspaceService:
    def __init__(self, db: Database, limits: FileLimits) -> None:
        self._db = db
        self.limits = limits

    async def list(
        self, caller: Caller, *, search: str | None, include_archived: bool
    ) -> list[WorkspaceRow]:
        async with self._db.read() as conn:
            return await store.listing(
                conn, caller.organization_id, search=search, include_archived=include_archived
            )

    async def create(self, caller: Caller, name: str, description: str | None) -> WorkspaceRow:
        _check_name(name)
        ts = now()
        values: dict[str, Any] = {
            "id": ids.new_id("wsp"),
            "organization_id": caller.organization_id,
            "name": name,
            "description": description,
            "status": "active",
            "owner_principal_id": caller.principal_id,
            "session_id": None,
            "created_at": ts,
            "updated_at": ts,
            "archived_at": None,
            "deleted_at": None,
        }
        async with opened(self._db, write=True) as conn:
            if await store.name_taken(conn, caller.organization_id, name):
                raise Conflict(f"a workspace named '{name}' already exists", field="name")
            await store.insert(conn, values)
        return WorkspaceRow(**values)

    async def get(
        self, caller: Caller, workspace_id: str, conn: AsyncConnection | None = None
    ) -> WorkspaceRow:
        ids.parse("wsp", workspace_id, field="workspace_id")
        if conn is None:
            async with self._db.read() as own:
                return await self._require(own, caller, workspace_id)
        return await self._require(conn, caller, workspace_id)

    async def update(
        self, caller: Caller, workspace_id: str, changes: dict[str, Any]
    ) -> WorkspaceRow:
        ids.parse("wsp", workspace_id, field="workspace_id")
        if changes.get("status") is not None and changes["status"] not in STATUSES:
            raise InvalidInput("status is 'active' or 'archived'", field="status")
        async with opened(self._db, write=True) as conn:
            row = await self._require(conn, caller, workspace_id)
            values: dict[str, Any] = {}
            name = changes.get("name")
            if name is not None and name != row.name:
                if row.is_automatic:
                    raise Conflict("a session's automatic workspace keeps its name", field="name")
                _check_name(name)
                if await store.name_taken(
                    conn, caller.organization_id, name, other_than=workspace_id
                ):
                    raise Conflict(f"a workspace named '{name}' already exists", field="name")
                values["name"] = name
            if "description" in changes and changes["description"] is not None:
                values["description"] = changes["description"]
            status = changes.get("status")
            if status is not None and status != row.status:
                self._refuse_automatic(row, field="status")
                values["status"] = status
                values["archived_at"] = now() if status == "archived" else None
            if values:
                values["updated_at"] = now()
                await store.update_row(conn, workspace_id, values)
            return await self._require(conn, caller, workspace_id)

    async def archive(self, caller: Caller, workspace_id: str) -> None:
        """``DELETE``: archive the workspace (its files stay, read-only through the API)."""
        ids.parse("wsp", workspace_id, field="workspace_id")
        async with opened(self._db, write=True) as conn:
            row = await self._require(conn, caller, workspace_id)
            self._refuse_automatic(row, field="workspace_id")
            if row.status != "archived":
                ts = now()
                await store.update_row(
                    conn, workspace_id, {"status": "archived", "archived_at": ts, "updated_at": ts}
                )

    @asynccontextmanager
    async def files(
        self, caller: Caller, workspace_id: str, *, write: bool = False
    ) -> AsyncIterator[Workspace]:
        """The workspace's file system (the caller's organization only; 404 otherwise)."""
        ids.parse("wsp", workspace_id, field="workspace_id")
        async with opened(self._db, write=write) as conn:
            row = await self._require(conn, caller, workspace_id)
            if write and row.status != "active":
                raise Conflict(
                    f"workspace '{workspace_id}' is archived; its files are read-only",
                    code="workspace_archived",
                )
            yield Workspace(conn, workspace_id, self.limits)

    async def _require(
        self, conn: AsyncConnection, caller: Caller, workspace_id: str
    ) -> WorkspaceRow:
        row = await store.get(conn, caller.organization_id, workspace_id)
        if row is None:
            raise NotFound.of("workspace", workspace_id)
        return row

    @staticmethod
    def _refuse_automatic(row: WorkspaceRow, *, field: str) -> None:
        if row.is_automatic:
            raise Conflict(
                f"workspace '{row.id}' is session {row.session_id}'s own; it goes with the session",
                code="automatic_workspace",
                field=field,
            )


def _check_name(name: str) -> None:
    if name.startswith(AUTOMATIC_PREFIX):
        raise InvalidInput(
            f"names starting with '{AUTOMATIC_PREFIX}' are kept for sessions' own workspaces",
            field="name",
        )
