"""The few statements every step of a turn runs, executed directly on the driver connection
under SQLAlchemy's, inside the transaction SQLAlchemy opened.

Through SQLAlchemy a statement costs ~25 us of Python (execution context, parameter
processing, result wrapping) around a few us in the database; a turn runs these statements a
few dozen times. Both drivers we run on expose their connection:

- embedded SQLite (``store.sqlite_inline``): a plain ``sqlite3`` connection on the event loop;
  statements run synchronously.
- PostgreSQL: psycopg's ``AsyncConnection`` (awaited; psycopg prepares a statement on the server
  after a few executions).

Each statement has one SQL text, written with ``?`` placeholders; it is rewritten once to
psycopg's ``%s``. JSON parameters go through ``json_param`` (text on SQLite, ``Jsonb`` on
PostgreSQL, both encoded by ``store.db.json_dumps``) and JSON results through
``json_result`` (psycopg returns JSONB decoded). Driver errors surface as SQLAlchemy's own
(``IntegrityError``, ``DataError``, ...), translated by SQLAlchemy itself, so callers catch the
same exceptions as for a statement sent through SQLAlchemy.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, TypeAlias

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.store.db import json_dumps, json_loads

Raw: TypeAlias = "sqlite3.Connection | psycopg.AsyncConnection[Any]"

_PG_SQL: dict[str, str] = {}


def connection(conn: AsyncConnection) -> Raw:
    """The driver connection under ``conn`` (in its current transaction, if any)."""
    raw: Raw = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr,assignment]
    if isinstance(raw, (sqlite3.Connection, psycopg.AsyncConnection)):
        return raw
    raise TypeError(f"unsupported driver {conn.dialect.driver!r} ({type(raw).__name__})")


def is_postgresql(raw: Raw) -> bool:
    return not isinstance(raw, sqlite3.Connection)


def json_param(raw: Raw, value: Any) -> Any:
    """A value for a JSON column (None is SQL NULL, as the columns are ``none_as_null``)."""
    if value is None:
        return None
    if isinstance(raw, sqlite3.Connection):
        return json_dumps(value)
    return Jsonb(value)


def json_result(raw: Raw, value: Any) -> Any:
    """A JSON column's value as read (already decoded by psycopg on PostgreSQL)."""
    if value is None or not isinstance(raw, sqlite3.Connection):
        return value
    return json_loads(value)


def _pg(sql: str) -> str:
    found = _PG_SQL.get(sql)
    if found is None:
        found = _PG_SQL[sql] = sql.replace("%", "%%").replace("?", "%s")
    return found


async def _raise_translated(conn: AsyncConnection, exc: Exception, sql: str, params: Any) -> None:
    """Raise ``exc`` as SQLAlchemy would for a statement it sent (``IntegrityError``,
    ``DataError``, ...; a lost connection is invalidated), inside SQLAlchemy's greenlet."""

    def translate(sync_conn: Any) -> None:
        sync_conn._handle_dbapi_exception(exc, sql, params, None, None)

    await conn.run_sync(translate)


async def _run(conn: AsyncConnection, raw: Raw, sql: str, params: Sequence[Any]) -> Any:
    """The cursor of ``sql`` run with ``params``."""
    try:
        if isinstance(raw, sqlite3.Connection):
            return raw.execute(sql, params)
        return await raw.execute(_pg(sql), params)
    except (sqlite3.Error, psycopg.Error) as exc:
        await _raise_translated(conn, exc, sql, params)
        raise  # not reached: the translation raises


async def one(conn: AsyncConnection, raw: Raw, sql: str, params: Sequence[Any]) -> Any:
    """The first row of ``sql`` (a tuple), or None."""
    cursor = await _run(conn, raw, sql, params)
    if isinstance(raw, sqlite3.Connection):
        return cursor.fetchone()
    return await cursor.fetchone()


async def scalar(conn: AsyncConnection, raw: Raw, sql: str, params: Sequence[Any]) -> Any:
    row = await one(conn, raw, sql, params)
    return None if row is None else row[0]


async def all_rows(
    conn: AsyncConnection, raw: Raw, sql: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    cursor = await _run(conn, raw, sql, params)
    if isinstance(raw, sqlite3.Connection):
        return list(cursor.fetchall())
    return list(await cursor.fetchall())


async def execute(conn: AsyncConnection, raw: Raw, sql: str, params: Sequence[Any]) -> int:
    """Run a statement without result rows; the number of rows it changed."""
    cursor = await _run(conn, raw, sql, params)
    return int(cursor.rowcount)


async def execute_many(
    conn: AsyncConnection, raw: Raw, sql: str, rows: Sequence[Sequence[Any]]
) -> None:
    if len(rows) == 1:
        await _run(conn, raw, sql, rows[0])
        return
    try:
        if isinstance(raw, sqlite3.Connection):
            raw.executemany(sql, rows)
        else:
            async with raw.cursor() as cursor:
                await cursor.executemany(_pg(sql), rows)
    except (sqlite3.Error, psycopg.Error) as exc:
        await _raise_translated(conn, exc, sql, None)
        raise


__all__ = ["Raw", "connection"]
