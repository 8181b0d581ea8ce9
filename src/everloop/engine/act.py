"""The act phase: run one server-side tool call and record its ``tool.completed``.

A tool that only touches our database (``transactional``) runs inside the recording
transaction, under a savepoint: its writes and its record commit together, exactly once. Any
other tool runs before the transaction; an ``at_most_once`` tool first commits a start marker,
so a crash between the call and its record is reported to the model as "outcome unknown"
instead of repeating a call that is not safe to repeat.

A tool that calls out resolves the ``{{secret:NAME}}`` placeholders of what it sends through
``ToolContext.resolve_secrets``; the values of the session's secrets are redacted from every
tool result before it is recorded (``domain.secret_refs``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import (
    SecretResolver,
    Tool,
    ToolContext,
    ToolError,
    execute_tool_call,
    is_at_most_once,
    is_transactional,
)
from everloop.domain.event_log import NewEvent
from everloop.domain.messages import JsonValue, ToolCallPart, ToolResultPart
from everloop.domain.network_access import NetworkAccess
from everloop.domain.secret_refs import Redactor, referenced_names, substitute
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


class ActPhase:
    def __init__(self, env: TurnEnv, steps: StepRecorder) -> None:
        self._env = env
        self._steps = steps

    async def run(self, context: TurnContext, call: ToolCallPart) -> ToolDone | Halted:
        """Run ``call`` (unless a run of this step recorded it before) and record it."""
        session_id, turn_id = context.session_id, context.turn_id
        key = f"tool:{call.id}"
        try:
            try:
                tool = await self._env.tool(context, call.name)
                # The session's effective network access, for tools that make outbound requests.
                access = context.runtime.network_access if context.runtime else NetworkAccess(())
            except EverloopError:
                tool, access = None, NetworkAccess(allowed=())
            started = time.monotonic()
            result: ToolResultPart | None = None
            if not is_transactional(tool):
                async with self._env.db.read() as conn:
                    status = await turn_store.turn_status(conn, turn_id)
                    # A re-run: the call may have been recorded already.
                    done, recorded = (
                        (False, None)
                        if context.fresh
                        else await turn_store.recorded_effect(conn, turn_id, key)
                    )
                    redactor = await self._env.redactor(context, conn)
                if done:
                    return _tool_done(decode(recorded, await self._env.history(context)))
                if status != "running":  # no tool call for a turn cancelled meanwhile
                    raise TurnHalted(status or "missing")
                tool_context = ToolContext(
                    session_id,
                    context.org_id,
                    turn_id,
                    call.id,
                    network_access=access,
                    resolve_secrets=_resolver(redactor),
                )
                result = await self._interrupted(tool, call, turn_id) or _redacted(
                    await self._run_tool(tool, call, tool_context, turn_id), redactor
                )

            async def write(conn: AsyncConnection) -> StepResult:
                outcome = result
                if outcome is None:
                    await require_running(conn, turn_id)
                    # A database-only tool: its writes share this transaction.
                    savepoint = await conn.begin_nested()
                    redactor = await self._env.redactor(context, conn)
                    tool_context = ToolContext(
                        session_id,
                        context.org_id,
                        turn_id,
                        call.id,
                        connection=conn,
                        network_access=access,
                        resolve_secrets=_resolver(redactor),
                    )
                    outcome = _redacted(
                        await self._run_tool(tool, call, tool_context, turn_id), redactor
                    )
                    if outcome.error is None:
                        await savepoint.commit()
                    else:
                        await savepoint.rollback()
                data = ev.tool_completed(
                    tool_call=call, result=outcome, duration_ms=_ms_since(started)
                )
                ctx = event_context(turn_id, context.input_message_id)
                # The tool ran before this transaction: the running check rides on the append.
                completed = NewEvent("tool.completed", data, ctx)
                await append_events(conn, session_id, [completed], guard=running(turn_id))
                return ToolDone(outcome)

            recorded_result, _ = await self._steps.run(context, key, write)
            return _tool_done(recorded_result)
        except TurnHalted as halted:
            return Halted(str(halted))

    async def _interrupted(
        self, tool: Tool | None, call: ToolCallPart, turn_id: str
    ) -> ToolResultPart | None:
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
        return ToolResultPart(call.id, call.name, None, INTERRUPTED)

    async def _run_tool(
        self, tool: Tool | None, call: ToolCallPart, context: ToolContext, turn_id: str
    ) -> ToolResultPart:
        try:
            async with self._env.cancellable(turn_id):
                return await execute_tool_call(tool, call, context)
        except (TurnHalted, asyncio.CancelledError):
            raise
        except Exception as exc:  # a tool bug is a tool error for the model, not a crash
            log.exception("tool %s raised", call.name)
            return ToolResultPart(
                call.id, call.name, None, f"the tool failed unexpectedly: {type(exc).__name__}"
            )


def _resolver(redactor: Redactor) -> SecretResolver:
    """Resolves the ``{{secret:NAME}}`` placeholders of a value with the session's secrets."""

    def resolve(value: JsonValue) -> JsonValue:
        missing = referenced_names(value) - redactor.secrets.keys()
        if missing:
            raise ToolError(
                f"unknown secret {', '.join(sorted(missing))}: this session has no secret of "
                "that name (set it with PUT /v1/sessions/{id}/storage/secrets)"
            )
        return substitute(value, redactor.secrets)

    return resolve


def _redacted(part: ToolResultPart, redactor: Redactor) -> ToolResultPart:
    """The result with the session's secret values redacted (a server may echo what it got)."""
    if not redactor:
        return part
    error = redactor.text(part.error) if part.error is not None else None
    return ToolResultPart(part.tool_call_id, part.name, redactor.json(part.result), error)


def _tool_done(result: StepResult) -> ToolDone | Halted:
    assert isinstance(result, ToolDone | Halted), result
    return result


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
