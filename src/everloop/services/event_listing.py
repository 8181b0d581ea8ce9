"""Listing a session's events (``GET /v1/sessions/{id}/events``): the request's filters checked
and turned into one store query, or a window around an anchor event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from everloop import ids
from everloop.domain.event_log import Event
from everloop.errors import InvalidInput, NotFound
from everloop.store.event_log import EventQuery, read_events, read_window, sequence_of

DEFAULT_WINDOW = 50
# ``around`` replaces these: the window is its own position and size.
_NOT_WITH_AROUND = ("since_id", "after_sequence", "before_sequence", "limit")


@dataclass(frozen=True, slots=True)
class EventListing:
    """The filters of an event listing, as the API takes them (``None``/empty: not set)."""

    since_id: str | None = None
    after_sequence: int | None = None
    before_sequence: int | None = None
    limit: int | None = None
    types: Sequence[str] = ()
    exclude: Sequence[str] = ()
    turn_id: str | None = None
    newest_first: bool = False
    around: str | None = None
    window: int | None = None
    from_ts: str | None = None
    to_ts: str | None = None
    trace_id: str | None = None
    exec_id: str | None = None
    tags: Sequence[str] = ()
    tool_name: str | None = None
    q: str | None = None


async def list_events(conn: Any, session_id: str, listing: EventListing) -> list[Event]:
    """The session's events that ``listing`` selects (the session is the caller's)."""
    query = EventQuery(
        types=listing.types,
        exclude=listing.exclude,
        turn_id=listing.turn_id,
        search=listing.q,
        tool_name=listing.tool_name,
        trace_id=listing.trace_id,
        exec_id=listing.exec_id,
        tags=listing.tags,
        from_ts=_moment(listing.from_ts, "from_ts", up=True),
        to_ts=_moment(listing.to_ts, "to_ts", up=False),
    )
    if listing.around is not None:
        return await _window(conn, session_id, listing, query)
    if listing.window is not None:
        raise InvalidInput("window is the size of an around window: set around", field="window")
    cursor = await cursor_of(conn, session_id, listing.since_id, listing.after_sequence)
    # ``limit`` without a cursor means "the last N", still oldest first.
    tail = listing.limit is not None and cursor is None and not listing.newest_first
    found = await read_events(
        conn,
        session_id,
        replace(
            query,
            after_sequence=cursor,
            before_sequence=listing.before_sequence,
            limit=listing.limit or 1000,
            newest_first=listing.newest_first or tail,
        ),
    )
    return list(reversed(found)) if tail else found


async def cursor_of(
    conn: Any, session_id: str, since_id: str | None, after_sequence: int | None
) -> int | None:
    """The sequence to read after: ``since_id``'s (404 if the session has no such event), or
    ``after_sequence``."""
    if since_id is None:
        return after_sequence
    ids.parse("event", since_id, field="since_id")
    sequence = await sequence_of(conn, session_id, since_id)
    if sequence is None:
        raise NotFound.of("event", since_id)
    return sequence


async def _window(
    conn: Any, session_id: str, listing: EventListing, query: EventQuery
) -> list[Event]:
    assert listing.around is not None
    for name in _NOT_WITH_AROUND:
        if getattr(listing, name) is not None:
            raise InvalidInput(f"{name} cannot be combined with around", field=name)
    ids.parse("event", listing.around, field="around")
    anchor = await sequence_of(conn, session_id, listing.around)
    if anchor is None:
        raise NotFound.of("event", listing.around)
    window = DEFAULT_WINDOW if listing.window is None else listing.window
    found = await read_window(conn, session_id, query, anchor, window)
    return list(reversed(found)) if listing.newest_first else found


def _moment(value: str | None, field: str, *, up: bool) -> str | None:
    """An RFC 3339 bound in the stored format (UTC, milliseconds, ``domain.timestamps``): a
    lower bound rounded up, an upper one down, so the inclusive comparison of the stored
    strings keeps exactly the events inside."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None or "T" not in value.upper():
            raise ValueError("no offset")
        if up and moment.microsecond % 1000:
            moment += timedelta(microseconds=1000 - moment.microsecond % 1000)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"{field} must be an RFC 3339 timestamp with an offset, like 2026-05-07T00:00:00Z",
            field=field,
        ) from None
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )
