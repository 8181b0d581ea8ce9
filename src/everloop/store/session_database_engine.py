"""Session SQL databases: named SQLite databases that belong to one session (the rules the
``sql_database`` tools and ``services.session_databases`` share; below the services).

The ``sql_database`` tools call ``create`` inside the turn's step transaction; ``query``,
``execute`` and ``schema`` *outside any transaction*.

The agent's SQL never runs in this process and never while a transaction of the app database
is open: ``query``/``execute``/``schema`` read the database's bytes (a short read), release the
connection and run the SQL on that copy in a worker process (``everloop.sql_pool``), which is
killed when the statement runs past its time limit. An ``execute`` that changed the database
returns a ``DatabaseWrite``; ``save`` applies it inside the step transaction (with the tool's
``tool.completed``, so exactly once) only if the stored bytes are still the ones the SQL ran on
(a compare-and-swap on the content), so two concurrent writers cannot lose an update: the later
one is told to run again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import sql_sandbox
from everloop.domain.resources import DatabaseInfo
from everloop.domain.timestamps import now
from everloop.errors import Conflict, InvalidInput, NotFound
from everloop.sql_pool import Reply, SqlWorkerPool
from everloop.sql_sandbox import ExecuteResult, Limits, QueryResult, SandboxError, SqlValue
from everloop.store import session_databases as rows
from everloop.store.db import Database

NAME_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class DatabaseWrite:
    """An ``execute`` done on a copy, to be saved: its result and the bytes it ran on."""

    session_id: str
    name: str
    base: bytes
    result: ExecuteResult


class SessionDatabases:
    def __init__(
        self,
        db: Database,
        limits: Limits,
        pool: SqlWorkerPool,
        *,
        max_per_session: int,
    ) -> None:
        self._db = db
        self.limits = limits
        self.pool = pool
        self._max_per_session = max_per_session

    async def close(self) -> None:
        await self.pool.close()

    # -- creating, inside the caller's transaction ---------------------------------------------

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

    # -- the agent's SQL: outside any transaction, in a worker process -------------------------

    async def names(self, session_id: str) -> list[str]:
        async with self._db.read() as conn:
            return [d.name for d in await rows.list_databases(conn, session_id)]

    async def schema(self, session_id: str, name: str) -> list[dict[str, Any]]:
        content = await self._content(session_id, name)
        tables: list[dict[str, Any]] = (await self._run("describe", content)).result
        return tables

    async def query(
        self, session_id: str, name: str, sql: str, params: Sequence[SqlValue] = ()
    ) -> QueryResult:
        content = await self._content(session_id, name)
        found = (await self._run("query", content, sql, params)).result
        return QueryResult(found["columns"], found["rows"], bool(found["truncated"]))

    async def execute(
        self, session_id: str, name: str, sql: str, params: Sequence[SqlValue] = ()
    ) -> DatabaseWrite:
        """Run a write on a copy of the database; ``save`` makes it stick."""
        content = await self._content(session_id, name)
        reply = await self._run("execute", content, sql, params)
        done = reply.result
        changed = bool(done["changed"])
        result = ExecuteResult(
            int(done["rows_affected"]),
            done["last_insert_rowid"],
            reply.blob if changed else content,
            changed,
        )
        return DatabaseWrite(session_id, name, content, result)

    async def save(self, conn: AsyncConnection, write: DatabaseWrite) -> bool:
        """Store ``write`` in the caller's transaction if the database still holds the bytes
        it ran on; False (nothing written) if another write came first or it was deleted."""
        if not write.result.changed:
            return True
        return await rows.replace_content(
            conn, write.session_id, write.name, write.base, write.result.content, now()
        )

    async def _content(self, session_id: str, name: str) -> bytes:
        async with self._db.read() as conn:
            content = await rows.get_content(conn, session_id, name)
        if content is None:
            raise NotFound.of("database", name)
        return content

    async def _run(
        self, op: str, content: bytes, sql: str = "", params: Sequence[SqlValue] = ()
    ) -> Reply:
        try:
            return await self.pool.run(op, content, self.limits, sql, params)
        except SandboxError as exc:
            raise InvalidInput(str(exc), code="sql_error") from None


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            "a database name is a letter or underscore followed by up to 63 letters, digits "
            f"or underscores: {name[:80]!r}",
            field="name",
        )
