"""Session SQL databases: named SQLite databases that belong to one session.

Two entry points over one set of rules. The REST routes call the ``caller`` methods, which check
the session is the caller's and open their own transaction. The ``sql_database`` tools call the
connection methods inside the turn's step transaction, so a write commits exactly once, with the
tool's ``tool.completed`` event. SQLite work runs in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids, sql_sandbox
from everloop.domain.resources import DatabaseInfo
from everloop.domain.timestamps import now
from everloop.errors import Conflict, InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.sql_sandbox import ExecuteResult, Limits, QueryResult, SandboxError, SqlValue
from everloop.store import session_databases as rows
from everloop.store.db import Database
from everloop.store.sql import Store

NAME_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")


class SessionDatabaseService:
    def __init__(self, db: Database, store: Store, limits: Limits, *, max_per_session: int) -> None:
        self._db = db
        self._store = store
        self.limits = limits
        self._max_per_session = max_per_session

    # -- for the REST API: the caller's session, own transaction ------------------------------

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
            return await self.schema(conn, session_id, name)

    async def _check_session(self, conn: AsyncConnection, caller: Caller, session_id: str) -> None:
        """The session exists and the caller may see it; otherwise a 404."""
        ids.parse("session", session_id, field="session_id")
        found = await self._store.get_session(
            conn, caller.organization_id, session_id, principal_id=caller.principal_id
        )
        if found is None:
            raise NotFound.of("session", session_id)

    # -- on a connection (the tools run these inside the step transaction) --------------------

    async def create(self, conn: AsyncConnection, session_id: str, name: str) -> DatabaseInfo:
        check_name(name)
        if await rows.get_info(conn, session_id, name) is not None:
            raise Conflict(f"a database named '{name}' already exists", field="name")
        if await rows.count(conn, session_id) >= self._max_per_session:
            raise InvalidInput(
                f"a session may have at most {self._max_per_session} databases",
                code="database_limit_reached",
                field="name",
            )
        content = await asyncio.to_thread(sql_sandbox.empty_database)
        await rows.insert_database(conn, session_id, name, content, now())
        created = await rows.get_info(conn, session_id, name)
        assert created is not None
        return created

    async def info(self, conn: AsyncConnection, session_id: str, name: str) -> DatabaseInfo:
        found = await rows.get_info(conn, session_id, name)
        if found is None:
            raise NotFound.of("database", name)
        return found

    async def names(self, conn: AsyncConnection, session_id: str) -> list[str]:
        return [d.name for d in await rows.list_databases(conn, session_id)]

    async def schema(
        self, conn: AsyncConnection, session_id: str, name: str
    ) -> list[dict[str, Any]]:
        content = await self._content(conn, session_id, name)
        tables: list[dict[str, Any]] = await self._run(sql_sandbox.describe, content, self.limits)
        return tables

    async def query(
        self,
        conn: AsyncConnection,
        session_id: str,
        name: str,
        sql: str,
        params: Sequence[SqlValue] = (),
    ) -> QueryResult:
        content = await self._content(conn, session_id, name)
        result: QueryResult = await self._run(sql_sandbox.query, content, sql, params, self.limits)
        return result

    async def execute(
        self,
        conn: AsyncConnection,
        session_id: str,
        name: str,
        sql: str,
        params: Sequence[SqlValue] = (),
    ) -> ExecuteResult:
        content = await self._content(conn, session_id, name, for_update=True)
        result: ExecuteResult = await self._run(
            sql_sandbox.execute, content, sql, params, self.limits
        )
        await rows.save_content(conn, session_id, name, result.content, now())
        return result

    async def _content(
        self, conn: AsyncConnection, session_id: str, name: str, *, for_update: bool = False
    ) -> bytes:
        content = await rows.get_content(conn, session_id, name, for_update=for_update)
        if content is None:
            raise NotFound.of("database", name)
        return content

    @staticmethod
    async def _run(function: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args)
        except SandboxError as exc:
            raise InvalidInput(str(exc), code="sql_error") from None


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            "a database name is a letter or underscore followed by up to 63 letters, digits "
            f"or underscores: {name[:80]!r}",
            field="name",
        )
