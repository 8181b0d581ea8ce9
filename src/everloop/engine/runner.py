"""The durable runner: drives one turn through its phases until it ends.

One workflow per turn (workflow id = turn id). The pure loop (``engine.loop``) decides; the
phases do the I/O, each pairing its side effect with one recorded transaction
(``engine.steps``):

- reason (``engine.reason``): open the phase, call the model, record the answer;
- act (``engine.act``): each server-side tool call, then its ``tool.completed``;
- client waits (``engine.client_wait``): the calls the API caller runs;
- the end (``engine.ending``): the terminal events, written by the step that decided it.

A step re-run after a crash returns its recorded result, so the workflow body can simply run
again from the top: DBOS records that the turn's workflow exists and whether it finished, and
recovers it after a crash; the steps' own records make their effects exactly-once.

Waiting (for an earlier turn of the session to end, or for client-side results) re-checks the
database whenever the session gets new events, which wakes this process at once (in-process
signal; on PostgreSQL ``LISTEN/NOTIFY`` from other processes), and at least every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import CapabilityRegistry
from everloop.domain.event_log import NewEvent
from everloop.domain.messages import ToolCallPart, ToolResultPart
from everloop.domain.timestamps import now
from everloop.engine import events as ev
from everloop.engine import loop
from everloop.engine.act import ActPhase
from everloop.engine.assembly import Assembler
from everloop.engine.client_wait import ToolStatus, client_completed, collect
from everloop.engine.context import TurnContext
from everloop.engine.ending import end_turn, fail_setup
from everloop.engine.env import RunnerSettings, TurnEnv
from everloop.engine.human_input import waits_for_approval
from everloop.engine.loop_guard import CallChecks, refusals
from everloop.engine.ports import (
    BudgetGate,
    ModelResolver,
    NoBudgets,
    NoRemoteTools,
    NoSecrets,
    RemoteTools,
    SessionSecrets,
)
from everloop.engine.reason import ReasonPhase
from everloop.engine.signals import Signals
from everloop.engine.steps import (
    Advanced,
    ClientAnswered,
    ClientPending,
    Halted,
    Opened,
    StepRecorder,
    StepResult,
    ToolDone,
    TurnHalted,
    Waiting,
    event_context,
    require_running,
)
from everloop.llm.tokens import TokenCounter
from everloop.store import turns as turn_store
from everloop.store.db import Database
from everloop.telemetry import turns as telemetry

log = logging.getLogger("everloop.engine")

RUN_TURN_WORKFLOW = "everloop.run_turn"
WAIT_RECHECK_SECONDS = 5.0


class TurnRunner:
    """Runs turns (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        signals: Signals,
        capabilities: CapabilityRegistry,
        models: ModelResolver,
        settings: RunnerSettings,
        assembler: Assembler | None = None,
        remote_tools: RemoteTools | None = None,
        secrets: SessionSecrets | None = None,
        budgets: BudgetGate | None = None,
    ) -> None:
        self._db = db
        self._signals = signals
        self._env = TurnEnv(
            db,
            signals,
            capabilities,
            models,
            settings,
            assembler or Assembler(capabilities),
            remote_tools or NoRemoteTools(),
            secrets or NoSecrets(),
            budgets or NoBudgets(),
        )
        self._steps = StepRecorder(db, signals, fail_setup, self._env.history)
        self._reason = ReasonPhase(self._env, self._steps)
        self._act = ActPhase(self._env, self._steps)
        self.active_turns = 0

    @property
    def tokens(self) -> TokenCounter:
        """The process's token counter (calibrated by provider reports; shared with views)."""
        return self._env.tokens

    async def run_turn(self, session_id: str, turn_id: str) -> str:
        """Run one turn to its end; returns how it ended."""
        self.active_turns += 1
        try:
            with telemetry.turn(session_id, turn_id) as record:
                try:
                    record.status = await self._run_turn(session_id, turn_id, record)
                except TurnHalted as halted:
                    record.status = str(halted)
                return record.status
        finally:
            self.active_turns -= 1
            self._env.forget(turn_id)

    async def _run_turn(self, session_id: str, turn_id: str, record: telemetry.TurnRecord) -> str:
        while True:
            with self._signals.listening(session_id) as woken:
                opened = await self._reason.open_first(session_id, turn_id)
                if not isinstance(opened, Waiting):
                    break
                # Not started: the configuration is read again when it may start.
                self._env.forget(turn_id)
                # An earlier turn of this session is still open: wait until the session's log
                # moves (the earlier turn ends with events), re-checking now and then in case a
                # wake-up was missed; then try again only if this turn is first in line.
                while True:
                    await woken.wait(WAIT_RECHECK_SECONDS)
                    woken.clear()
                    if await self._first_in_line(session_id, turn_id):
                        break
        if isinstance(opened, Halted):
            return opened.reason
        record.opened(replayed=opened.replayed)
        context = await self._env.context(session_id, turn_id)
        return await self._drive(context, opened, record)

    async def _first_in_line(self, session_id: str, turn_id: str) -> bool:
        """Whether trying to claim can change anything: this turn is the session's first open
        one, or it is no longer open (cancelled while waiting)."""
        async with self._db.read() as conn:
            first = await turn_store.next_open_turn(conn, session_id)
            return first in (turn_id, None) or (
                await turn_store.turn_status(conn, turn_id) not in turn_store.OPEN
            )

    async def _drive(
        self,
        context: TurnContext,
        step: Opened | Advanced | Halted,
        record: telemetry.TurnRecord,
    ) -> str:
        while True:
            if isinstance(step, Halted):
                return step.reason
            usage = step.state.usage
            record.observe(step.state.iteration, usage.input_tokens, usage.output_tokens)
            if isinstance(step, Opened):
                with telemetry.phase("reason", step.state.iteration):
                    step = await self._reason.reason(context, step)
                continue
            state = step.state
            if state.status in ("completed", "failed"):
                return state.status
            assert state.status == "running_tools", state.status
            started = time.monotonic()
            with telemetry.phase("act", state.iteration):
                results = await self._run_tools(context, state)
            if results is None:
                return "cancelled"
            act = ev.act_completed(results=results, duration_ms=_ms_since(started))
            state, effects = loop.tools_finished(state, results, created_at=now())
            if isinstance(effects[0], loop.FailTurn):
                step = await self._finish(context, state, effects[0], act)
            else:
                step = await self._reason.open_next(context, state, act)

    async def _run_tools(
        self, context: TurnContext, state: loop.TurnState
    ) -> tuple[ToolResultPart, ...] | None:
        """The results of the act phase's calls: the server-side ones that need nobody, then
        (after waiting for the client's results, the user's answers and the approvals:
        ``engine.human_input``) the approved ones; None if the turn stopped meanwhile."""
        client = state.settings.client_side_tools
        calls = [c for c in state.pending_tool_calls if c.name not in client]
        gated = await waits_for_approval(self._env, context, state.iteration) if calls else set()
        results = await self._run_server(context, state, [c for c in calls if c.id not in gated])
        if results is None:
            return None
        if gated or any(c.name in client for c in state.pending_tool_calls):
            answered = await self._await_client_results(context, state.iteration)
            if answered is None:
                return None
            results.extend(answered.results)
            approved = [c for c in calls if c.id in answered.approved]
            ran = await self._run_server(context, state, approved)
            if ran is None:
                return None
            results.extend(ran)
        return tuple(results)

    async def _run_server(
        self, context: TurnContext, state: loop.TurnState, calls: list[ToolCallPart]
    ) -> list[ToolResultPart] | None:
        # Calls the turn's checks answer with an error instead of running (engine.loop_guard).
        refused = refusals(state, CallChecks.of(context.runtime), calls)

        def act(call: ToolCallPart) -> Awaitable[ToolDone | Halted]:
            if call.id in refused:
                return self._act.refuse(context, refused[call.id])
            return self._act.run(context, call)

        if state.settings.parallel_tool_calls and len(calls) > 1:
            done = await asyncio.gather(*(act(c) for c in calls))
        else:
            done = [await act(c) for c in calls]
        results: list[ToolResultPart] = []
        for item in done:
            if isinstance(item, Halted):
                return None
            results.append(item.result)
        return results

    async def _await_client_results(
        self, context: TurnContext, iteration: int
    ) -> ClientAnswered | None:
        """Wait until every call of this act phase that waits outside the turn has an outcome:
        a posted result, answer or decision, a timeout, or a cancellation by a new user
        message. None if the turn stopped."""
        with self._signals.listening(context.session_id) as woken:
            while True:
                woken.clear()  # before the check: a result posted during it wakes the wait
                out = await collect(self._env, context, iteration)
                if isinstance(out, Halted):
                    return None
                if not isinstance(out, ClientPending):
                    return out
                await woken.wait(min(out.seconds, WAIT_RECHECK_SECONDS))

    async def _finish(
        self,
        context: TurnContext,
        state: loop.TurnState,
        failure: loop.FailTurn,
        act_completed: dict[str, Any],
    ) -> Advanced | Halted:
        """End the turn as failed for a reason decided between steps (the iteration limit)."""

        async def write(conn: AsyncConnection) -> StepResult:
            await require_running(conn, context.turn_id)
            ctx = event_context(context.turn_id, state.input_message_id)
            act = NewEvent("act.completed", act_completed, ctx)
            await end_turn(
                conn,
                context.session_id,
                context.turn_id,
                state,
                ctx,
                None,
                failure,
                None,
                prior=[act],
                child=context.config.parent_session_id is not None,
            )
            return Advanced(state)

        try:
            result, _ = await self._steps.run(context, "finish", write)
        except TurnHalted as halted:
            return Halted(str(halted))
        assert isinstance(result, Advanced | Halted), result
        return result


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


__all__ = [
    "RUN_TURN_WORKFLOW",
    "RunnerSettings",
    "ToolStatus",
    "TurnHalted",
    "TurnRunner",
    "client_completed",
]
