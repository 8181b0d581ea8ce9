"""How a turn ends: its terminal events, the session back to idle, all in the caller's
transaction. Every terminal transition is a guarded update of ``turns.status``, so a turn gets
exactly one terminal event."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.session import SESSION_CAPABILITY_ID
from everloop.domain.budgets import BudgetBlock
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.messages import Message, part_from_json
from everloop.domain.runtime_agent import RuntimeAgent
from everloop.domain.session_tasks import outcome_of_turn
from everloop.domain.session_titles import auto_title, title_updated
from everloop.domain.timestamps import ms_between, now
from everloop.domain.usage import TokenUsage
from everloop.engine import events as ev
from everloop.engine import loop
from everloop.engine.steps import Halted, TurnHalted, event_context
from everloop.engine.subagent_wait import settle_child
from everloop.store import client_tools as client_store
from everloop.store import turns as turn_store
from everloop.store.event_log import append_events
from everloop.store.session_titles import current_title


async def end_turn(
    conn: AsyncConnection,
    session_id: str,
    turn_id: str,
    state: loop.TurnState,
    context: EventContext,
    final: Message | None,
    failure: loop.FailTurn | None,
    ttft_ms: int | None,
    *,
    prior: list[NewEvent] | None = None,
    total: TokenUsage | None = None,
    child: bool = False,
    auto_title: str | None = None,
) -> None:
    """Write the turn's terminal events (after ``prior``, the step's own events, in one
    append) and return the session to idle. ``total``: the session's usage totals, when the
    caller has them. ``child``: the session is a subagent, whose parent's task this end
    settles (``engine.subagent_wait.settle_child``). ``auto_title``: the title to give the
    session if it has none (the ``session`` capability's automatic title), with its
    ``session.title.updated`` event in the same append."""
    if not await turn_store.move_turn(
        conn,
        turn_id,
        to="completed" if failure is None else "failed",
        allowed_from=("running",),
    ):
        raise TurnHalted("cancelled")
    stamp = now()
    new: list[NewEvent] = list(prior or ())
    if failure is not None:
        new.append(
            NewEvent(
                "output.message.completed",
                ev.output_message_completed(
                    message=failure.agent_message,
                    model=state.settings.model,
                    usage=None,
                    error_code=failure.error_code,
                ),
                context,
            )
        )
        new.append(
            NewEvent(
                "turn.failed",
                ev.turn_failed(
                    turn_id=turn_id, error=failure.message, error_code=failure.error_code
                ),
                context,
            )
        )
        last_text = failure.agent_message.text
    else:
        assert final is not None
        started = await turn_store.turn_started_at(conn, session_id, turn_id)
        new.append(
            NewEvent(
                "turn.completed",
                ev.turn_completed(
                    turn_id=turn_id,
                    iterations=state.iteration,
                    usage=state.usage,
                    final_message_id=final.id,
                    final_answer=final.text,
                    duration_ms=None if started is None else ms_between(started, stamp),
                    time_to_first_token_ms=ttft_ms,
                    tool_call_count=state.tool_call_count,
                    llm_call_count=state.llm_call_count,
                ),
                context,
            )
        )
        last_text = final.text
    if total is None:
        total = await turn_store.session_usage(conn, session_id)
    new.append(
        NewEvent(
            "session.idled",
            ev.session_idled(turn_id=turn_id, iterations=state.iteration, usage=total),
            context,
        )
    )
    values: dict[str, Any] = {"status": "idle", "updated_at": stamp, "finished_at": stamp}
    if last_text:
        values["output_preview"] = ev.preview(last_text)
    if auto_title is not None and await current_title(conn, session_id) is None:
        # Before ``session.idled``: a client that waits for the idle sees the title.
        data = title_updated(
            session_id=session_id, title=auto_title, previous_title=None, source="auto"
        )
        new.insert(len(new) - 1, NewEvent(ev.SESSION_TITLE_UPDATED, data, context))
        values.update(title=auto_title, title_search=auto_title.lower())
    await append_events(conn, session_id, new, session_values=values)
    if child:
        await settle_child(
            conn,
            session_id,
            outcome_of_turn(
                "completed" if failure is None else "failed",
                text=last_text,
                usage=state.usage,
                error_code=failure.error_code if failure else None,
                error=failure.message if failure else None,
            ),
        )


def first_turn_title(runtime: RuntimeAgent | None, state: loop.TurnState) -> str | None:
    """The automatic title a completing turn gives its session: derived from the user's
    message of the session's first turn (no history before it) when the ``session``
    capability is active; None otherwise (``end_turn`` also leaves a title that is there)."""
    if runtime is None or state.history_length != 0 or not state.messages:
        return None
    if not any(c.ref == SESSION_CAPABILITY_ID for c in runtime.capabilities):
        return None
    return auto_title(state.messages[0].text)


async def seal_turn(
    conn: AsyncConnection,
    session_id: str,
    state: loop.TurnState,
    context: EventContext,
    block: BudgetBlock,
    *,
    child: bool = False,
) -> Halted:
    """A budget stops the turn before its next model call: ``turn.sealed {reason: "budget"}``
    (not retried), and the session is ``paused`` until its budgets are resumed or topped up;
    turns queued meanwhile wait (``store.turns.claim_turn``)."""
    turn_id = state.turn_id
    if not await turn_store.move_turn(conn, turn_id, to="failed", allowed_from=("running",)):
        raise TurnHalted("cancelled")
    detail = f"{block.message} (budget {block.budget_id}, {block.status})"
    stamp = now()
    await append_events(
        conn,
        session_id,
        [
            NewEvent(
                ev.TURN_SEALED,
                ev.turn_sealed(
                    turn_id=turn_id,
                    reason="budget",
                    detail=detail,
                    iterations=state.iteration,
                    usage=state.usage,
                ),
                context,
            )
        ],
        session_values={"status": "paused", "updated_at": stamp, "finished_at": stamp},
    )
    if child:
        await settle_child(
            conn,
            session_id,
            outcome_of_turn(
                "failed", text=None, usage=state.usage, error_code="budget", error=detail
            ),
        )
    return Halted("sealed")


async def fail_setup(conn: AsyncConnection, session_id: str, turn_id: str, reason: str) -> Halted:
    """The turn cannot start or go on (its configuration is broken): fail it with a readable
    message."""
    turn = await turn_store.get_turn(conn, turn_id)
    if turn is None or not await turn_store.move_turn(
        conn, turn_id, to="failed", allowed_from=turn_store.OPEN
    ):
        return Halted("failed")
    context = event_context(turn_id, turn.input_message_id)
    text = f"Sorry, I could not start working on this: {reason}."
    message = Message(
        loop.derived_message_id(turn_id, "setup-failure"),
        "agent",
        (part_from_json({"type": "text", "text": text}),),
        now(),
    )
    total = await turn_store.session_usage(conn, session_id)
    await append_events(
        conn,
        session_id,
        [
            NewEvent(
                "output.message.completed",
                ev.output_message_completed(
                    message=message, model="", usage=None, error_code="turn_setup_failed"
                ),
                context,
            ),
            NewEvent(
                "turn.failed",
                ev.turn_failed(turn_id=turn_id, error=reason, error_code="turn_setup_failed"),
                context,
            ),
            NewEvent(
                "session.idled",
                ev.session_idled(turn_id=turn_id, iterations=0, usage=total),
                context,
            ),
        ],
        session_values={"status": "idle", "updated_at": now(), "output_preview": ev.preview(text)},
    )
    await settle_child(
        conn,
        session_id,
        outcome_of_turn(
            "failed", text=text, usage=TokenUsage(), error_code="turn_setup_failed", error=reason
        ),
    )
    return Halted("failed")


async def cancel_turn(
    conn: AsyncConnection, session_id: str, turn: turn_store.TurnRow, reason: str
) -> bool:
    """Cancel an open turn (from outside it: the API, or a parent cancelling its subagents):
    its client-side calls are settled, ``turn.cancelled`` and ``session.idled`` written, the
    session back to idle and, for a subagent, its parent's task settled. Whether this call
    cancelled it (False: it had ended meanwhile)."""
    # The session's row before the turn's: the order of the turn's own steps (its usage, then
    # its end), so a cancel racing a turn's last step cannot deadlock with it on PostgreSQL.
    await turn_store.lock_session(conn, session_id)
    if not await turn_store.move_turn(conn, turn.id, to="cancelled", allowed_from=turn_store.OPEN):
        return False
    for call in await client_store.pending_for_session(conn, session_id):
        await client_store.settle(
            conn, call.turn_id, call.call_id, status="cancelled", error="turn cancelled"
        )
    context = event_context(turn.id, turn.input_message_id)
    total = await turn_store.session_usage(conn, session_id)
    await append_events(
        conn,
        session_id,
        [
            NewEvent(
                "turn.cancelled",
                ev.turn_cancelled(turn_id=turn.id, reason=reason, usage=None),
                context,
            ),
            NewEvent(
                "session.idled",
                ev.session_idled(turn_id=turn.id, iterations=None, usage=total),
                context,
            ),
        ],
        session_values={"status": "idle", "updated_at": now()},
    )
    await settle_child(
        conn,
        session_id,
        outcome_of_turn("cancelled", text=None, usage=TokenUsage(), error=reason),
    )
    return True
