"""Session tasks through the API: a session's tasks, the organization's, one task with its
messages, cancelling one, and a follow-up message to a finished subagent.

A task is seen through its owning session: another organization's session, or a task of
another session, is a 404 like an unknown id. What is done to a task is the subagents'
(``services.subagents``): a cancel is the cascade a parent agent's ``cancel_subagent`` runs
(the child's turns and its own subagents'), a follow-up the new child turn
``send_to_subagent`` starts. A failed request writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.session_tasks import TASK_STATES, SessionTask, TaskMessage
from everloop.domain.timestamps import format_ts
from everloop.errors import InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.services.subagents import SubagentService
from everloop.store import session_tasks as task_store
from everloop.store.db import Database

MAX_TASK_MESSAGES = 500
MAX_ORG_TASKS = 500
MAX_MESSAGE_CHARS = 100_000  # as the task of spawn_subagent


class SessionReader(Protocol):
    """Checks that a caller may see a session (``services.sessions.SessionService.get``)."""

    async def get(
        self, caller: Caller, session_id: str, conn: AsyncConnection | None = ...
    ) -> Any: ...


class SessionTaskService:
    """See the module docstring."""

    def __init__(self, db: Database, sessions: SessionReader, subagents: SubagentService) -> None:
        self._db = db
        self._sessions = sessions
        self._subagents = subagents

    async def list_tasks(
        self, caller: Caller, session_id: str, *, state: str | None, kind: str | None
    ) -> list[SessionTask]:
        """The session's tasks, oldest first."""
        _check_state(state)
        async with self._db.read() as conn:
            await self._sessions.get(caller, session_id, conn)
            return await task_store.list_tasks(conn, session_id, state=state, kind=kind)

    async def list_org_tasks(
        self,
        caller: Caller,
        *,
        state: str | None,
        kind: str | None,
        created_after: str | None,
        root_session_id: str | None,
        limit: int,
    ) -> list[SessionTask]:
        """The organization's tasks (of sessions not deleted), newest first."""
        _check_state(state)
        if created_after is not None:
            created_after = _timestamp(created_after, "created_after")
        if root_session_id is not None:
            ids.parse("session", root_session_id, field="root_session_id")
        if not 0 <= limit <= MAX_ORG_TASKS:
            raise InvalidInput(f"limit must be between 0 and {MAX_ORG_TASKS}", field="limit")
        async with self._db.read() as conn:
            return await task_store.list_org_tasks(
                conn,
                caller.organization_id,
                state=state,
                kind=kind,
                created_after=created_after,
                root_session_id=root_session_id,
                limit=limit,
            )

    async def get_task(
        self,
        caller: Caller,
        session_id: str,
        task_id: str,
        *,
        after_id: str | None,
        limit: int,
    ) -> tuple[SessionTask, list[TaskMessage]]:
        """The task and a page of its messages, oldest first (after ``after_id``)."""
        if not 0 <= limit <= MAX_TASK_MESSAGES:
            raise InvalidInput(f"limit must be between 0 and {MAX_TASK_MESSAGES}", field="limit")
        if after_id is not None:
            ids.parse("tmsg", after_id, field="after_id")
        async with self._db.read() as conn:
            task = await self._task(conn, caller, session_id, task_id)
            return task, await task_store.messages(conn, task.id, after_id=after_id, limit=limit)

    async def cancel_task(self, caller: Caller, session_id: str, task_id: str) -> SessionTask:
        """Cancel the task (its child's turns and its descendants'); a task that has ended is
        returned unchanged."""
        async with self._db.write() as conn:
            task = await self._task(conn, caller, session_id, task_id)
            cancelled = await self._subagents.cancel_task(conn, task, "cancelled through the API")
            settled = await task_store.task_by_id(conn, task.id)
        self._subagents.wake(cancelled, session_id)
        assert settled is not None
        return settled

    async def post_task_message(
        self,
        caller: Caller,
        session_id: str,
        task_id: str,
        *,
        text: str | None,
        content: list[dict[str, Any]] | None,
        in_reply_to: str | None,
    ) -> TaskMessage:
        """A follow-up to a subagent that has finished: its next user message and a new turn
        of its session; the task is ``running`` again (``attempt`` + 1). A subagent still
        working is a 409 (``task_active``)."""
        body = _message_text(text, content)
        async with self._db.write() as conn:
            task = await self._task(conn, caller, session_id, task_id)
            turn_id, sent = await self._subagents.follow_up(
                conn, task, body, in_reply_to=in_reply_to
            )
        assert task.child_session_id is not None
        self._subagents.wake([], session_id, task.child_session_id)
        await self._subagents.start_turn(task.child_session_id, turn_id)
        return sent

    async def _task(
        self, conn: AsyncConnection, caller: Caller, session_id: str, task_id: str
    ) -> SessionTask:
        await self._sessions.get(caller, session_id, conn)
        ids.parse("task", task_id, field="task_id")
        task = await task_store.get_task(conn, session_id, task_id)
        if task is None:
            raise NotFound.of("task", task_id)
        return task


def _check_state(state: str | None) -> None:
    if state is not None and state not in TASK_STATES:
        raise InvalidInput(f"state must be one of {', '.join(TASK_STATES)}", field="state")


def _timestamp(value: str, field: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field} must be an RFC 3339 timestamp", field=field) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{field} needs a time zone offset", field=field)
    return format_ts(moment.astimezone(UTC))


def _message_text(text: str | None, content: list[dict[str, Any]] | None) -> str:
    """The text of a posted message: ``text``, or its ``content`` text parts joined by
    newlines."""
    if text is not None and content is not None:
        raise InvalidInput("give `text` or `content`, not both", field="content")
    field = "text"
    if content is not None:
        field = "content"
        parts = []
        for index, part in enumerate(content):
            if part.get("type") != "text":
                raise InvalidInput(
                    "only text parts can be sent to a subagent", field=f"content[{index}].type"
                )
            if not isinstance(part.get("text"), str):
                raise InvalidInput("a text part needs text", field=f"content[{index}].text")
            parts.append(part["text"])
        text = "\n".join(parts)
    if not text or not text.strip():
        raise InvalidInput("a task message needs non-empty text", field=field)
    if len(text) > MAX_MESSAGE_CHARS:
        raise InvalidInput(
            f"a task message is limited to {MAX_MESSAGE_CHARS} characters", field=field
        )
    return text
