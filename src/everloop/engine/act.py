"""The act phase: run one server-side tool call and record its ``tool.completed``.

What a re-run of this step may do after a crash depends on the tool's side-effect class
(``capabilities.base.SideEffect``); a call whose record exists is never run again:

- ``TRANSACTIONAL`` (database only): the call runs inside the recording transaction, under a
  savepoint: its writes and its record commit together, exactly once. A *prepared* tool
  (``capabilities.base.Prepared``) of this class computes outside any transaction instead
  (slow or untrusted work, e.g. an agent's SQL in a killable worker process: nothing is locked
  while it runs) and hands back a ``commit`` that runs inside the recording transaction, so its
  write is exactly once too. A commit that finds its input changed (``StaleWrite``) rolls the
  step back and the call is prepared again, a few times at most.
- ``PURE`` and ``IDEMPOTENT``: the call runs before the recording transaction; a call
  interrupted by a crash simply runs again, and is recorded once.
- ``AT_MOST_ONCE``: a start marker is committed before the call. A re-run that finds the
  marker but no record does not call again: it settles the call as ``in_doubt`` (a
  ``tool.completed`` error with ``error_kind: "in_doubt"``, after a ``transcript.repaired``
  naming the call), so the model is told the outcome is unknown. A crash between the marker
  and the request also reads as in doubt: at most once means never twice, not exactly once.

A tool that calls out resolves the ``{{secret:NAME}}`` placeholders of what it sends through
``ToolContext.resolve_secrets``; the values of the session's secrets are redacted from every
tool result before it is recorded (``domain.secret_refs``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import (
    Commit,
    Delegation,
    SecretResolver,
    SideEffect,
    StaleWrite,
    Tool,
    ToolContext,
    ToolError,
    begin_tool_call,
    execute_tool_call,
    is_delegating,
    is_prepared,
    prepare_tool_call,
    side_effect_of,
)
from everloop.domain.event_log import NewEvent
from everloop.domain.messages import JsonValue, ToolCallPart, ToolResultPart
from everloop.domain.network_access import NetworkAccess
from everloop.domain.secret_refs import Redactor, referenced_names, substitute
from everloop.domain.timestamps import now
from everloop.engine import events as ev
from everloop.engine.context import TurnContext
from everloop.engine.env import TurnEnv
from everloop.engine.guardrails import call_hit_events, policy_for
from everloop.engine.loop_guard import Refusal
from everloop.engine.result_filters import filter_result
from everloop.engine.steps import (
    Delegated,
    Halted,
    StepRecorder,
    StepResult,
    ToolDone,
    TurnHalted,
    basis_of,
    decode,
    event_context,
    require_running,
    running,
)
from everloop.engine.subagent_wait import wait_for_task
from everloop.errors import EverloopError
from everloop.store import turns as turn_store
from everloop.store.event_log import append_events
from everloop.telemetry import turns as telemetry

log = logging.getLogger("everloop.engine")

IN_DOUBT = (
    "in doubt: everloop restarted while this call was running, and this tool is not safe to "
    "repeat, so it was not run again. Whether it took effect is unknown: check its effect "
    "before calling it again."
)

# Times a prepared call is run again when its commit finds its input changed meanwhile.
PREPARE_ATTEMPTS = 3
STALE = (
    "what this call changes was changed by another call each time it ran, so nothing was "
    "written; run it again"
)

Write = Callable[[AsyncConnection], Awaitable[StepResult]]


class ActPhase:
    def __init__(self, env: TurnEnv, steps: StepRecorder) -> None:
        self._env = env
        self._steps = steps

    async def run(self, context: TurnContext, call: ToolCallPart) -> ToolDone | Halted:
        """Run ``call`` (unless a run of this step recorded it before) and record it: a span
        of the turn's trace, with the call's outcome."""
        with telemetry.tool_call(call.name, call.id) as record:
            done = await self._run(context, call)
            if isinstance(done, ToolDone):
                record.outcome = "ok" if done.result.error is None else "error"
            return done

    async def _run(self, context: TurnContext, call: ToolCallPart) -> ToolDone | Halted:
        key = f"tool:{call.id}"
        try:
            tool, access = await self._tool(context, call)
            side_effect = side_effect_of(tool)
            started = time.monotonic()
            if tool is not None and is_delegating(tool):
                return await self._delegate(context, call, tool, access, started)
            if side_effect is SideEffect.TRANSACTIONAL and not is_prepared(tool):
                write = self._run_in_transaction(context, call, tool, access, started)
                result, _ = await self._steps.run(context, key, write)
                return _tool_done(result)
            recorded, redactor = await self._recorded(context, key)
            if recorded is not None:
                return recorded
            for _ in range(PREPARE_ATTEMPTS):
                outcome, commit, in_doubt = await self._run_outside(
                    context, call, tool, access, side_effect, redactor
                )
                write = self._record(context, call, outcome, in_doubt, started, commit)
                try:
                    result, _ = await self._steps.run(context, key, write)
                except StaleWrite:
                    log.info("tool %s: its input changed before its commit; again", call.name)
                    continue
                return _tool_done(result)
            stale = ToolResultPart(call.id, call.name, None, STALE)
            result, _ = await self._steps.run(
                context, key, self._record(context, call, stale, False, started)
            )
            return _tool_done(result)
        except TurnHalted as halted:
            return Halted(str(halted))

    async def refuse(self, context: TurnContext, refusal: Refusal) -> ToolDone | Halted:
        """Record ``refusal``'s error as its call's result without running the call (after a
        ``tool.loop_detected`` for a repeat); a re-run of the step replays the record."""
        call = refusal.call
        result = ToolResultPart(call.id, call.name, None, refusal.error)
        write = self._record(context, call, result, False, time.monotonic(), refusal=refusal)
        try:
            done, _ = await self._steps.run(context, f"tool:{call.id}", write)
        except TurnHalted as halted:
            return Halted(str(halted))
        return _tool_done(done)

    async def _delegate(
        self,
        context: TurnContext,
        call: ToolCallPart,
        tool: Tool,
        access: NetworkAccess,
        started: float,
    ) -> ToolDone | Halted:
        """A delegating call (``Delegation``): begin it in one step (its writes and what it
        began commit together), start the child's turn, then wait for the child, durably, and
        record the answer in a second step. After a crash each step replays its record."""
        key = f"tool:{call.id}"
        recorded, _ = await self._recorded(context, key)
        if recorded is not None:
            return recorded

        async def begin(conn: AsyncConnection) -> StepResult:
            await require_running(conn, context.turn_id)
            savepoint = await conn.begin_nested()
            tool_context = ToolContext(
                context.session_id,
                context.org_id,
                context.turn_id,
                call.id,
                connection=conn,
                network_access=access,
                agent_id=context.config.agent_id,
                capability_configs=_capability_configs(context),
            )
            try:
                begun = await begin_tool_call(tool, call, tool_context)
            except EverloopError as exc:  # e.g. an agent it names is archived
                begun = ToolResultPart(call.id, call.name, None, exc.message)
            except (TurnHalted, asyncio.CancelledError):
                raise
            except Exception as exc:  # a tool bug is a tool error for the model
                log.exception("tool %s raised", call.name)
                failed = f"the tool failed unexpectedly: {type(exc).__name__}"
                begun = ToolResultPart(call.id, call.name, None, failed)
            if isinstance(begun, ToolResultPart):
                if begun.error is None:
                    await savepoint.commit()
                else:
                    await savepoint.rollback()
                return await self._record(context, call, begun, False, started)(conn)
            await savepoint.commit()
            return await self._began(conn, context, call, begun, started)

        result, _ = await self._steps.run(context, f"begin:{call.id}", begin)
        if not isinstance(result, Delegated):
            return _tool_done(result)
        if result.start_turn_id is not None:
            await tool.start_turn(  # type: ignore[attr-defined]
                result.child_session_id, result.start_turn_id
            )
        if result.done is not None:
            return ToolDone(result.done)
        answer = await wait_for_task(self._env, context, result, call)
        if isinstance(answer, Halted):
            return answer
        try:
            done, _ = await self._steps.run(
                context, key, self._record(context, call, answer, False, started)
            )
        except TurnHalted as halted:
            return Halted(str(halted))
        return _tool_done(done)

    async def _began(
        self,
        conn: AsyncConnection,
        context: TurnContext,
        call: ToolCallPart,
        begun: Delegation,
        started: float,
    ) -> Delegated:
        """The record of a delegation; one that answers at once records its call too."""
        done = None
        if begun.deadline is None:
            answer = ToolResultPart(call.id, call.name, begun.result)
            recorded = await self._record(context, call, answer, False, started)(conn)
            assert isinstance(recorded, ToolDone)
            done = recorded.result  # as the result filters left it
        return Delegated(
            begun.task_id,
            begun.name,
            begun.child_session_id,
            begun.start_turn_id,
            begun.deadline,
            done,
        )

    async def _tool(
        self, context: TurnContext, call: ToolCallPart
    ) -> tuple[Tool | None, NetworkAccess]:
        """The tool the model called (None if there is none) and the session's effective
        network access, for tools that make outbound requests."""
        try:
            tool = await self._env.tool(context, call.name)
        except EverloopError:
            return None, NetworkAccess(allowed=())
        return tool, context.runtime.network_access if context.runtime else NetworkAccess(())

    async def _recorded(
        self, context: TurnContext, key: str
    ) -> tuple[ToolDone | Halted | None, Redactor]:
        """The result a run of this step recorded before, if any, and the session's secrets as
        they are now; ``TurnHalted`` if the turn no longer runs (no tool call for a turn
        cancelled meanwhile)."""
        async with self._env.db.read() as conn:
            status = await turn_store.turn_status(conn, context.turn_id)
            done, recorded = (
                (False, None)
                if context.fresh
                else await turn_store.recorded_effect(conn, context.turn_id, key)
            )
            redactor = await self._env.redactor(context, conn)
        if done:
            history = await self._env.history(context, basis_of(recorded))
            return _tool_done(decode(recorded, history)), redactor
        if status != "running":
            raise TurnHalted(status or "missing")
        return None, redactor

    async def _run_outside(
        self,
        context: TurnContext,
        call: ToolCallPart,
        tool: Tool | None,
        access: NetworkAccess,
        side_effect: SideEffect,
        redactor: Redactor,
    ) -> tuple[ToolResultPart, Commit | None, bool]:
        """Run a call that is not part of the recording transaction; (its result, the write a
        prepared tool commits with it, whether it is in doubt: an earlier run started it and
        it must not run twice)."""
        if side_effect is SideEffect.AT_MOST_ONCE and not await self._mark_started(
            context.turn_id, call
        ):
            return ToolResultPart(call.id, call.name, None, IN_DOUBT), None, True
        tool_context = ToolContext(
            context.session_id,
            context.org_id,
            context.turn_id,
            call.id,
            network_access=access,
            resolve_secrets=_resolver(redactor),
            agent_id=context.config.agent_id,
            capability_configs=_capability_configs(context),
        )
        outcome, commit = await self._run_tool(tool, call, tool_context, context.turn_id)
        return _redacted(outcome, redactor), commit, False

    async def _mark_started(self, turn_id: str, call: ToolCallPart) -> bool:
        """Commit that ``call`` starts, before it does; False if a run of this step marked it
        before (it may have had its effect), so it must not run again."""
        key = f"tool-start:{call.id}"
        try:
            async with self._env.db.write() as conn:
                started, _ = await turn_store.recorded_effect(conn, turn_id, key)
                if not started:
                    await require_running(conn, turn_id)
                    await turn_store.record_effect(conn, turn_id, key, {"started_at": now()})
        except IntegrityError:
            return False  # a concurrent run of this step marked it first
        return not started

    def _run_in_transaction(
        self,
        context: TurnContext,
        call: ToolCallPart,
        tool: Tool | None,
        access: NetworkAccess,
        started: float,
    ) -> Write:
        """The step's write for a database-only tool: its writes share the transaction that
        records it (under a savepoint, rolled back if the call fails)."""

        async def write(conn: AsyncConnection) -> StepResult:
            await require_running(conn, context.turn_id)
            savepoint = await conn.begin_nested()
            redactor = await self._env.redactor(context, conn)
            tool_context = ToolContext(
                context.session_id,
                context.org_id,
                context.turn_id,
                call.id,
                connection=conn,
                network_access=access,
                agent_id=context.config.agent_id,
                capability_configs=_capability_configs(context),
                resolve_secrets=_resolver(redactor),
            )
            outcome, _ = await self._run_tool(tool, call, tool_context, context.turn_id)
            outcome = _redacted(outcome, redactor)
            if outcome.error is None:
                await savepoint.commit()
            else:
                await savepoint.rollback()
            return await self._record(context, call, outcome, False, started)(conn)

        return write

    def _record(
        self,
        context: TurnContext,
        call: ToolCallPart,
        outcome: ToolResultPart,
        in_doubt: bool,
        started: float,
        commit: Commit | None = None,
        refusal: Refusal | None = None,
    ) -> Write:
        """The step's write of a finished call: a prepared call's ``commit`` (``StaleWrite``
        propagates: the transaction rolls back), the active capabilities' result filters
        (``engine.result_filters``), then its ``tool.completed`` (an in-doubt call's after the
        ``transcript.repaired`` that names it, a refused repeat's after the
        ``tool.loop_detected``, after the ``guardrail.triggered`` of its guardrail hits)."""
        kind: ev.ToolErrorKind | None = "in_doubt" if in_doubt else None
        if refusal is not None:
            kind = refusal.kind

        async def write(conn: AsyncConnection) -> StepResult:
            if commit is not None:
                await commit(conn)
            # A capability may rewrite the result (a big output saved to a file, one a
            # guardrail withholds) in this transaction: its writes commit with the record.
            done = await filter_result(conn, self._env.capabilities, context, outcome)
            ctx = event_context(context.turn_id, context.input_message_id)
            # The guardrails' hits on the call and on its result as the tool returned it.
            ran = outcome if refusal is None else None
            hits = call_hit_events(policy_for(context.runtime), call, ran)
            data = ev.tool_completed(
                tool_call=call,
                result=done,
                duration_ms=_ms_since(started),
                error_kind=kind,
            )
            found = [NewEvent(ev.TOOL_COMPLETED, data, ctx)]
            if in_doubt:
                repaired = ev.transcript_repaired(tool_call=call)
                found.insert(0, NewEvent(ev.TRANSCRIPT_REPAIRED, repaired, ctx))
            if refusal is not None and refusal.max_repeats is not None:
                detected = ev.tool_loop_detected(
                    tool_call=call,
                    repeats=refusal.repeats,
                    max_repeats=refusal.max_repeats,
                    action="refused",
                )
                found.insert(0, NewEvent(ev.TOOL_LOOP_DETECTED, detected, ctx))
            found[:0] = [NewEvent(t, data, ctx) for t, data in hits]
            # A call run before this transaction: the running check rides on the append.
            await append_events(conn, context.session_id, found, guard=running(context.turn_id))
            return ToolDone(done)

        return write

    async def _run_tool(
        self, tool: Tool | None, call: ToolCallPart, context: ToolContext, turn_id: str
    ) -> tuple[ToolResultPart, Commit | None]:
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


def _capability_configs(context: TurnContext) -> dict[str, Mapping[str, Any]]:
    """The active capabilities' configs by ref, for the tools that read theirs."""
    if context.runtime is None:
        return {}
    return {c.ref: c.config for c in context.runtime.capabilities if c.config is not None}
