"""Subagents in the turn engine: a parent turn waiting for a child, and a child's turn ending.

A delegating tool call (``capabilities.base.Delegation``) records what it began in one step;
the parent turn then waits for the child's session task to end. Nothing is held open while it
waits: it re-checks the task row whenever the parent's log moves (the child's ending writes to
it: an in-process signal, ``LISTEN/NOTIFY`` on PostgreSQL), at least every few seconds, and at
the deadline. A parent turn recovered after a crash runs from the top, replays the recorded
step, and waits again; the child's turn is recovered on its own.

The child's side is ``settle_child``: the transaction that ends a child's turn (completed,
failed, cancelled) also settles its task, sets its ``subagent_status``, and writes
``task.updated`` and ``subagent.<outcome>`` to the parent's log. It happens once, with the
turn's end; the parent's ``tool.completed`` is the parent's own step record: the result
reaches the parent exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.event_log import NewEvent
from everloop.domain.messages import ToolCallPart, ToolResultPart
from everloop.domain.session_tasks import (
    ACTIVE_STATES,
    ChildOutcome,
    SessionTask,
    TaskMessage,
    text_content,
)
from everloop.domain.timestamps import now
from everloop.engine import events as ev
from everloop.engine.context import TurnContext
from everloop.engine.env import TurnEnv
from everloop.engine.steps import Delegated, Halted
from everloop.store import session_tasks as task_store
from everloop.store import turns as turn_store
from everloop.store.event_log import append_events

RECHECK_SECONDS = 5.0

_ENDED = {
    "succeeded": ev.SUBAGENT_COMPLETED,
    "failed": ev.SUBAGENT_FAILED,
    "canceled": ev.SUBAGENT_CANCELLED,
}


async def settle_child(
    conn: AsyncConnection, child_session_id: str, outcome: ChildOutcome
) -> str | None:
    """Settle the task of the child session ``child_session_id`` (in the transaction that ends
    its turn); the parent session to wake, or None (not a child, or already settled)."""
    task = await task_store.task_of_child(conn, child_session_id)
    if task is None:
        return None
    stamp = now()
    error = (
        {"kind": outcome.error_kind or "failed", "message": outcome.error or "failed"}
        if outcome.state != "succeeded"
        else None
    )
    values = {
        "state": outcome.state,
        "state_detail": None,
        "summary": ev.preview(outcome.text) if outcome.text else None,
        "result": {"text": outcome.text, "usage": outcome.usage.to_json()},
        "error": error,
        "updated_at": stamp,
        "finished_at": stamp,
    }
    if outcome.state == "canceled":
        values["cancel_requested_at"] = stamp  # a cancel always comes from outside the child
    # Whatever the task says, the child's status is how its last turn ended (a turn posted to
    # the child directly, outside its task, ends here too).
    await turn_store.update_session(
        conn, child_session_id, {"subagent_status": outcome.subagent_status}
    )
    settled = await task_store.update_task(conn, task.id, values, only_states=ACTIVE_STATES)
    if settled is None:
        return None
    if outcome.text:
        await task_store.insert_message(
            conn,
            TaskMessage(ids.new_id("tmsg"), task.id, "outbound", text_content(outcome.text), stamp),
        )
    await append_events(conn, task.session_id, ended_events(settled, outcome))
    return task.session_id


def ended_events(task: SessionTask, outcome: ChildOutcome) -> list[NewEvent]:
    """The parent's ``task.updated`` and ``subagent.<outcome>`` for a settled child."""
    assert task.child_session_id is not None
    return [
        NewEvent(ev.TASK_UPDATED, ev.task_snapshot(task=task.to_json())),
        NewEvent(
            _ENDED[task.state],
            ev.subagent_ended(
                child_session_id=task.child_session_id,
                name=task.display_name,
                task_id=task.id,
                status=outcome.subagent_status,
                result=outcome.text,
                usage=outcome.usage,
                error=outcome.error if outcome.state != "succeeded" else None,
            ),
        ),
    ]


def task_result(task: SessionTask, call: ToolCallPart) -> ToolResultPart:
    """What the parent's model gets for a child that ended: its result (with its usage), or an
    error naming what happened."""
    result = task.result or {}
    if task.state == "succeeded":
        return ToolResultPart(
            call.id,
            call.name,
            {
                "subagent": task.display_name,
                "session_id": task.child_session_id,
                "status": "completed",
                "result": result.get("text"),
                "usage": result.get("usage"),
            },
        )
    return ToolResultPart(call.id, call.name, None, failure_text(task))


def failure_text(task: SessionTask) -> str:
    """The tool error for a child that failed or was cancelled."""
    detail = (task.error or {}).get("message") or task.state
    ended = "was cancelled" if task.state == "canceled" else "failed"
    return f"subagent '{task.display_name}' (session {task.child_session_id}) {ended}: {detail}"


async def wait_for_task(
    env: TurnEnv, context: TurnContext, begun: Delegated, call: ToolCallPart
) -> ToolResultPart | Halted:
    """Wait until the task ``begun`` started ends (its result), its deadline passes (a timeout
    error; the child keeps running) or the parent's turn stops (``Halted``)."""
    assert begun.deadline is not None
    deadline = _moment(begun.deadline)
    # The child's ending writes to this (the parent's) log in its own transaction: this
    # process's commit listener signals it, other processes' notifications do.
    with env.signals.listening(context.session_id) as woken:
        while True:
            woken.clear()  # before the check: an end committed during it wakes the wait
            async with env.db.read() as conn:
                status, live = await turn_store.turn_state(conn, context.turn_id)
                task = await task_store.task_by_id(conn, begun.task_id)
            if status != "running":
                return Halted(status or "missing")
            if not live:
                return Halted("session deleted")
            if task is None:
                return ToolResultPart(
                    call.id, call.name, None, f"subagent '{begun.name}' no longer exists"
                )
            if not task.active:
                return task_result(task, call)
            left = (deadline - datetime.now(UTC)).total_seconds()
            if left <= 0:
                return ToolResultPart(
                    call.id,
                    call.name,
                    None,
                    f"timed out waiting for subagent '{begun.name}' (session "
                    f"{begun.child_session_id}); it keeps running: collect its result later "
                    "with wait_subagent or get_subagent",
                )
            await woken.wait(min(left, RECHECK_SECONDS))


def _moment(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))
