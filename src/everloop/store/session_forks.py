"""Queries of forking and exporting a session: its turn boundaries, its event log read and
copied page by page (keyset on ``sequence``), and its storage copied row for row.

Nothing here reads a whole log into memory: the export and the fork read ``PAGE`` events at a
time, and file, database and secret contents are copied by ``INSERT ... SELECT`` inside the
database (they never pass through Python).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.store import direct
from everloop.store.tables import (
    session_databases,
    session_kv,
    session_secrets,
    sessions,
)
from everloop.store.turns import HISTORY_EVENT_TYPES, OPEN, HistoryEvent

PAGE = 500

_INSERT_EVENT = (
    "INSERT INTO events (id, session_id, sequence, type, ts, turn_id, context, data, "
    "metadata, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_HISTORY_MARKS = ", ".join("?" for _ in HISTORY_EVENT_TYPES)


async def session_row(conn: AsyncConnection, session_id: str) -> dict[str, Any]:
    """Every column of the session's row (the caller has found the session)."""
    row = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).one()
    return dict(row._mapping)


async def first_open_turn_sequence(conn: AsyncConnection, session_id: str) -> int | None:
    """The sequence of the first event (the ``input.message``) of the session's earliest open
    turn (queued, running, or waiting for client tool results); None when none is open."""
    found = await direct.scalar(
        conn,
        direct.connection(conn),
        "SELECT MIN(input_sequence) FROM turns WHERE session_id = ? AND status IN (?, ?)",
        (session_id, *OPEN),
    )
    return None if found is None else int(found)


async def _straddling(conn: AsyncConnection, session_id: str, at: int) -> tuple[int, int] | None:
    """(first, last) sequence over the turns with events on both sides of a cut after ``at``
    (a turn's first event at or before ``at``, its last after it); None if no turn is cut."""
    row = await direct.one(
        conn,
        direct.connection(conn),
        "SELECT MIN(first_seq), MAX(last_seq) FROM (SELECT MIN(sequence) AS first_seq, "
        "MAX(sequence) AS last_seq FROM events WHERE session_id = ? AND turn_id IS NOT NULL "
        "GROUP BY turn_id HAVING MIN(sequence) <= ? AND MAX(sequence) > ?) AS cut",
        (session_id, at, at),
    )
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


async def turn_span_at(conn: AsyncConnection, session_id: str, at: int) -> tuple[int, int] | None:
    """None when a cut after sequence ``at`` keeps only whole turns. Otherwise the run of events
    ``(first, last)`` the cut falls in: ``first - 1`` and ``last`` are the nearest cuts before
    and after ``at`` that keep only whole turns (turns whose events interleave, a message
    queued behind a running turn, widen the run)."""
    span = await _straddling(conn, session_id, at)
    if span is None:
        return None
    first, last = span
    while (before := await _straddling(conn, session_id, first - 1)) is not None:
        first = min(first, before[0])
    while (after := await _straddling(conn, session_id, last)) is not None:
        last = max(last, after[1])
    return first, last


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One stored event as read for a copy: its JSON columns as the driver gave them."""

    id: str
    sequence: int
    type: str
    ts: str
    turn_id: str | None
    context: Any
    data: Any
    metadata: Any
    tags: Any


async def event_page(
    conn: AsyncConnection, session_id: str, *, after: int, through: int, limit: int = PAGE
) -> list[RawEvent]:
    """The session's events with ``after < sequence <= through``, at most ``limit``, in order
    (JSON columns decoded)."""
    raw = direct.connection(conn)
    rows = await direct.all_rows(
        conn,
        raw,
        "SELECT id, sequence, type, ts, turn_id, context, data, metadata, tags FROM events "
        "WHERE session_id = ? AND sequence > ? AND sequence <= ? ORDER BY sequence LIMIT ?",
        (session_id, after, through, limit),
    )
    return [
        RawEvent(
            str(r[0]),
            int(r[1]),
            str(r[2]),
            str(r[3]),
            r[4],
            direct.json_result(raw, r[5]),
            direct.json_result(raw, r[6]),
            direct.json_result(raw, r[7]),
            direct.json_result(raw, r[8]),
        )
        for r in rows
    ]


async def history_page(
    conn: AsyncConnection, session_id: str, *, after: int, through: int, limit: int = PAGE
) -> list[HistoryEvent]:
    """The session's conversation events (what its messages are made of) with
    ``after < sequence <= through``, at most ``limit``, in order."""
    raw = direct.connection(conn)
    rows = await direct.all_rows(
        conn,
        raw,
        "SELECT id, sequence, type, ts, turn_id, data FROM events WHERE session_id = ? "
        f"AND sequence > ? AND sequence <= ? AND type IN ({_HISTORY_MARKS}) "
        "ORDER BY sequence LIMIT ?",
        (session_id, after, through, *HISTORY_EVENT_TYPES, limit),
    )
    return [
        HistoryEvent(
            str(r[0]), int(r[1]), str(r[2]), str(r[3]), r[4], direct.json_result(raw, r[5])
        )
        for r in rows
    ]


async def insert_copies(
    conn: AsyncConnection, session_id: str, first: int, page: list[RawEvent]
) -> None:
    """Insert ``page`` into ``session_id``'s log as new events (new ids) numbered from
    ``first``, each with its type, time, turn, context, data, metadata and tags unchanged."""
    raw = direct.connection(conn)
    await direct.execute_many(
        conn,
        raw,
        _INSERT_EVENT,
        [
            (
                ids.new_id("event"),
                session_id,
                first + offset,
                e.type,
                e.ts,
                e.turn_id,
                direct.json_param(raw, e.context),
                direct.json_param(raw, e.data),
                direct.json_param(raw, e.metadata),
                direct.json_param(raw, e.tags),
            )
            for offset, e in enumerate(page)
        ],
    )


async def copy_storage(conn: AsyncConnection, source: str, target: str) -> None:
    """Deep-copy ``source``'s key-values, SQL databases and secrets into ``target`` (its files
    are its workspace's: ``store.workspaces.copy_files``). Secrets are copied sealed, never
    opened: each keeps the session it was sealed for (``session_secrets.sealed_for_session_id``;
    ``services.session_storage``)."""
    target_id = literal(target, session_kv.c.session_id.type)
    for table in (session_kv, session_databases):
        columns = [c for c in table.c if c.name != "session_id"]
        await conn.execute(
            table.insert().from_select(
                ["session_id", *(c.name for c in columns)],
                select(target_id, *columns).where(table.c.session_id == source),
            )
        )
    sealed_for = session_secrets.c.sealed_for_session_id
    columns = [c for c in session_secrets.c if c.name not in ("session_id", sealed_for.name)]
    await conn.execute(
        session_secrets.insert().from_select(
            ["session_id", sealed_for.name, *(c.name for c in columns)],
            select(
                target_id,
                # Sealed for the parent, or for the session the parent's own copy was sealed for.
                func.coalesce(sealed_for, literal(source, sealed_for.type)),
                *columns,
            ).where(session_secrets.c.session_id == source),
        )
    )
