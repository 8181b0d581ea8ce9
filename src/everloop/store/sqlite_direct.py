"""The few statements every step of a turn runs, executed directly on the embedded SQLite
connection.

Through SQLAlchemy a statement costs ~25 us of Python (execution context, parameter
processing, result wrapping) around ~2 us in SQLite; a turn runs these statements a few dozen
times. On the embedded SQLite driver (``store.sqlite_inline``) the connection under an
``AsyncConnection`` is a plain ``sqlite3`` connection on the event loop, so the store can run
them on it directly, inside the transaction SQLAlchemy opened. Each function here returns
``None`` when the connection is not that driver (PostgreSQL), and the caller runs its
SQLAlchemy statement instead: one schema, one behaviour, two ways to send the same SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.store import sqlite_inline

# Columns of ``sessions`` that appending events may set in the same statement.
SESSION_COLUMNS = frozenset(
    {"status", "updated_at", "started_at", "finished_at", "preview", "output_preview"}
)


def connection(conn: AsyncConnection) -> sqlite3.Connection | None:
    """The sqlite3 connection under ``conn``, or None when it is not the inline driver."""
    if conn.dialect.driver != sqlite_inline.DRIVER:
        return None
    raw: sqlite3.Connection = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr,assignment]
    return raw


def take_sequences(
    raw: sqlite3.Connection, session_id: str, count: int, values: Mapping[str, Any] | None
) -> int | None:
    sets = "".join(f", {name} = ?" for name in values or ())
    if values and not SESSION_COLUMNS.issuperset(values):
        raise ValueError(f"not a session column: {sorted(set(values) - SESSION_COLUMNS)}")
    row = raw.execute(
        f"UPDATE sessions SET last_sequence = last_sequence + ?{sets} WHERE id = ? "
        "RETURNING last_sequence",
        (count, *(values or {}).values(), session_id),
    ).fetchone()
    return None if row is None else int(row[0])


def insert_events(raw: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    """Rows of (id, session_id, sequence, type, ts, turn_id, context, data, metadata, tags),
    JSON columns already encoded."""
    raw.executemany(
        "INSERT INTO events (id, session_id, sequence, type, ts, turn_id, context, data, "
        "metadata, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def scalar(raw: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    row = raw.execute(sql, params).fetchone()
    return None if row is None else row[0]


def one(raw: sqlite3.Connection, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = raw.execute(sql, params).fetchone()
    return row


def all_rows(raw: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    return list(raw.execute(sql, params).fetchall())


def insert(raw: sqlite3.Connection, sql: str, params: Sequence[Any]) -> None:
    """An INSERT; a constraint violation raises SQLAlchemy's ``IntegrityError`` as the
    SQLAlchemy path would."""
    try:
        raw.execute(sql, params)
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(sql, params, exc) from exc
