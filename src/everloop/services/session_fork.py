"""Forking a session into an independent copy, and exporting a session as JSON lines.

**Fork** (``POST /v1/sessions/{id}/fork``). In one transaction, a new session of the same
organization, owned by the caller, with the parent's configuration (harness, agent and the
version it captured, model, capabilities, tools, MCP servers, prompt, blueprint, ...):

- its log is the parent's events ``1..at_sequence`` (default: all), copied with new event ids and
  numbered from 1 (the parent's log is gapless from 1, so each keeps its number). Type, time,
  turn id, context, data, metadata and tags are kept as they are: the copy is the parent's
  history. Event data is not rewritten: no event carries its own session's id in its data (the
  envelope's ``session_id`` is the fork's); the ids it does carry (a subagent's child session,
  a task snapshot's ``session_id``) name the parent's objects, which the fork does not copy.
  The fork's messages are those of the copied events (messages are read from the log).
- a fork holds only whole turns: ``at_sequence`` inside a finished turn is a 422 naming the
  nearest cut before and after it. While a turn is open (queued, running, or waiting for client
  tool results) the fork is a 409 unless ``at_sequence`` comes before that turn's first event.
- its files (new file ids), key-values, SQL databases and secrets are deep-copied. Secrets are
  copied sealed, never opened (``services.session_storage``). Schedules, leases, session tasks,
  subagents, pins, budgets and running work are not copied.
- usage starts at zero: the copied model calls were the parent's (its usage, its budgets);
  counting them again would double agent statistics and budget subjects. Agent cost statistics
  skip the copied ``llm.generation`` events for the same reason (``store.agent_stats``).
- it is ``idle`` when it holds a turn (else ``started``), with ``forked_from_session_id`` and
  ``forked_from_sequence`` set; posting a message to it runs a turn there, with the copied
  conversation as its history, and changes nothing in the parent.

**Export** (``GET /v1/sessions/{id}/export``): the session, then its messages, then its events,
as of the moment the export starts (later events are left out), read from the database a page
at a time by sequence, so a long session exports in constant memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.messages import message_from_json
from everloop.domain.resources import Session, SessionStatus
from everloop.domain.timestamps import now
from everloop.engine import events as ev
from everloop.errors import Conflict, InvalidInput
from everloop.services.auth import Caller
from everloop.services.sessions import SessionService, uuid_text
from everloop.services.turns import history_message
from everloop.store import session_forks as forks
from everloop.store.db import Database
from everloop.store.event_log import last_sequence
from everloop.store.sql import Store
from everloop.store.turns import lock_session
from everloop.store.workspaces import copy_files, create_automatic

TITLE_CHARS = 500

# Columns a fork sets itself rather than copying from its parent.
_FORK_OWN = {
    "id",
    "owner_principal_id",
    "resolved_owner_user_id",
    "title",
    "title_search",
    "tags",
    "status",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "preview",
    "output_preview",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "descendant_input_tokens",
    "descendant_output_tokens",
    "descendant_cache_read_tokens",
    "descendant_cache_creation_tokens",
    "parent_session_id",
    "subagent_name",
    "subagent_task",
    "subagent_status",
    "root_session_id",
    "subagent_depth",
    "last_sequence",
    "deleted_at",
    "forked_from_session_id",
    "forked_from_sequence",
}


@dataclass(slots=True)
class _Copied:
    """What copying the log found out about the copied conversation."""

    events: int = 0
    turns: int = 0
    preview: str | None = None
    output_preview: str | None = None
    last_ts: str | None = None

    def saw(self, page: list[forks.RawEvent]) -> None:
        for event in page:
            if event.type == ev.INPUT_MESSAGE:
                self.turns += 1
                if self.preview is None:
                    text = message_from_json(event.data["message"]).text
                    self.preview = ev.preview(text) if text else None
            elif event.type == ev.OUTPUT_MESSAGE_COMPLETED:
                text = message_from_json(event.data["message"]).text
                if text:
                    self.output_preview = ev.preview(text)
        self.events += len(page)
        self.last_ts = page[-1].ts


class SessionForkService:
    def __init__(self, db: Database, store: Store, sessions: SessionService) -> None:
        self._db = db
        self._store = store
        self._sessions = sessions

    async def fork(
        self,
        caller: Caller,
        session_id: str,
        *,
        at_sequence: int | None = None,
        title: str | None = None,
        tags: list[str] | None = None,
    ) -> Session:
        """Fork the session after its event ``at_sequence`` (None: all of it); see the module
        docstring. ``title`` defaults to the parent's with " (fork)", ``tags`` to the parent's."""
        async with self._db.write() as conn:
            parent = await self._sessions.get(caller, session_id, conn)
            # Nothing is appended to the parent while its log is copied (PostgreSQL; SQLite's
            # write transaction serializes writers anyway).
            await lock_session(conn, session_id)
            at = await self._cut(conn, session_id, at_sequence)
            fork_id = ids.new_id("session")
            ts = now()
            row = {
                k: v
                for k, v in (await forks.session_row(conn, session_id)).items()
                if k not in _FORK_OWN
            }
            if title is None and parent.title:
                title = f"{parent.title} (fork)"[:TITLE_CHARS]
            row.update(
                id=fork_id,
                owner_principal_id=caller.principal_id,
                resolved_owner_user_id=uuid_text(caller.user_id),
                title=title,
                title_search=title.lower() if title else None,
                tags=list(parent.tags) if tags is None else tags,
                status=SessionStatus.STARTED.value,
                created_at=ts,
                updated_at=ts,
                started_at=None,
                finished_at=None,
                preview=None,
                output_preview=None,
                input_tokens=0,
                output_tokens=0,
                cache_read_tokens=0,
                cache_creation_tokens=0,
                parent_session_id=None,
                subagent_name=None,
                subagent_task=None,
                subagent_status=None,
                root_session_id=None,
                subagent_depth=0,
                last_sequence=0,
                deleted_at=None,
                forked_from_session_id=session_id,
                forked_from_sequence=at,
            )
            # The fork gets its own automatic workspace with a copy of the parent's files,
            # also when the parent uses a shared workspace (isolation: the fork's writes
            # never reach the parent's area).
            parent_workspace = row.get("workspace_id")
            row["workspace_id"] = await create_automatic(
                conn, row["organization_id"], fork_id, caller.principal_id, ts
            )
            await self._store.insert_session(conn, row)
            copied = await self._copy_log(conn, session_id, fork_id, at)
            if parent_workspace:
                await copy_files(conn, parent_workspace, row["workspace_id"])
            await forks.copy_storage(conn, session_id, fork_id)
            values: dict[str, Any] = {"last_sequence": copied.events}
            if copied.turns:
                values.update(
                    status=SessionStatus.IDLE.value,
                    started_at=parent.started_at,
                    finished_at=copied.last_ts,
                    preview=copied.preview,
                    output_preview=copied.output_preview,
                )
            await self._store.update_session(conn, caller.organization_id, fork_id, values)
            return await self._sessions.get(caller, fork_id, conn)

    async def _cut(self, conn: AsyncConnection, session_id: str, at_sequence: int | None) -> int:
        """The sequence the fork is taken at: ``at_sequence`` (or the log's end), checked to
        end on a whole turn before any open one."""
        last = await last_sequence(conn, session_id)
        at = last if at_sequence is None else at_sequence
        if at < 1 or at > last:
            raise InvalidInput(
                f"at_sequence {at} is not in the session's log (sequences 1 to {last})",
                field="at_sequence",
            )
        open_from = await forks.first_open_turn_sequence(conn, session_id)
        if open_from is not None and at >= open_from:
            raise Conflict(
                f"session '{session_id}' has a turn in progress (from sequence {open_from}); "
                f"fork it once the turn has ended, or at an at_sequence before {open_from}",
                code="session_busy",
                field="at_sequence" if at_sequence is not None else None,
            )
        span = await forks.turn_span_at(conn, session_id, at)
        if span is not None:
            first, end = span
            before = first - 1
            if open_from is not None and end >= open_from:
                nearest = f"the nearest valid at_sequence is {before}"
            elif at - before <= end - at:
                nearest = f"the nearest valid at_sequence is {before} (or {end} after it)"
            else:
                nearest = f"the nearest valid at_sequence is {end} (or {before} before it)"
            raise InvalidInput(
                f"at_sequence {at} falls inside a turn (events {first} to {end}); a fork holds "
                f"only whole turns: {nearest}",
                field="at_sequence",
            )
        return at

    async def _copy_log(
        self, conn: AsyncConnection, source: str, target: str, through: int
    ) -> _Copied:
        copied = _Copied()
        cursor = 0
        while True:
            page = await forks.event_page(conn, source, after=cursor, through=through)
            if not page:
                return copied
            await forks.insert_copies(conn, target, copied.events + 1, page)
            copied.saw(page)
            cursor = page[-1].sequence

    # -- export --------------------------------------------------------------------------------

    async def export(
        self, caller: Caller, session_id: str
    ) -> tuple[Session, AsyncIterator[tuple[str, dict[str, Any]]]]:
        """The session (read now: a 404 is raised here, before anything is streamed) and its
        records as of now: ``("message", wire)`` for each message, then ``("event", wire)`` for
        each event, in order. Each page is read on a connection of its own, held only for that
        read: none is held while the caller writes the records out."""
        async with self._db.read() as conn:
            session = await self._sessions.get(caller, session_id, conn)
            through = await last_sequence(conn, session_id)
        return session, self._records(session_id, through)

    async def _records(
        self, session_id: str, through: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        cursor = 0
        while True:
            async with self._db.read() as conn:
                history = await forks.history_page(conn, session_id, after=cursor, through=through)
            for item in history:
                yield "message", history_message(item)
            if len(history) < forks.PAGE:
                break
            cursor = history[-1].sequence
        cursor = 0
        while True:
            async with self._db.read() as conn:
                page = await forks.event_page(conn, session_id, after=cursor, through=through)
            for event in page:
                yield "event", _event_wire(session_id, event)
            if len(page) < forks.PAGE:
                break
            cursor = page[-1].sequence


def _event_wire(session_id: str, event: forks.RawEvent) -> dict[str, Any]:
    """An event as ``GET /v1/sessions/{id}/events`` gives it."""
    return {
        "id": event.id,
        "type": event.type,
        "ts": event.ts,
        "session_id": session_id,
        "sequence": event.sequence,
        "context": event.context,
        "data": event.data,
        "metadata": event.metadata,
        "tags": event.tags,
    }
