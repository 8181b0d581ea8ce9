"""Client-side tool calls a turn waits for, and the results the API caller posts for them.

A call moves ``pending -> answered | expired | cancelled`` by a guarded update, so each call
gets exactly one outcome (and one ``tool.completed`` event), whoever gets there first: the
caller posting a result, the turn's timeout, or a new user message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.timestamps import now
from everloop.store.tables import client_tool_calls

PENDING = "pending"


@dataclass(frozen=True, slots=True)
class ClientCall:
    call_id: str
    turn_id: str
    session_id: str
    iteration: int
    name: str
    arguments: dict[str, Any]
    status: str
    result: Any
    error: str | None
    deadline: str


def _call(row: Any) -> ClientCall:
    return ClientCall(
        row.call_id,
        row.turn_id,
        row.session_id,
        int(row.iteration),
        row.name,
        row.arguments,
        row.status,
        row.result,
        row.error,
        row.deadline,
    )


async def insert_pending(
    conn: AsyncConnection,
    *,
    turn_id: str,
    session_id: str,
    iteration: int,
    calls: Sequence[tuple[str, str, dict[str, Any], str]],
) -> None:
    """Record ``(call_id, name, arguments, deadline)`` calls as pending."""
    ts = now()
    await conn.execute(
        client_tool_calls.insert(),
        [
            {
                "call_id": call_id,
                "turn_id": turn_id,
                "session_id": session_id,
                "iteration": iteration,
                "name": name,
                "arguments": arguments,
                "status": PENDING,
                "result": None,
                "error": None,
                "deadline": deadline,
                "created_at": ts,
                "answered_at": None,
            }
            for call_id, name, arguments, deadline in calls
        ],
    )


async def pending_for_session(conn: AsyncConnection, session_id: str) -> list[ClientCall]:
    rows = await conn.execute(
        select(client_tool_calls).where(
            client_tool_calls.c.session_id == session_id, client_tool_calls.c.status == PENDING
        )
    )
    return [_call(r) for r in rows]


async def calls_of(conn: AsyncConnection, turn_id: str, iteration: int) -> list[ClientCall]:
    rows = await conn.execute(
        select(client_tool_calls).where(
            client_tool_calls.c.turn_id == turn_id, client_tool_calls.c.iteration == iteration
        )
    )
    return [_call(r) for r in rows]


async def settle(
    conn: AsyncConnection,
    turn_id: str,
    call_id: str,
    *,
    status: str,
    result: Any = None,
    error: str | None = None,
) -> bool:
    """Give a pending call its outcome; False if it already had one."""
    outcome = await conn.execute(
        update(client_tool_calls)
        .where(
            client_tool_calls.c.turn_id == turn_id,
            client_tool_calls.c.call_id == call_id,
            client_tool_calls.c.status == PENDING,
        )
        .values(status=status, result=result, error=error, answered_at=now())
    )
    return bool(outcome.rowcount)
