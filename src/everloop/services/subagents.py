"""Subagents: child sessions an agent spawns, tracked by their parent as session tasks.

This module is the ``capabilities.subagents.SubagentPort`` the tools call, what the session
task routes do to a task (``services.session_tasks``: cancel it, send it a follow-up), and the
cascades of a parent's cancel and delete. The engine does the rest: a parent's durable wait and
a child's end settling its task (``engine.subagent_wait``).

- **Spawning** runs in the parent's step transaction: the child session
  (``services.child_sessions``: same org and owner; the parent's harness, agent and model
  unless ``agent`` or ``blueprint_id`` says otherwise; none of the parent's session-level tools
  or capabilities), its first message (the task), its
  queued turn, the task row and the parent's ``task.created`` and ``subagent.spawned`` all
  commit with the record of the call, once. The runner starts the child's turn after the
  commit.
- **Limits** (settings): depth below the root, active subagents and all subagents per
  delegation tree. A refusal is a tool error the model reads, and nothing is written.
- **Usage**: a session's ``usage`` is its own; ``tree_usage`` adds its descendants' (kept in
  the ``descendant_*`` columns, updated with each of their model calls).
- **Deleting** a session deletes its descendants in the same transaction
  (``services.sessions.SessionService.delete``); ``stop_tree`` cancels their open turns and
  settles their tasks (and the session's own task, if it is a subagent), so no turn of the tree
  goes on working and no parent waits for a child that is gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.capabilities.base import Delegation, ToolContext, ToolError
from everloop.capabilities.subagents import SpawnRequest
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.messages import JsonValue, Message, TextPart
from everloop.domain.session_tasks import (
    ACTIVE_STATES,
    SUBAGENT,
    TASK_STATES,
    SessionTask,
    TaskMessage,
    outcome_of_turn,
    text_content,
)
from everloop.domain.timestamps import format_ts, now
from everloop.domain.usage import TokenUsage
from everloop.engine import events as ev
from everloop.engine.assembly import Assembler
from everloop.engine.ending import cancel_turn
from everloop.engine.signals import Signals
from everloop.engine.subagent_wait import failure_text, settle_child
from everloop.errors import Conflict, EverloopError, InvalidInput
from everloop.services.blueprints import BlueprintService
from everloop.services.child_sessions import ChildSessions, subagent_provenance
from everloop.services.files import FileLimits
from everloop.store import session_tasks as task_store
from everloop.store import turns as turn_store
from everloop.store.db import Database
from everloop.store.event_log import TurnGuard, append_events
from everloop.store.sql import Store
from everloop.store.tables import sessions

log = logging.getLogger("everloop.subagents")

TASK_ACTIVE = "task_active"


class TurnQueue(Protocol):
    async def enqueue_turn(self, session_id: str, turn_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class SubagentLimits:
    max_depth: int = 2
    max_active: int = 16
    max_total: int = 200
    wait_timeout_seconds: float = 1800.0


class SubagentService:
    """See the module docstring. ``connect`` gives it what is built after the capabilities
    (the assembler, the blueprints and the turn queue)."""

    def __init__(
        self,
        db: Database,
        store: Store,
        signals: Signals,
        limits: SubagentLimits,
        file_limits: FileLimits | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._signals = signals
        self._limits = limits
        self._file_limits = file_limits or FileLimits()
        self._child_sessions: ChildSessions | None = None
        self._queue: TurnQueue | None = None

    def connect(
        self,
        *,
        assembler: Assembler,
        blueprints: BlueprintService,
        queue: TurnQueue,
    ) -> None:
        self._child_sessions = ChildSessions(self._store, assembler, blueprints, self._file_limits)
        self._queue = queue

    # -- the tools' port: inside the parent's step transaction -------------------------------

    async def spawn(
        self, conn: AsyncConnection, context: ToolContext, request: SpawnRequest
    ) -> Delegation:
        parent = await _session_row(conn, context.session_id)
        if parent is None:
            raise ToolError("this session no longer exists")
        depth = int(parent["subagent_depth"] or 0) + 1
        root = parent["root_session_id"] or parent["id"]
        # Parallel spawns of one tree are counted one after the other.
        await task_store.lock_tree(conn, root)
        await self._check_limits(conn, depth, root)
        clash = await task_store.task_by_name(conn, parent["id"], request.name)
        if clash is not None:
            raise ToolError(
                f"a subagent named '{request.name}' already exists (session "
                f"{clash.child_session_id}, {clash.state}): pick another name, or use "
                "send_to_subagent / wait_subagent with this one"
            )
        child_id, turn_id = await self._children().create(conn, parent, request, depth, root)
        stamp = now()
        task = SessionTask(
            id=ids.new_id("task"),
            session_id=parent["id"],
            organization_id=parent["organization_id"],
            root_session_id=root,
            kind=SUBAGENT,
            display_name=request.name,
            spec=_spec(request),
            state="running",
            wake_policy="on_terminal",
            attempt=1,
            created_at=stamp,
            updated_at=stamp,
            child_session_id=child_id,
            state_detail="working on its task",
            started_at=stamp,
        )
        await task_store.insert_task(conn, task)
        await task_store.insert_message(
            conn,
            TaskMessage(ids.new_id("tmsg"), task.id, "inbound", text_content(request.task), stamp),
        )
        # Guarded: a parent deleted while this ran (PostgreSQL: the delete committed while
        # this waited for the tree's lock) writes nothing, rather than leave a live orphan.
        await append_events(
            conn,
            parent["id"],
            [
                NewEvent(ev.TASK_CREATED, ev.task_snapshot(task=task.to_json())),
                NewEvent(
                    ev.SUBAGENT_SPAWNED,
                    ev.subagent_spawned(
                        child_session_id=child_id,
                        name=request.name,
                        task=request.task,
                        task_id=task.id,
                    ),
                ),
            ],
            guard=TurnGuard(context.turn_id, live=True),
        )
        return self._delegation(task, turn_id, request.wait, None)

    async def send(
        self, conn: AsyncConnection, context: ToolContext, name: str, message: str, wait: bool
    ) -> Delegation:
        task = await self._named(conn, context.session_id, name)
        try:
            turn_id, _ = await self.follow_up(conn, task, message)
        except EverloopError as exc:
            hint = " (wait_subagent waits for it)" if exc.code == TASK_ACTIVE else ""
            raise ToolError(exc.message + hint) from None
        updated = await task_store.task_by_id(conn, task.id)
        assert updated is not None
        return self._delegation(updated, turn_id, wait, None)

    async def wait(
        self, conn: AsyncConnection, context: ToolContext, name: str, timeout: float | None
    ) -> Delegation | JsonValue:
        task = await self._named(conn, context.session_id, name)
        if task.active:
            return self._delegation(task, None, True, timeout)
        if task.state != "succeeded":
            raise ToolError(failure_text(task))  # as a wait that saw it end would answer
        return describe_task(task)

    # -- the tools' port: own transactions ---------------------------------------------------

    async def describe(self, context: ToolContext, name: str) -> JsonValue:
        async with self._db.read() as conn:
            return describe_task(await self._named(conn, context.session_id, name))

    async def list_subagents(self, context: ToolContext) -> JsonValue:
        async with self._db.read() as conn:
            found = await task_store.list_tasks(conn, context.session_id, kind=SUBAGENT)
        return {"subagents": [describe_task(task, brief=True) for task in found]}

    async def cancel(self, context: ToolContext, name: str) -> JsonValue:
        async with self._db.write() as conn:
            task = await self._named(conn, context.session_id, name)
            cancelled = await self.cancel_task(conn, task, "cancelled by its parent agent")
            settled = await task_store.task_by_id(conn, task.id)
        self._wake(cancelled, context.session_id)
        assert settled is not None
        return describe_task(settled)

    async def start_turn(self, session_id: str, turn_id: str) -> None:
        try:
            await self._queue_().enqueue_turn(session_id, turn_id)
        except Exception:
            # Recorded, not lost: the start-up sweep starts it.
            log.exception("could not start subagent turn %s; the start-up sweep will", turn_id)

    # -- cascades ----------------------------------------------------------------------------

    async def cancel_descendants(
        self, conn: AsyncConnection, session_id: str, reason: str
    ) -> list[tuple[str, str]]:
        """Cancel the open turns of the session's active subagents and theirs, settling their
        tasks; the (session id, turn id) cancelled, to wake after the commit."""
        cancelled: list[tuple[str, str]] = []
        for task in await task_store.active_child_tasks(conn, session_id):
            cancelled.extend(await self.cancel_task(conn, task, reason))
        return cancelled

    async def stop_tree(self, conn: AsyncConnection, session_id: str) -> list[tuple[str, str]]:
        """In the transaction that deletes the session and its descendants: cancel the open
        turns of its working subagents and theirs, settling their tasks, and, if it is a
        working subagent itself, its own turns and task (its parent's wait ends with the
        cancellation). From the leaves up, like every cancel here. The (session id, turn id)
        cancelled, for ``wake`` after the commit."""
        cancelled = await self.cancel_descendants(
            conn, session_id, "its parent session was deleted"
        )
        own = await task_store.task_of_child(conn, session_id)
        if own is not None and own.active:
            cancelled.extend(await self.cancel_task(conn, own, "its session was deleted"))
        return cancelled

    def wake(self, cancelled: list[tuple[str, str]], *sessions: str) -> None:
        """After the commit of a cascade: wake the cancelled turns and their sessions, and
        ``sessions`` (whose logs or state the cascade changed: a parent's wait re-checks)."""
        self._wake(cancelled, None)
        for session_id in sessions:
            self._signals.events_appended(session_id)

    # -- what the session task routes do to a task -------------------------------------------

    async def cancel_task(
        self, conn: AsyncConnection, task: SessionTask, reason: str
    ) -> list[tuple[str, str]]:
        """Cancel the task's child (its open turns, its descendants) and settle the task as
        ``canceled`` (``cancel_requested_at`` set), unless it has ended already; the
        (session id, turn id) cancelled, for ``wake`` after the commit."""
        child = task.child_session_id
        if child is None or not task.active:
            return []
        # From the leaves up: the child's own subagents first, then the child, then its task
        # (settling it writes to the parent). Every transaction that locks several sessions of
        # a tree locks them in this order, so on PostgreSQL none waits for another in a cycle.
        cancelled = await self.cancel_descendants(conn, child, reason)
        for turn in await turn_store.open_turns(conn, child):
            if await cancel_turn(conn, child, turn, reason):
                cancelled.append((child, turn.id))
        # A child without an open turn (its turn ended as this ran) is settled here.
        await settle_child(
            conn, child, outcome_of_turn("cancelled", text=None, usage=TokenUsage(), error=reason)
        )
        return cancelled

    async def follow_up(
        self,
        conn: AsyncConnection,
        task: SessionTask,
        text: str,
        *,
        in_reply_to: str | None = None,
    ) -> tuple[str, TaskMessage]:
        """Post ``text`` to the task's child as its next user message: its new turn (queued;
        the caller starts it after the commit) and the inbound task message. A child still
        working is a ``Conflict`` (code ``task_active``): one turn per task at a time."""
        child = task.child_session_id
        if child is None:
            raise InvalidInput("this task has no session to message", field="task_id")
        if task.active:
            raise _still_working(task)
        if not await turn_store.session_live(conn, child):
            raise Conflict(
                f"subagent '{task.display_name}' cannot take messages: its session {child} "
                "was deleted",
                field="task_id",
            )
        stamp = now()
        message = Message(ids.new_id("message"), "user", (TextPart(text),), stamp)
        turn_id = ids.new_id("turn")
        context = EventContext(turn_id=turn_id, input_message_id=message.id, trace_id=turn_id)
        stored = await append_events(
            conn,
            child,
            [
                NewEvent(
                    "input.message",
                    ev.input_message(message=message),
                    context,
                    metadata=await subagent_provenance(conn, child, task.session_id),
                )
            ],
            session_values={"updated_at": stamp},
        )
        await turn_store.insert_turn(
            conn,
            turn_id=turn_id,
            session_id=child,
            input_message_id=message.id,
            input_sequence=stored[0].sequence,
        )
        updated = await task_store.update_task(
            conn,
            task.id,
            {
                "state": "running",
                "state_detail": "working on a follow-up",
                "attempt": task.attempt + 1,
                "summary": None,
                "result": None,
                "error": None,
                "cancel_requested_at": None,
                "finished_at": None,
                "updated_at": stamp,
            },
            only_states=[s for s in TASK_STATES if s not in ACTIVE_STATES],
        )
        if updated is None:
            raise _still_working(task)
        sent = TaskMessage(
            ids.new_id("tmsg"), task.id, "inbound", text_content(text), stamp, in_reply_to
        )
        await task_store.insert_message(conn, sent)
        await append_events(
            conn,
            task.session_id,
            [NewEvent(ev.TASK_UPDATED, ev.task_snapshot(task=updated.to_json()))],
        )
        return turn_id, sent

    # -- helpers -----------------------------------------------------------------------------

    def _wake(self, cancelled: list[tuple[str, str]], session_id: str | None) -> None:
        for child, turn_id in cancelled:
            self._signals.turn_cancelled(turn_id)
            self._signals.events_appended(child)
        if session_id is not None:
            self._signals.events_appended(session_id)

    def _delegation(
        self, task: SessionTask, turn_id: str | None, wait: bool, timeout: float | None
    ) -> Delegation:
        assert task.child_session_id is not None
        if not wait:
            return Delegation(
                task.id,
                task.display_name,
                task.child_session_id,
                start_turn_id=turn_id,
                result={
                    "subagent": task.display_name,
                    "session_id": task.child_session_id,
                    "task_id": task.id,
                    "status": "running",
                },
            )
        seconds = self._limits.wait_timeout_seconds
        if timeout is not None:
            seconds = min(seconds, timeout)
        deadline = format_ts(datetime.now(UTC) + timedelta(seconds=seconds))
        return Delegation(
            task.id, task.display_name, task.child_session_id, turn_id, deadline=deadline
        )

    async def _check_limits(self, conn: AsyncConnection, depth: int, root: str) -> None:
        limits = self._limits
        if limits.max_depth == 0:
            raise ToolError("subagents are disabled here (EVERLOOP_SUBAGENT_MAX_DEPTH=0)")
        if depth > limits.max_depth:
            raise ToolError(
                f"cannot spawn a subagent: this session is already {depth - 1} level(s) below "
                f"its root session and subagents may nest at most {limits.max_depth} deep; do "
                "this work yourself"
            )
        active, total = await task_store.tree_counts(conn, root)
        if active >= limits.max_active:
            raise ToolError(
                f"cannot spawn a subagent: {active} subagents of this session tree are already "
                f"working (the limit is {limits.max_active}); wait for some to finish first"
            )
        if total >= limits.max_total:
            raise ToolError(
                f"cannot spawn a subagent: this session tree has created {total} subagents, "
                f"the limit is {limits.max_total}"
            )

    async def _named(self, conn: AsyncConnection, session_id: str, name: str) -> SessionTask:
        task = await task_store.task_by_name(conn, session_id, name)
        if task is None or task.kind != SUBAGENT:
            known = [t.display_name for t in await task_store.list_tasks(conn, session_id)]
            listed = ", ".join(f"'{n}'" for n in known[:20]) or "none yet"
            raise ToolError(f"no subagent named '{name}' in this session (its subagents: {listed})")
        return task

    def _children(self) -> ChildSessions:
        assert self._child_sessions is not None, "SubagentService.connect was not called"
        return self._child_sessions

    def _queue_(self) -> TurnQueue:
        assert self._queue is not None, "SubagentService.connect was not called"
        return self._queue


def describe_task(task: SessionTask, *, brief: bool = False) -> dict[str, Any]:
    """A subagent as its parent's model sees it."""
    result = task.result or {}
    described: dict[str, Any] = {
        "subagent": task.display_name,
        "session_id": task.child_session_id,
        "task_id": task.id,
        "state": task.state,
        "status": _status_word(task),
    }
    if task.state == "succeeded":
        described["result"] = task.summary if brief else result.get("text")
        described["usage"] = result.get("usage")
    if task.error:
        described["error"] = task.error.get("message")
    return described


def _status_word(task: SessionTask) -> str:
    return {
        "succeeded": "completed",
        "failed": "failed",
        "canceled": "cancelled",
    }.get(task.state, "running")


def _spec(request: SpawnRequest) -> dict[str, Any]:
    spec: dict[str, Any] = {"instructions": request.task}
    if request.agent:
        spec["agent"] = request.agent
    if request.blueprint_id:
        spec["blueprint_id"] = request.blueprint_id
    if request.capabilities is not None:
        spec["capabilities"] = list(request.capabilities)
    return spec


def _still_working(task: SessionTask) -> Conflict:
    return Conflict(
        f"subagent '{task.display_name}' is still working on its task (state "
        f"'{task.state}'): send it another message once it has finished",
        code=TASK_ACTIVE,
        field="task_id",
    )


async def _session_row(conn: AsyncConnection, session_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(sessions).where(sessions.c.id == session_id, sessions.c.deleted_at.is_(None))
        )
    ).first()
    return dict(row._mapping) if row else None
