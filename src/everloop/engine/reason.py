"""The reason phase: open it (events, and for a turn's first phase the claim of its session),
call the model (``engine.model_call``: retries, streamed deltas, secrets redacted and
``output`` guardrails checked on the way), record the answer.

Two transactions per phase: one before the model call (``reason:<n>:open``) and one after it
(``reason:<n>:done``) with the answer, its events, the usage and, when the answer is final, the
turn's end. No transaction is open during the model call.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import tool_spec
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.timestamps import now
from everloop.engine import events as ev
from everloop.engine import loop
from everloop.engine.compaction import Compactor
from everloop.engine.context import TurnContext
from everloop.engine.ending import end_turn, fail_setup, first_turn_title, seal_turn
from everloop.engine.env import TurnEnv
from everloop.engine.human_input import offered, park_calls
from everloop.engine.loop_guard import CallChecks, failure_events, stop_looping
from everloop.engine.model_call import ModelOutcome, call_model
from everloop.engine.ports import ResolvedModel
from everloop.engine.steps import (
    Advanced,
    Halted,
    Opened,
    StepRecorder,
    StepResult,
    TurnHalted,
    Waiting,
    event_context,
    running,
)
from everloop.errors import EverloopError
from everloop.llm.base import ModelCallError, ToolSpec
from everloop.store import turns as turn_store
from everloop.store.event_log import TurnGuard, append_events
from everloop.telemetry import metrics

log = logging.getLogger("everloop.engine")


class ReasonPhase:
    def __init__(self, env: TurnEnv, steps: StepRecorder) -> None:
        self._env = env
        self._steps = steps
        self._compactor = Compactor(env, steps)

    # -- open ----------------------------------------------------------------------------------

    async def open_first(self, session_id: str, turn_id: str) -> Opened | Waiting | Halted:
        """Claim the session and open the turn's first reason phase."""
        context = await self._env.context(session_id, turn_id)
        # What the turn's settings need from outside is fetched before the transaction opens:
        # no network call and no second database connection while it holds one.
        settings: loop.TurnSettings | EverloopError
        try:
            if context.runtime is not None:
                # MCP listings (failures only log; see ``capabilities.mcp``).
                await self._env.remote.discover(context.org_id, context.runtime)
            settings = await self._turn_settings(context)
        except EverloopError as exc:
            settings = exc  # the transaction fails the turn with it

        async def write(conn: AsyncConnection) -> StepResult:
            claim = await turn_store.claim_turn(conn, session_id, turn_id)
            if claim not in ("claimed", "running"):
                raise TurnHalted(claim)
            values: dict[str, Any] = {"status": "active", "updated_at": now()}
            if context.config.started_at is None:
                values["started_at"] = values["updated_at"]
            if context.config.parent_session_id is not None:
                values["subagent_status"] = "running"
                values["finished_at"] = None
            conversation = await self._env.conversation(conn, context)
            user_message = conversation.user_message
            if isinstance(settings, EverloopError):
                raise settings
            state, _ = loop.start_turn(
                turn_id=turn_id,
                history=conversation.history,
                user_message=user_message,
                settings=settings,
                basis=conversation.basis,
            )
            ctx = event_context(turn_id, context.input_message_id)
            new = [
                NewEvent(
                    "session.activated",
                    ev.session_activated(turn_id=turn_id, input_message_id=user_message.id),
                    ctx,
                ),
                NewEvent(
                    "turn.started",
                    ev.turn_started(
                        turn_id=turn_id,
                        input_message_id=user_message.id,
                        input_content=user_message.text,
                    ),
                    ctx,
                ),
            ]
            return await self._open_events(conn, context, state, new, session_values=values)

        try:
            opened = await self._open(context, "reason:1:open", write)
        except TurnHalted as halted:
            return Waiting() if str(halted) == "waiting" else Halted(str(halted))
        if isinstance(opened, Opened) and not opened.replayed:
            context.fresh = True
        return opened

    async def open_next(
        self, context: TurnContext, state: loop.TurnState, act_completed: dict[str, Any]
    ) -> Opened | Halted:
        """Open the next reason phase after an act phase (``act.completed`` is written here)."""

        async def write(conn: AsyncConnection) -> StepResult:
            ctx = event_context(context.turn_id, context.input_message_id)
            new = [NewEvent("act.completed", act_completed, ctx)]
            # The turn must still be open and its session live: checked by the append.
            guard = TurnGuard(context.turn_id, turn_store.OPEN, live=True)
            return await self._open_events(conn, context, state, new, guard=guard)

        try:
            return await self._open(context, f"reason:{state.iteration}:open", write)
        except TurnHalted as halted:
            return Halted(str(halted))

    async def _open(self, context: TurnContext, key: str, write: Any) -> Opened | Halted:
        result, replayed = await self._steps.run(context, key, write)
        if isinstance(result, Opened):
            return replace(result, replayed=True) if replayed else result
        assert isinstance(result, Halted), result
        return result

    async def _open_events(
        self,
        conn: AsyncConnection,
        context: TurnContext,
        state: loop.TurnState,
        new: list[NewEvent],
        *,
        session_values: dict[str, Any] | None = None,
        guard: TurnGuard | None = None,
    ) -> Opened:
        turn_id = context.turn_id
        ctx = event_context(turn_id, context.input_message_id)
        message_id = loop.derived_message_id(turn_id, f"reply:{state.iteration}")
        model_name = state.settings.model
        new.append(
            NewEvent(
                "reason.started",
                ev.reason_started(
                    model=model_name,
                    harness_id=context.config.harness_id,
                    agent_id=context.config.agent_id,
                ),
                ctx,
            )
        )
        new.append(
            NewEvent(
                "output.message.started",
                ev.output_message_started(
                    turn_id=turn_id,
                    message_id=message_id,
                    model=model_name,
                    iteration=state.iteration,
                ),
                ctx,
            )
        )
        await append_events(
            conn, context.session_id, new, session_values=session_values, guard=guard
        )
        # The budgets, read in this transaction (one connection, not another, per call).
        context.budget_block = await self._env.budgets.blocked(context.session_id, conn)
        context.budget_checked = True
        return Opened(state, message_id)

    async def _turn_settings(self, context: TurnContext) -> loop.TurnSettings:
        """The turn's settings from the session's assembled RuntimeAgent (``engine.assembly``)."""
        runtime = context.runtime
        if runtime is None:  # raises the assembly error: the turn fails with it
            runtime = self._env.assembler.for_session(context.config, context.controls)
        server_tools = context.server_tools
        specs = [
            tool_spec(server_tools[t.name])
            if t.source != "client_side"
            else ToolSpec(t.name, t.description, dict(t.parameters))
            for t in runtime.tools
        ]
        # MCP tools listed before the transaction (from the cache: no network here).
        remote = await self._env.remote.listed(context.org_id, runtime)
        context.remote_tools = remote  # for approvals by risk level (engine.human_input)
        specs += [tool_spec(t) for name, t in remote.items() if name not in server_tools]
        specs, client_side = offered(
            runtime, specs, frozenset(t.name for t in runtime.client_side_tools)
        )
        model = await self._env.model(context)
        prompt = "\n\n".join(p for p in (runtime.system_prompt, context.instructions) if p)
        return loop.TurnSettings(
            model=model.model_name,
            system_prompt=prompt or None,
            tools=tuple(specs),
            client_side_tools=client_side,
            max_iterations=runtime.max_iterations or self._env.settings.default_max_iterations,
            parallel_tool_calls=runtime.parallel_tool_calls is not False,
        )

    # -- call the model and record its answer ------------------------------------------------

    async def reason(self, context: TurnContext, opened: Opened) -> Advanced | Halted:
        state, message_id = opened.state, opened.message_id
        key = f"reason:{state.iteration}:done"
        try:
            if opened.replayed:
                # This phase ran before (a crash): the model's answer may be recorded too.
                recorded = await self._steps.replay(context, key)
                if recorded is not None:
                    return _advanced(recorded)
            try:
                model = await self._env.model(context)
            except EverloopError as exc:
                reason = exc.message

                async def unavailable(conn: AsyncConnection) -> StepResult:
                    return await fail_setup(conn, context.session_id, context.turn_id, reason)

                result = await self._once(
                    context, f"reason:{state.iteration}:unavailable", unavailable
                )
                return _advanced(result)
            if context.budget_checked and not opened.replayed:
                block = context.budget_block
            else:  # a replayed phase: its opening transaction ran in an earlier process
                block = await self._env.budgets.blocked(context.session_id)
            context.budget_block, context.budget_checked = None, False
            if block is not None:
                # Before the call, not after: nothing more is spent past a limit.
                metrics.BUDGET_BLOCKS.inc()
                sealed = await self._once(
                    context,
                    f"reason:{state.iteration}:budget",
                    lambda conn: seal_turn(
                        conn,
                        context.session_id,
                        state,
                        event_context(context.turn_id, state.input_message_id),
                        block,
                        child=context.config.parent_session_id is not None,
                    ),
                )
                return _advanced(sealed)
            state = await self._compactor.before_call(
                context, state, model, replayed=opened.replayed
            )
            redactor = await self._env.redactor(context)
            outcome = await call_model(self._env, context, state, model, message_id, redactor)
            if outcome.ok:
                self._compactor.observe(context, model, outcome.usage)
            return await self._record(context, state, model, message_id, outcome, key)
        except TurnHalted as halted:
            return Halted(str(halted))

    async def _record(
        self,
        context: TurnContext,
        state: loop.TurnState,
        model: ResolvedModel,
        message_id: str,
        outcome: ModelOutcome,
        key: str,
    ) -> Advanced | Halted:
        session_id, turn_id = context.session_id, context.turn_id
        ctx = event_context(turn_id, state.input_message_id)
        created = now()
        if outcome.ok:
            new_state, effects = loop.model_responded(
                state,
                message_id=message_id,
                text=outcome.text or "",
                tool_calls=outcome.tool_calls,
                usage=outcome.usage,
                created_at=created,
            )
        else:
            error = ModelCallError(
                outcome.error or "", status=outcome.status, retryable=outcome.retryable
            )
            new_state, effects = loop.model_failed(state, error, created_at=created)
        answered = new_state  # its last message is the model's answer
        checks = CallChecks.of(context.runtime)
        stopped, looped = stop_looping((new_state, effects), checks, created_at=created)
        new_state, effects = stopped
        effect = effects[0]
        usage = outcome.usage

        async def write(conn: AsyncConnection) -> StepResult:
            new = self._answer_events(state, answered, model, message_id, outcome, ctx)
            if looped is not None:
                calls = outcome.tool_calls
                new.extend(NewEvent(t, data, ctx) for t, data in failure_events(looped, calls))
            # The running check rides on the usage update (the transaction's first statement).
            total = await turn_store.add_session_usage(
                conn, session_id, usage, guard=running(turn_id)
            )
            if context.config.parent_session_id is not None:
                # A subagent's usage also counts in its ancestors' tree totals.
                if context.ancestors is None:
                    context.ancestors = tuple(await turn_store.ancestors(conn, session_id))
                await turn_store.add_descendant_usage(conn, context.ancestors, usage)
            # Charged once with the generation it pays for: this step's record.
            new.extend(
                await self._env.budgets.charge(
                    conn,
                    session_id,
                    ref_id=f"{turn_id}:{state.iteration}",
                    usage=usage,
                    cost_usd=model.prices.cost_usd(usage),
                    context=ctx,
                )
            )
            match effect:
                case loop.RunTools(calls=run_calls):
                    client = state.settings.client_side_tools
                    new.extend(
                        await park_calls(
                            conn, self._env, context, state.iteration, run_calls, client, ctx
                        )
                    )
                    await append_events(conn, session_id, new)
                    return Advanced(new_state)
                case loop.CompleteTurn(final_message=final):
                    await end_turn(
                        conn,
                        session_id,
                        turn_id,
                        new_state,
                        ctx,
                        final,
                        None,
                        outcome.ttft_ms,
                        prior=new,
                        total=total,
                        child=context.config.parent_session_id is not None,
                        auto_title=first_turn_title(context.runtime, new_state),
                    )
                case loop.FailTurn():
                    await end_turn(
                        conn,
                        session_id,
                        turn_id,
                        new_state,
                        ctx,
                        None,
                        effect,
                        None,
                        prior=new,
                        total=total,
                        child=context.config.parent_session_id is not None,
                    )
                case loop.CallModel():
                    raise AssertionError("a model answer never asks for another model call")
            return Advanced(new_state)

        return _advanced(await self._once(context, key, write))

    def _answer_events(
        self,
        state: loop.TurnState,
        new_state: loop.TurnState,
        model: ResolvedModel,
        message_id: str,
        outcome: ModelOutcome,
        ctx: EventContext,
    ) -> list[NewEvent]:
        new: list[NewEvent] = []
        usage = outcome.usage
        if outcome.ok:
            if outcome.pending_delta:
                delta = ev.output_message_delta(
                    turn_id=state.turn_id,
                    message_id=message_id,
                    delta=outcome.pending_delta,
                    accumulated=outcome.accumulated,
                )
                delta["attempt"] = outcome.attempt
                new.append(NewEvent("output.message.delta", delta, ctx))
            # Guardrail hits, and a replacement, before the message they decided.
            new.extend(NewEvent(t, data, ctx) for t, data in outcome.guard_events)
            new.append(
                NewEvent(
                    "output.message.completed",
                    ev.output_message_completed(
                        message=new_state.messages[-1], model=model.model_name, usage=usage
                    ),
                    ctx,
                )
            )
        new.append(NewEvent("llm.generation", _generation(state, model, outcome), ctx))
        new.append(
            NewEvent(
                "reason.completed",
                ev.reason_completed(
                    success=outcome.ok,
                    text=outcome.text,
                    tool_call_count=len(outcome.tool_calls),
                    usage=usage,
                    duration_ms=outcome.duration_ms,
                    error=outcome.error,
                ),
                ctx,
            )
        )
        return new

    async def _once(self, context: TurnContext, key: str, write: Any) -> StepResult:
        result, _ = await self._steps.run(context, key, write)
        return result


def _advanced(result: StepResult) -> Advanced | Halted:
    assert isinstance(result, Advanced | Halted), result
    return result


def _generation(
    state: loop.TurnState, model: ResolvedModel, outcome: ModelOutcome
) -> dict[str, Any]:
    data = ev.llm_generation(
        model=model.model_name,
        system_prompt=state.settings.system_prompt,
        # The turn's own messages; earlier turns are in the log already (this keeps the event
        # size independent of the session's length). prompt_message_count says how many
        # messages the model actually saw.
        messages=state.turn_messages,
        tools=state.settings.tools,
        text=outcome.text,
        tool_calls=outcome.tool_calls,
        usage=outcome.usage,
        success=outcome.ok,
        provider=model.provider_name or model.driver_kind,
        duration_ms=outcome.duration_ms,
        time_to_first_token_ms=outcome.ttft_ms,
        finish_reason=outcome.finish_reason,
        error=outcome.error,
    )
    metadata = data["metadata"]
    assert isinstance(metadata, dict)
    metadata["prompt_message_count"] = len(state.messages)
    metadata["model_id"] = model.model_id
    metadata["provider_id"] = model.provider_id
    metadata["attempts"] = outcome.attempt
    metadata["estimated_cost_usd"] = model.prices.cost_usd(outcome.usage)
    return data
