"""Appending and reading the per-session event log.

``sequence`` is per session, gapless, from 1. It is taken from ``sessions.last_sequence`` by an
``UPDATE ... RETURNING`` in the same transaction as the insert: the row lock orders concurrent
appenders, so commit order equals sequence order and a reader paging by sequence never skips.
There is deliberately no method to change or delete an event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from everloop import ids
from everloop.domain.event_log import Event, EventContext, NewEvent
from everloop.domain.timestamps import now
from everloop.errors import NotFound
from everloop.store.notifications import notify_appended
from everloop.store.tables import events, sessions


@dataclass(frozen=True, slots=True)
class EventQuery:
    after_sequence: int | None = None
    before_sequence: int | None = None
    types: Sequence[str] = ()
    exclude: Sequence[str] = ()
    turn_id: str | None = None
    limit: int = 1000
    newest_first: bool = False


async def append_events(
    conn: AsyncConnection, session_id: str, new: Sequence[NewEvent]
) -> list[Event]:
    """Append ``new`` to the session's log inside the caller's transaction."""
    if not new:
        return []
    last = await conn.scalar(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(last_sequence=sessions.c.last_sequence + len(new))
        .returning(sessions.c.last_sequence)
    )
    if last is None:
        raise NotFound.of("session", session_id)
    return await _insert(conn, session_id, int(last) - len(new) + 1, new)


async def start_log(conn: AsyncConnection, session_id: str, new: Sequence[NewEvent]) -> list[Event]:
    """Write the first events of a session inserted in this same transaction with
    ``last_sequence = len(new)``: they are 1..len(new), with no sequence to take (no one else
    can see the session before the transaction commits)."""
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
    await conn.execute(
        events.insert(),
        [
            {
                "id": e.id,
                "session_id": session_id,
                "sequence": e.sequence,
                "type": e.type,
                "ts": e.ts,
                "turn_id": e.context.turn_id,
                "context": e.context.to_json(),
                "data": e.data,
                "metadata": e.metadata,
                "tags": e.tags,
            }
            for e in stored
        ],
    )
    await notify_appended(conn, session_id)
    return stored


async def sequence_of(conn: AsyncConnection, session_id: str, event_id: str) -> int | None:
    return await conn.scalar(
        select(events.c.sequence).where(events.c.session_id == session_id, events.c.id == event_id)
    )


async def read_events(conn: AsyncConnection, session_id: str, query: EventQuery) -> list[Event]:
    conds: list[ColumnElement[bool]] = [events.c.session_id == session_id]
    if query.after_sequence is not None:
        conds.append(events.c.sequence > query.after_sequence)
    if query.before_sequence is not None:
        conds.append(events.c.sequence < query.before_sequence)
    if query.types:
        conds.append(events.c.type.in_(list(query.types)))
    if query.exclude:
        conds.append(events.c.type.not_in(list(query.exclude)))
    if query.turn_id:
        conds.append(events.c.turn_id == query.turn_id)
    order = events.c.sequence.desc() if query.newest_first else events.c.sequence.asc()
    rows = await conn.execute(select(events).where(and_(*conds)).order_by(order).limit(query.limit))
    return [_event(r) for r in rows]


def _event(row: Any) -> Event:
    return Event(
        id=row.id,
        type=row.type,
        ts=row.ts,
        session_id=row.session_id,
        sequence=int(row.sequence),
        context=EventContext.from_json(row.context),
        data=row.data,
        metadata=row.metadata,
        tags=row.tags,
    )
