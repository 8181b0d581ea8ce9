"""Messages, turns and the event log of a session: posting input, cancelling, reading, streaming.

Posting a message records ``input.message`` and a queued turn in one transaction, then enqueues
the turn. If the enqueue fails (engine down), the turn stays recorded and the start-up sweep
enqueues it: a posted message is never lost. Messages posted while a turn runs become the next
turns, in order (one turn per session at a time).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol

from everloop import ids
from everloop.domain.event_log import Event, EventContext, NewEvent
from everloop.domain.messages import (
    JsonValue,
    Message,
    ToolCallPart,
    message_from_json,
    message_to_json,
)
from everloop.domain.timestamps import now
from everloop.engine import events as ev
from everloop.engine.ending import cancel_turn
from everloop.engine.runner import ToolStatus, client_completed
from everloop.engine.signals import Signals
from everloop.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from everloop.services.auth import Caller
from everloop.services.event_feed import Delivery, EventFanout, Stopping
from everloop.services.event_listing import EventListing, cursor_of, list_events
from everloop.services.sessions import SessionService
from everloop.services.subagents import SubagentService
from everloop.store import client_tools as client_store
from everloop.store import turns as turn_store
from everloop.store.client_tools import ClientCall
from everloop.store.db import Database
from everloop.store.event_log import append_events
from everloop.telemetry import tracing

log = logging.getLogger("everloop.turns")

MAX_TEXT_CHARS = 1_000_000
MAX_TOOL_RESULT_BYTES = 1024 * 1024


class TurnQueue(Protocol):
    async def enqueue_turn(self, session_id: str, turn_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PostedMessage:
    message: Message
    turn_id: str
    sequence: int


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """One thing an event stream yields: events (in order, each with its wire JSON), or the end
    of the stream."""

    kind: str  # "events" | "disconnecting"
    events: tuple[Delivery, ...] = ()
    retry_ms: int = 0
    reason: str = ""


class _NothingToCancel(Exception):
    """The session has no open turn to cancel (the transaction rolls back)."""


class TurnService:
    def __init__(
        self,
        db: Database,
        sessions: SessionService,
        queue: TurnQueue,
        signals: Signals,
        fanout: EventFanout | None = None,
        subagents: SubagentService | None = None,
    ) -> None:
        self._subagents = subagents
        self._db = db
        self._sessions = sessions
        self._queue = queue
        self._signals = signals
        self._fanout = fanout or EventFanout(db)

    async def post_message(
        self,
        caller: Caller,
        session_id: str,
        content: list[dict[str, Any]],
        *,
        controls: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
    ) -> PostedMessage:
        message = _user_message(content, controls, metadata)
        turn_id = ids.new_id("turn")
        ids.parse("session", session_id, field="session_id")
        async with self._db.write() as conn:
            # Only existence in the caller's organization, the preview and the status matter
            # here; the session's configuration is read by the turn itself.
            found = await turn_store.session_preview(conn, caller.organization_id, session_id)
            if found is None:
                raise NotFound.of("session", session_id)
            preview, status = found
            context = EventContext(turn_id=turn_id, input_message_id=message.id, trace_id=turn_id)
            data = ev.input_message(message=message)
            wire = data["message"]
            assert isinstance(wire, dict)
            wire["controls"] = controls
            wire["metadata"] = metadata
            waiting = (
                await client_store.pending_for_session(conn, session_id)
                if status == "waitingfortoolresults"
                else []
            )
            values: dict[str, Any] = {"updated_at": now()}
            if waiting:
                values["status"] = "active"
            if preview is None and message.text:
                values["preview"] = ev.preview(message.text)
            stored = await append_events(
                conn,
                session_id,
                [NewEvent("input.message", data, context, tags=tags)],
                session_values=values,
            )
            await turn_store.insert_turn(
                conn,
                turn_id=turn_id,
                session_id=session_id,
                input_message_id=message.id,
                input_sequence=stored[0].sequence,
            )
            if waiting:
                # The user moved on: the calls the running turn waits for are answered as
                # cancelled, it finishes, and this message is the next turn.
                await self._settle_all(
                    conn, session_id, waiting, "cancelled: the user sent a new message"
                )
        tracing.link_to_turn(turn_id)  # the request's span names the trace of its turn
        # Turns waiting for the settled calls wake on the session's new events (in this
        # process by signal, in others by the database notification of the append).
        self._signals.events_appended(session_id)
        try:
            await self._queue.enqueue_turn(session_id, turn_id)
        except Exception:
            # Recorded, not lost: the start-up sweep enqueues it again.
            log.exception(
                "could not enqueue turn %s; it will be enqueued at the next start", turn_id
            )
        return PostedMessage(message, turn_id, stored[0].sequence)

    async def submit_tool_results(
        self, caller: Caller, session_id: str, results: list[dict[str, Any]]
    ) -> tuple[int, str]:
        """Record results of client-side tool calls; returns (accepted, session status after).

        All or nothing: any bad entry refuses the whole submission and changes nothing.
        """
        seen: set[str] = set()
        for index, item in enumerate(results):
            call_id = item["tool_call_id"]
            if call_id in seen:
                raise InvalidInput(
                    f"tool_call_id '{call_id}' appears twice",
                    field=f"tool_results[{index}].tool_call_id",
                )
            seen.add(call_id)
            size = len(json.dumps(item.get("result"), separators=(",", ":")))
            if size > MAX_TOOL_RESULT_BYTES:
                raise PayloadTooLarge(
                    f"the result for '{call_id}' is {size} bytes; the limit is "
                    f"{MAX_TOOL_RESULT_BYTES} bytes",
                    field=f"tool_results[{index}].result",
                )
        async with self._db.write() as conn:
            session = await self._sessions.get(caller, session_id, conn)
            # Client-side calls and ask_user questions (answered raw); approvals are decided
            # through POST .../tool-approvals.
            waiting = {
                c.call_id: c
                for c in await client_store.pending_for_session(
                    conn, session_id, (client_store.CLIENT, client_store.QUESTION)
                )
            }
            if not waiting:
                raise Conflict(
                    f"session '{session_id}' is not waiting for tool results "
                    f"(status: {session.status.value})",
                    code="not_waiting_for_tool_results",
                )
            for index, item in enumerate(results):
                if item["tool_call_id"] not in waiting:
                    raise InvalidInput(
                        f"tool_call_id '{item['tool_call_id']}' is not a call this session is "
                        "waiting for (unknown, or already answered)",
                        field=f"tool_results[{index}].tool_call_id",
                    )
            turn_id = next(iter(waiting.values())).turn_id
            context = await self._turn_context(conn, turn_id)
            new = []
            for item in results:
                call = waiting.pop(item["tool_call_id"])
                error = item.get("error")
                status: ToolStatus = "error" if error else "success"
                await client_store.settle(
                    conn,
                    call.turn_id,
                    call.call_id,
                    status="answered",
                    result=item.get("result"),
                    error=error,
                )
                new.append(
                    NewEvent(
                        "tool.completed",
                        client_completed(call, item.get("result"), error, status),
                        context,
                    )
                )
            await append_events(conn, session_id, new)
            status_after = session.status.value
            if not await client_store.pending_for_session(conn, session_id):
                status_after = "active"
                await turn_store.update_session(
                    conn, session_id, {"status": status_after, "updated_at": now()}
                )
        self._signals.events_appended(session_id)  # wakes the turn waiting for these results
        return len(results), status_after

    async def _settle_all(
        self, conn: Any, session_id: str, calls: list[ClientCall], error: str
    ) -> None:
        by_turn: dict[str, list[ClientCall]] = {}
        for call in calls:
            by_turn.setdefault(call.turn_id, []).append(call)
        for turn_id, group in by_turn.items():
            context = await self._turn_context(conn, turn_id)
            new = []
            for call in group:
                if not await client_store.settle(
                    conn, turn_id, call.call_id, status="cancelled", error=error
                ):
                    continue
                if call.kind == client_store.APPROVAL:
                    part = ToolCallPart(call.call_id, call.name, call.arguments)
                    decided = ev.approval_decided(
                        tool_call=part, approved=False, reason=error, decided_by="user_message"
                    )
                    new.append(NewEvent(ev.TOOL_APPROVAL_DECIDED, decided, context))
                done = client_completed(call, None, error, "cancelled")
                new.append(NewEvent("tool.completed", done, context))
            await append_events(conn, session_id, new)

    async def _turn_context(self, conn: Any, turn_id: str) -> EventContext:
        turn = await turn_store.get_turn(conn, turn_id)
        assert turn is not None
        return EventContext(
            turn_id=turn_id, input_message_id=turn.input_message_id, trace_id=turn_id
        )

    async def enqueue_recorded(self) -> int:
        """Start every queued or running turn again (idempotent by turn id): the start-up sweep."""
        async with self._db.read() as conn:
            pending = await turn_store.all_open_turns(conn)
        for turn in pending:
            await self._queue.enqueue_turn(turn.session_id, turn.id)
        return len(pending)

    async def cancel(self, caller: Caller, session_id: str) -> str | None:
        """Cancel the session's running turn (or the next queued one) and the turns of its
        working subagents (theirs too); None when idle."""
        try:
            turn, cascaded = await self._cancel(caller, session_id)
        except _NothingToCancel:
            return None
        self._signals.turn_cancelled(turn.id)
        # The session's new events wake a cancelled turn that was waiting for its predecessor
        # (it exits) and, if it ran, the session's next turn (it may start now).
        self._signals.events_appended(session_id)
        if self._subagents is not None:
            self._subagents.wake(cascaded)
        return turn.id

    async def _cancel(
        self, caller: Caller, session_id: str
    ) -> tuple[turn_store.TurnRow, list[tuple[str, str]]]:
        async with self._db.write() as conn:
            await self._sessions.get(caller, session_id, conn)
            open_turns = await turn_store.open_turns(conn, session_id)
            if not open_turns:
                raise _NothingToCancel
            turn = open_turns[0]
            # Its working subagents first (the leaves of its tree before it: the lock order
            # of services/subagents.py).
            cascaded = (
                await self._subagents.cancel_descendants(
                    conn, session_id, "its parent's turn was cancelled"
                )
                if self._subagents is not None
                else []
            )
            if not await cancel_turn(conn, session_id, turn, "cancelled by the user"):
                raise _NothingToCancel  # it ended meanwhile: nothing of this is kept
        return turn, cascaded

    async def list_messages(
        self, caller: Caller, session_id: str, *, offset: int = 0, limit: int | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """The conversation rebuilt from the event log, oldest first, from the ``offset``-th
        message, at most ``limit`` (None: all); and how many messages there are in all. Each
        message names the turn it belongs to."""
        await self._sessions.get(caller, session_id)
        async with self._db.read() as conn:
            found, total = await turn_store.history_page(
                conn, session_id, offset=offset, limit=limit
            )
        return [history_message(event) for event in found], total

    async def list_events(
        self, caller: Caller, session_id: str, listing: EventListing
    ) -> list[Event]:
        """The caller's session's events that ``listing`` selects (``services/event_listing``)."""
        await self._sessions.get(caller, session_id)
        async with self._db.read() as conn:
            return await list_events(conn, session_id, listing)

    async def stream(
        self,
        caller: Caller,
        session_id: str,
        *,
        since_id: str | None,
        after_sequence: int | None,
        types: Sequence[str],
        exclude: Sequence[str],
        cycle_seconds: float,
        stopping: Stopping,
    ) -> AsyncIterator[StreamFrame]:
        """Durable events after the cursor, then live ones as they are appended.

        Without a cursor the stream replays the whole log first. It goes by sequence, so a
        client that resumes from its last event id sees every event exactly once, in order.
        The live tail is read once per session and shared by its streams (``EventFanout``);
        no database connection is held while the stream waits or writes to its client.
        """
        await self._sessions.get(caller, session_id)
        async with self._db.read() as conn:
            cursor = await cursor_of(conn, session_id, since_id, after_sequence)
        return self._frames(session_id, cursor or 0, types, exclude, cycle_seconds, stopping)

    async def _frames(
        self,
        session_id: str,
        cursor: int,
        types: Sequence[str],
        exclude: Sequence[str],
        cycle_seconds: float,
        stopping: Stopping,
    ) -> AsyncIterator[StreamFrame]:
        until = time.monotonic() + cycle_seconds
        deliveries = self._fanout.follow(session_id, cursor, until=until, stopping=stopping)
        async with aclosing(deliveries):
            async for batch in deliveries:
                if types or exclude:
                    batch = [
                        d
                        for d in batch
                        if (not types or d.event.type in types) and d.event.type not in exclude
                    ]
                if batch:
                    yield StreamFrame("events", tuple(batch))
        if stopping.is_set():
            yield StreamFrame("disconnecting", retry_ms=1000, reason="server_shutdown")
        else:
            yield StreamFrame("disconnecting", retry_ms=100, reason="connection_cycle")


def _user_message(
    content: list[dict[str, Any]], controls: dict[str, Any] | None, metadata: dict[str, Any] | None
) -> Message:
    if not content:
        raise InvalidInput("a message needs at least one content part", field="message.content")
    parts: list[JsonValue] = []
    for index, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str) or not text.strip():
                raise InvalidInput(
                    "a text part needs non-empty text", field=f"message.content[{index}].text"
                )
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidInput(
                    f"a text part is limited to {MAX_TEXT_CHARS} characters",
                    field=f"message.content[{index}].text",
                )
            parts.append({"type": "text", "text": text})
        elif kind == "image":
            url = part.get("url")
            if not isinstance(url, str) or not url.startswith(("data:", "https://", "http://")):
                raise InvalidInput(
                    "an image part needs a data: or http(s) url",
                    field=f"message.content[{index}].url",
                )
            parts.append({"type": "image", "url": url, "media_type": part.get("media_type")})
        else:
            raise InvalidInput(
                "a user message may contain only text and image parts",
                field=f"message.content[{index}].type",
            )
    return message_from_json(
        {"id": ids.new_id("message"), "role": "user", "content": parts, "created_at": now()}
    )


def history_message(event: turn_store.HistoryEvent) -> dict[str, Any]:
    """One conversation event as a message of the API (``MessageResponse``'s fields), naming the
    turn it belongs to."""
    if event.type == "tool.completed":
        wire = _tool_result_message(event)
    else:
        wire = dict(event.data["message"])
        wire["created_at"] = wire.get("created_at") or event.ts
        wire["sequence"] = event.sequence
        if event.type == "output.message.completed":
            wire["metadata"] = event.data.get("metadata")
    wire["turn_id"] = event.turn_id
    return wire


def _tool_result_message(event: turn_store.HistoryEvent) -> dict[str, Any]:
    data = event.data
    part = {
        "type": "tool_result",
        "tool_call_id": data["tool_call_id"],
        "result": data.get("result"),
        "error": data.get("error"),
    }
    return {
        "id": "message_" + event.id.removeprefix("event_"),
        "role": "tool_result",
        "content": [part],
        "created_at": event.ts,
        "sequence": event.sequence,
        "metadata": {"tool_name": data.get("tool_name")},
    }


__all__ = [
    "Delivery",
    "PostedMessage",
    "Stopping",
    "StreamFrame",
    "TurnService",
    "history_message",
    "message_to_json",
]
