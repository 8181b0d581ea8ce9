"""Client-side tools: the calls a turn hands to the API caller, and the wait for their results.

The reason phase that asked for client-side calls records them as pending (with a deadline per
tool) in its own transaction and writes ``tool.call_requested``. The turn then waits until each
call has an outcome: a result posted through ``POST .../tool-results``, a timeout, or a
cancellation by a new user message. The wait is a re-check of the ``client_tool_calls`` rows
whenever the session gets new events (posting results appends ``tool.completed``), or at the
earliest deadline; nothing is held open while waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.event_log import NewEvent
from everloop.domain.messages import JsonValue, ToolCallPart, ToolResultPart
from everloop.domain.timestamps import format_ts, now
from everloop.engine import events as ev
from everloop.engine.context import TurnContext
from everloop.engine.env import TurnEnv
from everloop.engine.steps import (
    ClientAnswered,
    ClientPending,
    Halted,
    TurnHalted,
    event_context,
    require_running,
)
from everloop.store import client_tools as client_store
from everloop.store import turns as turn_store
from everloop.store.event_log import append_events

ToolStatus = Literal["success", "error", "timeout", "cancelled"]

TIMEOUT_ERRORS = {
    client_store.CLIENT: "the client did not answer in time",
    client_store.QUESTION: "the user did not answer in time",
    client_store.APPROVAL: "denied: nobody approved this call in time, so it did not run",
}


async def request_client_calls(
    conn: AsyncConnection,
    env: TurnEnv,
    context: TurnContext,
    iteration: int,
    calls: list[ToolCallPart],
) -> None:
    """Record the client-side calls as pending (in the reason phase's transaction)."""
    runtime = context.runtime
    timeouts = {t.name: t.timeout_seconds for t in runtime.tools} if runtime else {}
    pending = []
    for call in calls:
        seconds = timeouts.get(call.name) or env.settings.client_tool_timeout_seconds
        pending.append((call.id, call.name, call.arguments, _ts_after(seconds)))
    await client_store.insert_pending(
        conn,
        turn_id=context.turn_id,
        session_id=context.session_id,
        iteration=iteration,
        calls=pending,
    )
    await turn_store.update_session(
        conn, context.session_id, {"status": "waitingfortoolresults", "updated_at": now()}
    )


async def collect(
    env: TurnEnv, context: TurnContext, iteration: int
) -> ClientAnswered | ClientPending | Halted:
    """The outcomes of the act phase's client-side calls, expiring overdue ones; or how long
    until the earliest deadline."""
    session_id, turn_id = context.session_id, context.turn_id
    appended = False
    try:
        async with env.db.write() as conn:
            await require_running(conn, turn_id)
            calls = await client_store.calls_of(conn, turn_id, iteration)
            moment = now()
            overdue = [c for c in calls if c.status == "pending" and c.deadline <= moment]
            if overdue:
                ctx = event_context(turn_id, context.input_message_id)
                new = []
                for c in overdue:
                    error = TIMEOUT_ERRORS.get(c.kind, TIMEOUT_ERRORS["client"])
                    if not await client_store.settle(
                        conn, turn_id, c.call_id, status="expired", error=error
                    ):
                        continue
                    if c.kind == client_store.APPROVAL:
                        decided = ev.approval_decided(
                            tool_call=_call_part(c),
                            approved=False,
                            reason="no decision in time",
                            decided_by="timeout",
                        )
                        new.append(NewEvent(ev.TOOL_APPROVAL_DECIDED, decided, ctx))
                    new.append(
                        NewEvent("tool.completed", client_completed(c, None, error, "timeout"), ctx)
                    )
                await append_events(conn, session_id, new)
                appended = bool(new)
                calls = await client_store.calls_of(conn, turn_id, iteration)
            waiting = [c for c in calls if c.status == "pending"]
            if waiting:
                earliest = min(c.deadline for c in waiting)
                return ClientPending(max(_seconds_until(earliest), 0.05))
            await turn_store.update_session(
                conn, session_id, {"status": "active", "updated_at": now()}
            )
            approved = tuple(
                c.call_id
                for c in calls
                if c.kind == client_store.APPROVAL and c.status == "approved"
            )
            return ClientAnswered(
                tuple(
                    ToolResultPart(c.call_id, c.name, c.result, c.error)
                    for c in calls
                    if c.call_id not in approved
                ),
                approved,
            )
    except TurnHalted as halted:
        return Halted(str(halted))
    finally:
        if appended:
            env.signals.events_appended(session_id)


def client_completed(
    call: client_store.ClientCall, result: JsonValue, error: str | None, status: ToolStatus
) -> dict[str, Any]:
    """``tool.completed`` data for a client-side call's outcome."""
    part = ToolResultPart(call.call_id, call.name, result, error)
    denied = call.kind == client_store.APPROVAL and status in ("error", "timeout")
    return ev.tool_completed(
        tool_call=_call_part(call),
        result=part,
        duration_ms=None,
        status=status,
        error_kind="denied" if denied else None,
    )


def _call_part(call: client_store.ClientCall) -> ToolCallPart:
    return ToolCallPart(call.call_id, call.name, call.arguments)


def _ts_after(seconds: float) -> str:
    return format_ts(datetime.now(UTC) + timedelta(seconds=seconds))


def _seconds_until(ts: str) -> float:
    moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return (moment - datetime.now(UTC)).total_seconds()
