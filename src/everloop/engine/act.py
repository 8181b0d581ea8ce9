"""The act phase: run one server-side tool call and record its ``tool.completed``.

Three kinds of tool, by where their work runs relative to the step transaction (the one that
records ``tool.completed``):

- A *transactional* tool only touches our database: it runs inside the recording transaction,
  under a savepoint, so its writes and its record commit together, exactly once.
- A *prepared* tool (``capabilities.base.Prepared``) computes outside any transaction (slow or
  untrusted work, e.g. an agent's SQL in a killable worker process: nothing is locked while it
  runs) and hands back a ``commit`` that runs inside the recording transaction, so its write
  is exactly-once too. A commit that finds its input changed (``StaleWrite``) rolls the step
  back and the call is prepared again, a few times at most.
- Any other tool runs before the transaction; an ``at_most_once`` tool first commits a start
  marker, so a crash between the call and its record is reported to the model as "outcome
  unknown" instead of repeating a call that is not safe to repeat.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import (
    Commit,
    StaleWrite,
    Tool,
    ToolContext,
    execute_tool_call,
    is_at_most_once,
    is_transactional,
    prepare_tool_call,
)
from everloop.domain.event_log import NewEvent
from everloop.domain.messages import ToolCallPart, ToolResultPart
from everloop.domain.network_access import NetworkAccess
from everloop.domain.timestamps import now
from everloop.engine import events as ev
from everloop.engine.context import TurnContext
from everloop.engine.env import TurnEnv
from everloop.engine.steps import (
    Halted,
    StepRecorder,
    StepResult,
    ToolDone,
    TurnHalted,
    decode,
    event_context,
    require_running,
    running,
)
from everloop.errors import EverloopError
from everloop.store import turns as turn_store
from everloop.store.event_log import append_events

log = logging.getLogger("everloop.engine")

INTERRUPTED = (
    "the call was interrupted (everloop restarted while it ran) and this tool is not "
    "idempotent, so it was not repeated: its outcome is unknown. Check its effect before "
    "calling it again."
)
# Times a prepared call is run again when its commit finds its input changed meanwhile.
PREPARE_ATTEMPTS = 3
STALE = (
    "what this call changes was changed by another call each time it ran, so nothing was "
    "written; run it again"
)

# A call done before the step transaction: its result and the write to commit with it.
Outcome = tuple[ToolResultPart, Commit | None]


class ActPhase:
    def __init__(self, env: TurnEnv, steps: StepRecorder) -> None:
        self._env = env
        self._steps = steps

    async def run(self, context: TurnContext, call: ToolCallPart) -> ToolDone | Halted:
        """Run ``call`` (unless a run of this step recorded it before) and record it."""
        key = f"tool:{call.id}"
        try:
            try:
                tool = await self._env.tool(context, call.name)
                # The session's effective network access, for tools that make outbound requests.
                access = context.runtime.network_access if context.runtime else NetworkAccess(())
            except EverloopError:
                tool, access = None, NetworkAccess(allowed=())
            started = time.monotonic()
            if is_transactional(tool):
                return await self._record(context, call, key, started, tool, access, None)
            recorded = await self._recorded(context, key)
            if recorded is not None:
                return _tool_done(recorded)
            tool_context = ToolContext(
                context.session_id, context.org_id, context.turn_id, call.id, network_access=access
            )
            interrupted = await self._interrupted(tool, call, context.turn_id)
            if interrupted is not None:
                return await self._record(context, call, key, started, tool, access, interrupted)
            for _ in range(PREPARE_ATTEMPTS):
                outcome = await self._run_tool(tool, call, tool_context, context.turn_id)
                try:
                    return await self._record(context, call, key, started, tool, access, outcome)
                except StaleWrite:
                    log.info("tool %s: its input changed before its commit; again", call.name)
            stale = ToolResultPart(call.id, call.name, None, STALE), None
            return await self._record(context, call, key, started, tool, access, stale)
        except TurnHalted as halted:
            return Halted(str(halted))

    async def _recorded(self, context: TurnContext, key: str) -> StepResult | None:
        """The result a run of this step recorded before, if any; ``TurnHalted`` if the turn
        is no longer running (no tool call for a turn cancelled meanwhile)."""
        async with self._env.db.read() as conn:
            status = await turn_store.turn_status(conn, context.turn_id)
            # A re-run: the call may have been recorded already.
            done, recorded = (
                (False, None)
                if context.fresh
                else await turn_store.recorded_effect(conn, context.turn_id, key)
            )
        if done:
            return decode(recorded, await self._env.history(context))
        if status != "running":
            raise TurnHalted(status or "missing")
        return None

    async def _record(
        self,
        context: TurnContext,
        call: ToolCallPart,
        key: str,
        started: float,
        tool: Tool | None,
        access: NetworkAccess,
        outcome: Outcome | None,
    ) -> ToolDone | Halted:
        """Record the call's ``tool.completed`` in the step transaction, with the ``outcome``
        computed before it (and its commit), or running the transactional ``tool`` inside it.
        ``StaleWrite`` from the commit propagates: the transaction rolled back."""
        session_id, turn_id = context.session_id, context.turn_id

        async def write(conn: AsyncConnection) -> StepResult:
            if outcome is None:
                await require_running(conn, turn_id)
                # A database-only tool: its writes share this transaction.
                savepoint = await conn.begin_nested()
                tool_context = ToolContext(
                    session_id, context.org_id, turn_id, call.id, conn, network_access=access
                )
                result, _ = await self._run_tool(tool, call, tool_context, turn_id)
                if result.error is None:
                    await savepoint.commit()
                else:
                    await savepoint.rollback()
            else:
                result, commit = outcome
                if commit is not None:
                    await commit(conn)
            data = ev.tool_completed(tool_call=call, result=result, duration_ms=_ms_since(started))
            ctx = event_context(turn_id, context.input_message_id)
            # The tool ran before this transaction: the running check rides on the append.
            completed = NewEvent("tool.completed", data, ctx)
            await append_events(conn, session_id, [completed], guard=running(turn_id))
            return ToolDone(result)

        recorded, _ = await self._steps.run(context, key, write)
        return _tool_done(recorded)

    async def _interrupted(
        self, tool: Tool | None, call: ToolCallPart, turn_id: str
    ) -> Outcome | None:
        """For an ``at_most_once`` tool: record (committed) that this call starts and return
        None; or, if an earlier run of this step already started it (a crash came between
        the call and its recorded result), the error result saying the outcome is unknown."""
        if not is_at_most_once(tool):
            return None
        key = f"tool-start:{call.id}"
        try:
            async with self._env.db.write() as conn:
                done, _ = await turn_store.recorded_effect(conn, turn_id, key)
                if not done:
                    await turn_store.record_effect(conn, turn_id, key, {"started_at": now()})
                    return None
        except IntegrityError:
            pass  # another run of this step recorded the start first
        return ToolResultPart(call.id, call.name, None, INTERRUPTED), None

    async def _run_tool(
        self, tool: Tool | None, call: ToolCallPart, context: ToolContext, turn_id: str
    ) -> Outcome:
        """The call's result (and for a prepared tool outside a transaction, its commit)."""
        try:
            async with self._env.cancellable(turn_id):
                if context.connection is not None:
                    return await execute_tool_call(tool, call, context), None
                return await prepare_tool_call(tool, call, context)
        except (TurnHalted, asyncio.CancelledError):
            raise
        except Exception as exc:  # a tool bug is a tool error for the model, not a crash
            log.exception("tool %s raised", call.name)
            failed = f"the tool failed unexpectedly: {type(exc).__name__}"
            return ToolResultPart(call.id, call.name, None, failed), None


def _tool_done(result: StepResult) -> ToolDone | Halted:
    assert isinstance(result, ToolDone | Halted), result
    return result


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
