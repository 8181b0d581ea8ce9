"""Capability ``sql_database``: named, sandboxed SQLite databases per session.

``create_database`` is *transactional*: it only inserts a row, inside the runner's step
transaction. ``sql_query``, ``sql_execute`` and ``list_tables`` are *prepared* tools
(``capabilities.base.Prepared``): the agent's SQL runs outside any transaction, on a copy of
the database, in a worker process that is killed at the time limit (``everloop.sql_pool``), so
a hostile statement holds no lock of the app database and no other session waits for it. A
``sql_execute`` that changed the database returns a commit that stores the new bytes in the
step transaction, together with its ``tool.completed`` event (exactly once), if the stored
bytes are still the ones it ran on; otherwise the runner runs the statement again on the new
ones. The sandbox (``everloop.sql_sandbox``) refuses ATTACH, extension loading and PRAGMAs
outside a short allow-list, and bounds time, rows, result bytes and size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import (
    Capability,
    Prepared,
    SideEffect,
    StaleWrite,
    ToolContext,
    ToolError,
)
from everloop.domain.messages import JsonObject, JsonValue
from everloop.errors import EverloopError
from everloop.sql_sandbox import SqlValue
from everloop.store.session_database_engine import SessionDatabases

_NAME: JsonObject = {
    "type": "string",
    "pattern": "^[a-zA-Z_][a-zA-Z0-9_]{0,63}$",
    "description": "Database name: a letter or underscore, then letters, digits, underscores.",
}
_SQL: JsonObject = {"type": "string", "minLength": 1, "maxLength": 100_000}
_PARAMS: JsonObject = {
    "type": "array",
    "maxItems": 1000,
    "items": {"type": ["string", "number", "integer", "boolean", "null"]},
    "description": "Values for the ? placeholders of a single statement.",
}

Operation = Callable[[AsyncConnection, str, JsonObject], Awaitable[JsonValue]]
Preparation = Callable[[str, JsonObject], Awaitable[Prepared]]


def _tool_error(exc: EverloopError) -> ToolError:
    """Everloop's errors become tool errors: the model sees the message."""
    return ToolError(exc.message)


@dataclass(frozen=True, slots=True)
class _SqlTool:
    """A transactional tool: runs with the step's connection."""

    name: str
    description: str
    parameters: JsonObject
    operation: Operation = field(repr=False)
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        if context.connection is None:
            raise ToolError(f"{self.name} must run inside the turn's step transaction")
        try:
            return await self.operation(context.connection, context.session_id, arguments)
        except EverloopError as exc:
            raise _tool_error(exc) from None


@dataclass(frozen=True, slots=True)
class _PreparedSqlTool:
    """A prepared tool: its SQL runs outside any transaction (see the module docstring). Its
    only effect is the write it commits with its record, so it is transactional: exactly once."""

    name: str
    description: str
    parameters: JsonObject
    preparation: Preparation = field(repr=False)
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL

    async def prepare(self, arguments: JsonObject, context: ToolContext) -> Prepared:
        try:
            return await self.preparation(context.session_id, arguments)
        except EverloopError as exc:
            raise _tool_error(exc) from None

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        """The call without a runner to commit it: only for calls that write nothing."""
        prepared = await self.prepare(arguments, context)
        if prepared.commit is not None:
            raise ToolError(f"{self.name} changes data: it must run through the turn runner")
        return prepared.result


def _params(args: JsonObject) -> list[SqlValue]:
    values = args.get("params") or []
    assert isinstance(values, list)  # schema-checked: a list of scalars
    return [v for v in values if v is None or isinstance(v, str | int | float | bool)]


def _json(value: object) -> JsonValue:
    # Rows and schemas hold only JSON scalars, lists and string-keyed dicts (see sql_sandbox).
    return cast(JsonValue, value)


def _object(properties: JsonObject, required: list[str]) -> JsonObject:
    return {
        "type": "object",
        "properties": properties,
        "required": _json(required),
        "additionalProperties": False,
    }


def build_sql_database_capability(service: SessionDatabases) -> Capability:
    async def create_database(
        conn: AsyncConnection, session_id: str, args: JsonObject
    ) -> JsonValue:
        info = await service.create(conn, session_id, str(args["name"]))
        return {"name": info.name, "size_bytes": info.size_bytes, "created": True}

    async def sql_query(session_id: str, args: JsonObject) -> Prepared:
        result = await service.query(
            session_id, str(args["database"]), str(args["sql"]), _params(args)
        )
        return Prepared(
            {
                "columns": _json(result.columns),
                "rows": _json(result.rows),
                "row_count": len(result.rows),
                "truncated": result.truncated,
            }
        )

    async def sql_execute(session_id: str, args: JsonObject) -> Prepared:
        write = await service.execute(
            session_id, str(args["database"]), str(args["sql"]), _params(args)
        )

        async def commit(conn: AsyncConnection) -> None:
            if not await service.save(conn, write):
                raise StaleWrite(f"database {write.name!r} changed while the statement ran")

        result = write.result
        summary: JsonValue = {
            "rows_affected": result.rows_affected,
            "last_insert_rowid": result.last_insert_rowid,
            "size_bytes": len(result.content),
        }
        return Prepared(summary, commit if result.changed else None)

    async def list_tables(session_id: str, args: JsonObject) -> Prepared:
        database = args.get("database")
        if database is None:
            return Prepared({"databases": _json(await service.names(session_id))})
        tables = await service.schema(session_id, str(database))
        return Prepared({"database": database, "tables": _json(tables)})

    limits = service.limits
    return Capability(
        id="sql_database",
        name="SQL databases",
        description=(
            "Named SQLite databases for this session: create them, change them with SQL and "
            "query them. Sandboxed: no ATTACH, no extensions, bounded time, rows and size."
        ),
        category="data",
        features=("sql_database",),
        risk_level="medium",
        system_prompt_addition=(
            "You can keep structured data in SQLite databases that belong to this session: "
            "create_database, then sql_execute to create tables and change rows, sql_query to "
            "read (one SELECT; use ? placeholders with params), list_tables to see the schema. "
            f"A query returns at most {limits.max_rows} rows; a statement may run "
            f"{limits.timeout_seconds:g} s."
        ),
        tools=(
            _SqlTool(
                "create_database",
                "Create an empty SQLite database for this session.",
                _object({"name": _NAME}, ["name"]),
                create_database,
            ),
            _PreparedSqlTool(
                "sql_query",
                "Run one read-only SQL statement (SELECT, or an allowed PRAGMA such as "
                "table_info) on a session database and return its rows.",
                _object({"database": _NAME, "sql": _SQL, "params": _PARAMS}, ["database", "sql"]),
                sql_query,
            ),
            _PreparedSqlTool(
                "sql_execute",
                "Change a session database: one statement with params, or a script of several "
                "statements without. All of it applies, or none.",
                _object({"database": _NAME, "sql": _SQL, "params": _PARAMS}, ["database", "sql"]),
                sql_execute,
            ),
            _PreparedSqlTool(
                "list_tables",
                "List this session's databases, or with `database` the tables and columns of "
                "that database.",
                _object({"database": _NAME}, []),
                list_tables,
            ),
        ),
    )
