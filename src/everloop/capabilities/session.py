"""Capability ``session``: the agent reads its own session (id, title, status, usage) and
names it.

``get_session_info`` reads the session's row through the step's connection; it shows no
configuration and no secrets, only what a session list shows. ``write_session_title`` writes
the title and its ``session.title.updated`` event (``source: "tool"``) in the step
transaction, so the title, the event and the call's record commit together, exactly once.

With this capability active, a session that has no title when its first turn completes gets
one derived from the first user message (``engine.ending.first_turn_title``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError, object_schema
from everloop.domain.event_log import EventContext
from everloop.domain.messages import JsonObject, JsonValue
from everloop.domain.session_titles import MAX_TITLE_CHARS, title_problem
from everloop.errors import EverloopError
from everloop.store.session_titles import set_title
from everloop.store.tables import sessions

SESSION_CAPABILITY_ID: Final = "session"

_INFO = select(
    sessions.c.id,
    sessions.c.title,
    sessions.c.status,
    sessions.c.agent_id,
    sessions.c.model_id,
    sessions.c.created_at,
    sessions.c.tags,
    sessions.c.input_tokens,
    sessions.c.output_tokens,
    sessions.c.cache_read_tokens,
    sessions.c.cache_creation_tokens,
)


def _connection(context: ToolContext) -> AsyncConnection:
    if context.connection is None:
        raise ToolError("session tools are only available inside a turn")
    return context.connection


async def session_info(conn: AsyncConnection, session_id: str) -> JsonObject:
    """What ``get_session_info`` answers: the session as a session list shows it, with its
    token usage as the row counts it (every model call recorded so far, this turn's too)."""
    row = (await conn.execute(_INFO.where(sessions.c.id == session_id))).first()
    if row is None:
        raise ToolError(f"session {session_id} not found")
    values: dict[str, Any] = dict(row._mapping)
    usage = {
        name: int(values[name] or 0)
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
    }
    return {
        "session_id": values["id"],
        "title": values["title"],
        "status": values["status"],
        "agent_id": values["agent_id"],
        "model_id": values["model_id"],
        "created_at": str(values["created_at"]),
        "tags": list(values["tags"] or []),
        "usage": {**usage, "total_tokens": sum(usage.values())},
    }


@dataclass(frozen=True, slots=True)
class GetSessionInfo:
    name: str = "get_session_info"
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL  # a read: repeating it is free
    description: str = (
        "Get this session's id, title, status, agent id, model id (null: the agent's default), "
        "creation time, tags and token usage so far."
    )
    parameters: JsonObject = field(default_factory=lambda: object_schema({}, []))

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        return await session_info(_connection(context), context.session_id)


@dataclass(frozen=True, slots=True)
class WriteSessionTitle:
    name: str = "write_session_title"
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL
    description: str = (
        "Set this session's title: a short human label for the conversation, shown in session "
        f"lists (at most {MAX_TITLE_CHARS} characters)."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {"title": {"type": "string", "description": "The new title."}}, ["title"]
        )
    )

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        conn = _connection(context)
        title = " ".join(str(arguments["title"]).split())
        problem = title_problem(title)
        if problem is not None:
            raise ToolError(problem)
        try:
            change = await set_title(
                conn,
                context.session_id,
                title,
                source="tool",
                context=EventContext(turn_id=context.turn_id),
            )
        except EverloopError as exc:
            raise ToolError(exc.message) from None
        return {"title": title, "previous_title": change.previous_title, "changed": change.changed}


def build_session_capability() -> Capability:
    return Capability(
        id=SESSION_CAPABILITY_ID,
        name="Session",
        description=(
            "Lets the agent read its session (get_session_info, with token usage) and set its "
            "title (write_session_title); a session without a title gets one from its first "
            "message when the first turn completes."
        ),
        category="session",
        tools=(GetSessionInfo(), WriteSessionTitle()),
    )
