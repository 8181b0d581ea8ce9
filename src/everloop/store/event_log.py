"""Appending and reading the per-session event log.

``sequence`` is per session, gapless, from 1. It is taken from ``sessions.last_sequence`` by an
``UPDATE ... RETURNING`` in the same transaction as the insert: the row lock orders concurrent
appenders, so commit order equals sequence order and a reader paging by sequence never skips.
There is deliberately no method to change or delete an event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.event_log import Event, EventContext, NewEvent
from everloop.domain.timestamps import now
from everloop.errors import NotFound
from everloop.store import direct, event_filters
from everloop.store.db import APPENDED
from everloop.store.event_filters import EventQuery as EventQuery
from everloop.store.notifications import CHANNEL
from everloop.store.tables import events, sessions

# Columns of ``sessions`` that appending events may set in the same statement.
SESSION_COLUMNS = frozenset(
    {
        "status",
        "updated_at",
        "started_at",
        "finished_at",
        "preview",
        "output_preview",
        "subagent_status",
        "title",
        "title_search",
    }
)
_INSERT_EVENTS = (
    "INSERT INTO events (id, session_id, sequence, type, ts, turn_id, context, data, "
    "metadata, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class TurnHalted(Exception):
    """The turn is no longer running (cancelled, or already finished): stop writing for it."""


@dataclass(frozen=True, slots=True)
class TurnGuard:
    """Write only while turn ``turn_id`` is in one of ``statuses`` (and, with ``live``, its
    session is not deleted). The check rides on the statement that locks the session's row
    (one round trip less per step); only when it fails does a second query find out why."""

    turn_id: str
    statuses: tuple[str, ...] = ("running",)
    live: bool = False

    def sql(self) -> str:
        marks = ", ".join("?" for _ in self.statuses)
        live = " AND deleted_at IS NULL" if self.live else ""
        return (
            f"{live} AND EXISTS (SELECT 1 FROM turns WHERE turns.id = ? "
            f"AND turns.status IN ({marks}))"
        )

    def params(self) -> tuple[str, ...]:
        return (self.turn_id, *self.statuses)

    async def halted(self, conn: AsyncConnection, raw: direct.Raw, session_id: str) -> Exception:
        """Why a guarded statement changed no row: ``TurnHalted`` or ``NotFound``."""
        row = await direct.one(
            conn,
            raw,
            "SELECT turns.status, sessions.deleted_at FROM turns JOIN sessions "
            "ON sessions.id = turns.session_id WHERE turns.id = ?",
            (self.turn_id,),
        )
        if row is None:
            return TurnHalted("missing")
        if row[0] not in self.statuses:
            return TurnHalted(str(row[0]))
        if self.live and row[1] is not None:
            return TurnHalted("session deleted")
        return NotFound.of("session", session_id)


def _take_sequences(postgresql: bool, columns: Sequence[str], guard: TurnGuard | None) -> str:
    """``UPDATE sessions SET last_sequence = last_sequence + ? [, other columns] ... RETURNING
    last_sequence`` (and on PostgreSQL the notification, in the same statement: one round
    trip less than a separate ``SELECT pg_notify``)."""
    sets = "".join(f", {name} = ?" for name in columns)
    # The payload says which session and up to which sequence (``notifications.parse``).
    notify = f", pg_notify('{CHANNEL}', id || ' ' || last_sequence)" if postgresql else ""
    return (
        f"UPDATE sessions SET last_sequence = last_sequence + ?{sets} WHERE id = ?"
        f"{guard.sql() if guard else ''} RETURNING last_sequence{notify}"
    )


async def append_events(
    conn: AsyncConnection,
    session_id: str,
    new: Sequence[NewEvent],
    *,
    session_values: Mapping[str, Any] | None = None,
    guard: TurnGuard | None = None,
) -> list[Event]:
    """Append ``new`` to the session's log inside the caller's transaction; ``session_values``
    are set on the session's row by the same statement that takes the sequence numbers.
    With ``guard``, nothing is written and ``TurnHalted`` raised unless the turn is in the
    guard's state."""
    if not new:
        return []
    values = session_values or {}
    if not SESSION_COLUMNS.issuperset(values):
        raise ValueError(f"not a session column: {sorted(set(values) - SESSION_COLUMNS)}")
    raw = direct.connection(conn)
    last = await direct.scalar(
        conn,
        raw,
        _take_sequences(direct.is_postgresql(raw), tuple(values), guard),
        (len(new), *values.values(), session_id, *(guard.params() if guard else ())),
    )
    if last is None:
        if guard is not None:
            raise await guard.halted(conn, raw, session_id)
        raise NotFound.of("session", session_id)
    return await _insert(conn, session_id, int(last) - len(new) + 1, new)


async def start_log(conn: AsyncConnection, session_id: str, new: Sequence[NewEvent]) -> list[Event]:
    """Write the first events of a session inserted in this same transaction with
    ``last_sequence = len(new)``: they are 1..len(new), with no sequence to take (no one else
    can see the session before the transaction commits, so no stream waits for a
    notification of them either)."""
    return await _insert(conn, session_id, 1, new)


async def _insert(
    conn: AsyncConnection, session_id: str, first: int, new: Sequence[NewEvent]
) -> list[Event]:
    ts = now()
    stored = [
        Event(
            id=ids.new_id("event"),
            type=item.type,
            ts=ts,
            session_id=session_id,
            sequence=first + offset,
            context=item.context,
            data=item.data,
            metadata=item.metadata,
            tags=item.tags,
        )
        for offset, item in enumerate(new)
    ]
    # Handed to the commit listeners once the transaction commits (``Database.write``).
    conn.info.setdefault(APPENDED, []).extend(stored)
    raw = direct.connection(conn)
    await direct.execute_many(
        conn,
        raw,
        _INSERT_EVENTS,
        [
            (
                e.id,
                session_id,
                e.sequence,
                e.type,
                e.ts,
                e.context.turn_id,
                direct.json_param(raw, e.context.to_json()),
                direct.json_param(raw, e.data),
                direct.json_param(raw, e.metadata),
                direct.json_param(raw, e.tags),
            )
            for e in stored
        ],
    )
    return stored


async def sequence_of(conn: AsyncConnection, session_id: str, event_id: str) -> int | None:
    return await conn.scalar(
        select(events.c.sequence).where(events.c.session_id == session_id, events.c.id == event_id)
    )


async def last_sequence(conn: AsyncConnection, session_id: str) -> int:
    """The sequence of the session's newest committed event (0 when it has none)."""
    value = await conn.scalar(select(sessions.c.last_sequence).where(sessions.c.id == session_id))
    return int(value or 0)


async def read_events(conn: AsyncConnection, session_id: str, query: EventQuery) -> list[Event]:
    raw = direct.connection(conn)
    where = event_filters.where(query, postgresql=direct.is_postgresql(raw))
    if where is None:
        return []
    conds, params = where
    rows = await direct.all_rows(
        conn,
        raw,
        "SELECT id, type, ts, session_id, sequence, context, data, metadata, tags FROM events "
        f"WHERE {' AND '.join(['session_id = ?', *conds])} "
        f"ORDER BY sequence {'DESC' if query.newest_first else 'ASC'} LIMIT ?",
        (session_id, *params, query.limit),
    )
    return [
        Event(
            id=row[0],
            type=row[1],
            ts=row[2],
            session_id=row[3],
            sequence=int(row[4]),
            context=EventContext.from_json(direct.json_result(raw, row[5])),
            data=direct.json_result(raw, row[6]),
            metadata=direct.json_result(raw, row[7]),
            tags=direct.json_result(raw, row[8]),
        )
        for row in rows
    ]


async def read_window(
    conn: AsyncConnection, session_id: str, query: EventQuery, anchor: int, window: int
) -> list[Event]:
    """Up to ``window`` events of ``query`` before sequence ``anchor``, the anchor's event if it
    is one of them, and up to ``window`` after it; oldest first."""
    before = await read_events(
        conn,
        session_id,
        replace(
            query, before_sequence=anchor, after_sequence=None, newest_first=True, limit=window
        ),
    )
    rest = await read_events(
        conn,
        session_id,
        replace(
            query,
            after_sequence=anchor - 1,
            before_sequence=None,
            newest_first=False,
            limit=window + 1,
        ),
    )
    if rest and rest[0].sequence != anchor:
        rest = rest[:window]
    return [*reversed(before), *rest]
