"""The calls a turn waits for outside itself, and their outcomes.

A row's ``kind`` says who settles it: ``client`` (a client-side tool: the API caller posts its
result), ``question`` (``ask_user``: a person answers) or ``approval`` (a server-side call that
needs a person's approval before it runs). A call moves from ``pending`` to its outcome
(``answered | expired | cancelled``; an approval ``approved | denied | expired | cancelled``) by
a guarded update, so each call gets exactly one outcome, whoever gets there first: the caller,
the turn's timeout, or a new user message.
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
CLIENT = "client"
QUESTION = "question"
APPROVAL = "approval"


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
    kind: str = CLIENT
    created_at: str = ""


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
        row.kind,
        row.created_at,
    )


async def insert_pending(
    conn: AsyncConnection,
    *,
    turn_id: str,
    session_id: str,
    iteration: int,
    calls: Sequence[tuple[str, str, dict[str, Any], str]],
    kind: str = CLIENT,
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
                "kind": kind,
                "result": None,
                "error": None,
                "deadline": deadline,
                "created_at": ts,
                "answered_at": None,
            }
            for call_id, name, arguments, deadline in calls
        ],
    )


async def pending_for_session(
    conn: AsyncConnection, session_id: str, kinds: Sequence[str] | None = None
) -> list[ClientCall]:
    """The session's pending calls (of ``kinds``; None: every kind), oldest first."""
    query = select(client_tool_calls).where(
        client_tool_calls.c.session_id == session_id, client_tool_calls.c.status == PENDING
    )
    if kinds is not None:
        query = query.where(client_tool_calls.c.kind.in_(list(kinds)))
    rows = await conn.execute(query.order_by(client_tool_calls.c.created_at))
    return [_call(r) for r in rows]


async def calls_in_session(
    conn: AsyncConnection, session_id: str, call_ids: Sequence[str], kind: str
) -> dict[str, ClientCall]:
    """The session's calls of ``kind`` with these ids, whatever their status, by id."""
    rows = await conn.execute(
        select(client_tool_calls).where(
            client_tool_calls.c.session_id == session_id,
            client_tool_calls.c.kind == kind,
            client_tool_calls.c.call_id.in_(list(call_ids)),
        )
    )
    return {r.call_id: _call(r) for r in rows}


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
