"""Session SQL databases through the REST API: the caller's session first, then the rules of
``store.session_database_engine`` (which the ``sql_database`` tools use directly)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.resources import DatabaseInfo
from everloop.errors import NotFound
from everloop.services.auth import Caller
from everloop.sql_pool import SqlWorkerPool
from everloop.sql_sandbox import Limits
from everloop.store import session_databases as rows
from everloop.store.db import Database
from everloop.store.session_database_engine import (
    NAME_PATTERN,
    DatabaseWrite,
    SessionDatabases,
    check_name,
)
from everloop.store.sql import Store

__all__ = ["NAME_PATTERN", "DatabaseWrite", "SessionDatabaseService", "check_name"]


class SessionDatabaseService(SessionDatabases):
    def __init__(
        self,
        db: Database,
        store: Store,
        limits: Limits,
        pool: SqlWorkerPool,
        *,
        max_per_session: int,
    ) -> None:
        super().__init__(db, limits, pool, max_per_session=max_per_session)
        self._store = store

    # -- for the REST API: the caller's session ------------------------------------------------

    async def list_for(self, caller: Caller, session_id: str) -> list[DatabaseInfo]:
        async with self._db.read() as conn:
            await self._check_session(conn, caller, session_id)
            return await rows.list_databases(conn, session_id)

    async def create_for(self, caller: Caller, session_id: str, name: str) -> DatabaseInfo:
        async with self._db.write() as conn:
            await self._check_session(conn, caller, session_id)
            return await self.create(conn, session_id, name)

    async def get_for(self, caller: Caller, session_id: str, name: str) -> DatabaseInfo:
        async with self._db.read() as conn:
            await self._check_session(conn, caller, session_id)
            return await self.info(conn, session_id, name)

    async def delete_for(self, caller: Caller, session_id: str, name: str) -> None:
        async with self._db.write() as conn:
            await self._check_session(conn, caller, session_id)
            if not await rows.delete_database(conn, session_id, name):
                raise NotFound.of("database", name)

    async def schema_for(self, caller: Caller, session_id: str, name: str) -> list[dict[str, Any]]:
        async with self._db.read() as conn:
            await self._check_session(conn, caller, session_id)
        return await self.schema(session_id, name)

    async def _check_session(self, conn: AsyncConnection, caller: Caller, session_id: str) -> None:
        """The session exists and the caller may see it; otherwise a 404."""
        ids.parse("session", session_id, field="session_id")
        found = await self._store.get_session(
            conn, caller.organization_id, session_id, principal_id=caller.principal_id
        )
        if found is None:
            raise NotFound.of("session", session_id)
