"""Writing a session's title together with its ``session.title.updated`` event.

One function for the three writers (the API, the ``write_session_title`` tool, the automatic
title at the end of a first turn), in the caller's transaction: the title, its search column
and the event are one statement's work (``append_events`` sets the row as it takes the
sequence), so a reader never sees a title without its event, or the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.session_titles import SESSION_TITLE_UPDATED, TitleSource, title_updated
from everloop.domain.timestamps import now
from everloop.errors import NotFound
from everloop.store.event_log import append_events
from everloop.store.tables import sessions


@dataclass(frozen=True, slots=True)
class TitleChange:
    """What a title write did: the title before it, and whether it changed anything."""

    previous_title: str | None
    changed: bool


async def current_title(conn: AsyncConnection, session_id: str) -> str | None:
    """The session's title (``NotFound`` for a deleted or unknown session)."""
    row = (
        await conn.execute(
            select(sessions.c.title).where(
                sessions.c.id == session_id, sessions.c.deleted_at.is_(None)
            )
        )
    ).first()
    if row is None:
        raise NotFound.of("session", session_id)
    return None if row[0] is None else str(row[0])


async def set_title(
    conn: AsyncConnection,
    session_id: str,
    title: str | None,
    *,
    source: TitleSource,
    context: EventContext | None = None,
    only_if_unset: bool = False,
) -> TitleChange:
    """Set the session's title (None clears it) and append ``session.title.updated``, unless
    the title is already that (no event then). ``only_if_unset``: leave a title that is there
    alone (the automatic title never replaces one)."""
    previous = await current_title(conn, session_id)
    if previous == title or (only_if_unset and previous is not None):
        return TitleChange(previous, changed=False)
    event = NewEvent(
        SESSION_TITLE_UPDATED,
        title_updated(session_id=session_id, title=title, previous_title=previous, source=source),
        context or EventContext(),
    )
    await append_events(
        conn,
        session_id,
        [event],
        session_values={
            "title": title,
            "title_search": title.lower() if title else None,
            "updated_at": now(),
        },
    )
    return TitleChange(previous, changed=True)
