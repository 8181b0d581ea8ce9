"""The durable runner: performs the turn loop's effects as DBOS steps.

One workflow per turn (workflow id = turn id). The pure loop (``engine.loop``) decides; this
module does the I/O. Each step pairs its side effect with its database writes:

- ``reason`` step: one transaction opens the phase (``reason.started``, ...), then the model call
  (retried with back-off on transient errors), then one transaction records the answer with all
  its events, the usage and, when the answer is final, the turn's end.
- ``act`` step (one per tool call, run concurrently): the tool call, then one transaction with
  its ``tool.completed``.

Every such transaction also writes a ``turn_effects`` row keyed by (turn id, step key), so a
step that DBOS re-runs after a crash finds its recorded result instead of writing twice, and a
model or tool call that already completed is not repeated. Every transaction first checks that
the turn is still running: once cancelled, nothing more is written for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.capabilities.base import (
    CapabilityRegistry,
    Tool,
    ToolContext,
    execute_tool_call,
    is_at_most_once,
    is_transactional,
    reveal_result,
    tool_spec,
    tools_by_name,
)
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.messages import (
    JsonValue,
    Message,
    ToolCallPart,
    ToolResultPart,
    part_from_json,
    part_to_json,
)
from everloop.domain.network_access import NetworkAccess
from everloop.domain.runtime_agent import NO_CONTROLS, Controls, RuntimeAgent
from everloop.domain.timestamps import format_ts, now
from everloop.domain.usage import TokenUsage
from everloop.engine import events as ev
from everloop.engine import loop
from everloop.engine.assembly import Assembler
from everloop.engine.ports import ModelResolver, NoRemoteTools, RemoteTools, ResolvedModel
from everloop.engine.signals import Signals
from everloop.errors import EverloopError
from everloop.llm.base import Completed, ModelCallError, TextDelta, ToolSpec
from everloop.store import client_tools as client_store
from everloop.store import runtime_layers
from everloop.store import turns as turn_store
from everloop.store.db import Database
from everloop.store.event_log import append_events

log = logging.getLogger("everloop.engine")

RUN_TURN_WORKFLOW = "everloop.run_turn"
DELTA_FLUSH_SECONDS = 0.1
WAIT_RECHECK_SECONDS = 5.0
REPLAYED = "_replayed"  # marks a step result read back from turn_effects
CANCEL_POLL_SECONDS = 0.25


class TurnHalted(Exception):
    """The turn is no longer running (cancelled, or already finished): stop writing for it."""


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    default_max_iterations: int = 100
    retry_attempts: int = 4
    retry_base_seconds: float = 0.5
    retry_max_seconds: float = 20.0
    client_tool_timeout_seconds: float = 600.0
    max_concurrent_model_calls: int = 64


StepFn = Callable[..., Awaitable[Any]]


class TurnRunner:
    """Runs turns. ``step`` wraps a coroutine function as a durable step (DBOS in production)."""

    def __init__(
        self,
        db: Database,
        signals: Signals,
        capabilities: CapabilityRegistry,
        models: ModelResolver,
        settings: RunnerSettings,
        assembler: Assembler | None = None,
        remote_tools: RemoteTools | None = None,
    ) -> None:
        self._db = db
        self._signals = signals
        self._capabilities = capabilities
        self._assembler = assembler or Assembler(capabilities)
        self._remote = remote_tools or NoRemoteTools()
        self._models = models
        self._settings = settings
        self.reason_step: StepFn = self._reason
        self.act_step: StepFn = self._act
        self.finish_step: StepFn = self._finish
        self.next_turn_step: StepFn = self._next_turn
        self.collect_step: StepFn = self._collect
        self.active_turns = 0
        self._model_calls = asyncio.Semaphore(settings.max_concurrent_model_calls)
        self._wait_for_go: Callable[[float], Awaitable[object]] = asyncio.sleep
        self._wake: Callable[[str], Awaitable[None]] = _no_wake

    def wrap_steps(
        self,
        step: Callable[[str, StepFn], StepFn],
        *,
        wait_for_go: Callable[[float], Awaitable[object]],
        wake: Callable[[str], Awaitable[None]],
    ) -> None:
        """Make each step durable: ``step(name, fn)`` returns the checkpointed version.

        ``wait_for_go(timeout)`` blocks the turn (durably) until another turn of the session
        wakes it with ``wake(turn_id)``.
        """
        self.reason_step = step("everloop.reason", self._reason)
        self.act_step = step("everloop.act", self._act)
        self.finish_step = step("everloop.finish", self._finish)
        self.next_turn_step = step("everloop.next_turn", self._next_turn)
        self.collect_step = step("everloop.collect_client_results", self._collect)
        self._wait_for_go = wait_for_go
        self._wake = wake

    # -- the workflow body -----------------------------------------------------------------

    async def run_turn(self, session_id: str, turn_id: str) -> str:
        """Run one turn to its end, then wake the session's next turn; returns how it ended."""
        self.active_turns += 1
        try:
            return await self._run_turn(session_id, turn_id)
        finally:
            self.active_turns -= 1

    async def _run_turn(self, session_id: str, turn_id: str) -> str:
        while True:
            out = await self.reason_step(session_id, turn_id, None, None)
            if out.get("halted") != "waiting":
                break
            # An earlier turn of this session is still open: wait for it to wake us (the
            # timeout re-checks in case a wake-up was missed).
            await self._wait_for_go(WAIT_RECHECK_SECONDS)
        ended, last = await self._drive(session_id, turn_id, out)
        # The step that ended the turn looked up the session's next turn in its transaction;
        # when the turn stopped some other way (cancelled), look it up now.
        if "next_turn" in last:
            following = last["next_turn"]
        else:
            following = await self.next_turn_step(session_id)
        if following is not None:
            await self._wake(str(following))
        return ended

    async def _drive(
        self, session_id: str, turn_id: str, out: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        while True:
            if "halted" in out:
                return str(out["halted"]), out
            state = loop.TurnState.from_json(out["state"])
            if state.status in ("completed", "failed"):
                return state.status, out
            assert state.status == "running_tools", state.status
            started = time.monotonic()
            client = state.settings.client_side_tools
            calls = [part_to_json(c) for c in state.pending_tool_calls if c.name not in client]
            if state.settings.parallel_tool_calls:
                raw = await asyncio.gather(*(self.act_step(session_id, turn_id, c) for c in calls))
            else:
                raw = [await self.act_step(session_id, turn_id, c) for c in calls]
            if any("halted" in r for r in raw):
                return "cancelled", {}
            results = tuple(_result_from_json(r["result"]) for r in raw)
            if any(c.name in client for c in state.pending_tool_calls):
                answered = await self._await_client_results(session_id, turn_id, state.iteration)
                if answered is None:
                    return "cancelled", {}
                results += answered
            act = ev.act_completed(results=results, duration_ms=_ms_since(started))
            state, effects = loop.tools_finished(state, results, created_at=now())
            if isinstance(effects[0], loop.FailTurn):
                out = await self.finish_step(session_id, turn_id, state.to_json(), act)
            else:
                out = await self.reason_step(session_id, turn_id, state.to_json(), act)

    async def _await_client_results(
        self, session_id: str, turn_id: str, iteration: int
    ) -> tuple[ToolResultPart, ...] | None:
        """Wait (durably) until every client-side call of this act phase has an outcome: a
        posted result, a timeout, or a cancellation by a new user message. None if the turn
        stopped meanwhile."""
        while True:
            out = await self.collect_step(session_id, turn_id, iteration)
            if "halted" in out:
                return None
            if "results" in out:
                return tuple(_result_from_json(r) for r in out["results"])
            await self._wait_for_go(min(float(out["wait_seconds"]), WAIT_RECHECK_SECONDS))

    async def _collect(self, session_id: str, turn_id: str, iteration: int) -> dict[str, Any]:
        try:
            async with self._db.write() as conn:
                await self._require_running(conn, turn_id)
                calls = await client_store.calls_of(conn, turn_id, iteration)
                moment = now()
                overdue = [c for c in calls if c.status == "pending" and c.deadline <= moment]
                if overdue:
                    turn = await turn_store.get_turn(conn, turn_id)
                    assert turn is not None
                    ctx = _context(turn_id, turn.input_message_id)
                    error = "the client did not answer in time"
                    new = [
                        NewEvent("tool.completed", client_completed(c, None, error, "timeout"), ctx)
                        for c in overdue
                        if await client_store.settle(
                            conn, turn_id, c.call_id, status="expired", error=error
                        )
                    ]
                    await append_events(conn, session_id, new)
                    calls = await client_store.calls_of(conn, turn_id, iteration)
                waiting = [c for c in calls if c.status == "pending"]
                if waiting:
                    earliest = min(c.deadline for c in waiting)
                    return {"wait_seconds": max(_seconds_until(earliest), 0.05)}
                await turn_store.update_session(
                    conn, session_id, {"status": "active", "updated_at": now()}
                )
                return {
                    "results": [
                        part_to_json(ToolResultPart(c.call_id, c.name, c.result, c.error))
                        for c in calls
                    ]
                }
        except TurnHalted as halted:
            return {"halted": str(halted)}
        finally:
            self._signals.events_appended(session_id)

    async def _request_client_calls(
        self,
        conn: AsyncConnection,
        session_id: str,
        turn_id: str,
        iteration: int,
        calls: list[ToolCallPart],
    ) -> None:
        session = await turn_store.session_config(conn, session_id)
        timeouts = (
            {t.name: t.timeout_seconds for t in self._assembler.for_session(session).tools}
            if session
            else {}
        )
        pending = []
        for call in calls:
            seconds = timeouts.get(call.name) or self._settings.client_tool_timeout_seconds
            pending.append((call.id, call.name, call.arguments, _ts_after(seconds)))
        await client_store.insert_pending(
            conn, turn_id=turn_id, session_id=session_id, iteration=iteration, calls=pending
        )
        await turn_store.update_session(
            conn, session_id, {"status": "waitingfortoolresults", "updated_at": now()}
        )

    # -- reason ------------------------------------------------------------------------------

    async def _reason(
        self,
        session_id: str,
        turn_id: str,
        state_json: dict[str, Any] | None,
        act_completed: dict[str, Any] | None,
    ) -> dict[str, Any]:
        try:
            if state_json is None:
                await self._discover_remote_tools(session_id, turn_id)
            opened = await self._open_reason(session_id, turn_id, state_json, act_completed)
            if "halted" in opened:
                return opened
            state = loop.TurnState.from_json(opened["state"])
            try:
                model = await self._models.resolve(opened["org_id"], opened["model_candidates"])
            except EverloopError as exc:
                reason = exc.message
                return await self._once(
                    session_id,
                    turn_id,
                    f"reason:{state.iteration}:unavailable",
                    lambda conn: self._fail_setup(conn, session_id, turn_id, reason),
                )
            message_id = str(opened["message_id"])
            key = f"reason:{state.iteration}:done"
            if opened.get(REPLAYED):
                # This step ran before (a crash): the model call may have been recorded too.
                done, recorded = await self._recorded(turn_id, key)
                if done:
                    return _as_result(recorded)
            outcome = await self._call_model(session_id, turn_id, state, model, message_id)
            return await self._record_reason(
                session_id, turn_id, state, model, message_id, outcome, key
            )
        except TurnHalted as halted:
            return {"halted": str(halted)}

    async def _open_reason(
        self,
        session_id: str,
        turn_id: str,
        state_json: dict[str, Any] | None,
        act_completed: dict[str, Any] | None,
    ) -> dict[str, Any]:
        iteration = 1 if state_json is None else int(loop.TurnState.from_json(state_json).iteration)
        key = f"reason:{iteration}:open"

        async def write(conn: AsyncConnection) -> dict[str, Any]:
            turn = await turn_store.get_turn(conn, turn_id)
            if turn is None or turn.status not in turn_store.OPEN:
                raise TurnHalted(turn.status if turn else "missing")
            session = await turn_store.session_config(conn, session_id)
            if session is None:
                raise TurnHalted("session deleted")
            controls = await runtime_layers.turn_controls(conn, turn_id)
            context = _context(turn_id, turn.input_message_id)
            new: list[NewEvent] = []
            if state_json is None:
                claim = await turn_store.claim_turn(conn, session_id, turn_id)
                if claim not in ("claimed", "running"):
                    raise TurnHalted(claim)
                values: dict[str, Any] = {"status": "active", "updated_at": now()}
                if session.started_at is None:
                    values["started_at"] = now()
                await turn_store.update_session(conn, session_id, values)
                history, user_message = await turn_store.conversation(
                    conn, session_id, before_turn=turn_id
                )
                settings = await self._turn_settings(session, controls)
                state, _ = loop.start_turn(
                    turn_id=turn_id, history=history, user_message=user_message, settings=settings
                )
                new.append(
                    NewEvent(
                        "session.activated",
                        ev.session_activated(turn_id=turn_id, input_message_id=user_message.id),
                        context,
                    )
                )
                new.append(
                    NewEvent(
                        "turn.started",
                        ev.turn_started(
                            turn_id=turn_id,
                            input_message_id=user_message.id,
                            input_content=user_message.text,
                        ),
                        context,
                    )
                )
            else:
                state = loop.TurnState.from_json(state_json)
            if act_completed is not None:
                new.append(NewEvent("act.completed", act_completed, context))
            message_id = loop.derived_message_id(turn_id, f"reply:{state.iteration}")
            model_name = state.settings.model
            new.append(
                NewEvent(
                    "reason.started",
                    ev.reason_started(
                        model=model_name, harness_id=session.harness_id, agent_id=session.agent_id
                    ),
                    context,
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
                    context,
                )
            )
            await append_events(conn, session_id, new)
            return {
                "state": state.to_json(),
                "message_id": message_id,
                "org_id": session.organization_id,
                "model_candidates": list(
                    self._assembler.for_session(session, controls).model_candidates
                ),
            }

        return await self._once(session_id, turn_id, key, write)

    async def _turn_settings(
        self, session: turn_store.SessionConfig, controls: Controls = NO_CONTROLS
    ) -> loop.TurnSettings:
        """The turn's settings from the session's assembled RuntimeAgent (``engine.assembly``)."""
        runtime = self._assembler.for_session(session, controls)
        server_tools = self._server_tools(session, runtime)
        specs = [
            tool_spec(server_tools[t.name])
            if t.source != "client_side"
            else ToolSpec(t.name, t.description, dict(t.parameters))
            for t in runtime.tools
        ]
        # MCP tools listed by _discover_remote_tools (from the cache: no network here).
        remote = await self._remote.listed(session.organization_id, runtime)
        specs += [tool_spec(t) for name, t in remote.items() if name not in server_tools]
        model = await self._models.resolve(session.organization_id, runtime.model_candidates)
        return loop.TurnSettings(
            model=model.model_name,
            system_prompt=runtime.system_prompt,
            tools=tuple(specs),
            client_side_tools=frozenset(t.name for t in runtime.client_side_tools),
            max_iterations=runtime.max_iterations or self._settings.default_max_iterations,
            parallel_tool_calls=runtime.parallel_tool_calls is not False,
        )

    def _server_tools(
        self, session: turn_store.SessionConfig, runtime: RuntimeAgent | None = None
    ) -> dict[str, Tool]:
        """The turn's server-side tools by name: its capabilities' tools, plus built-in tools
        that a layer's ``tools`` name with ``{"type": "builtin"}``."""
        runtime = runtime or self._assembler.for_session(session)
        every = tools_by_name(t for c in self._capabilities.all() for t in c.tools)
        return {name: every[name] for name in runtime.server_tool_names}

    async def _discover_remote_tools(self, session_id: str, turn_id: str) -> None:
        """List the turn's MCP servers before its first reason transaction opens, so no
        network call runs inside a database transaction (failures only log; see
        ``capabilities.mcp``)."""
        async with self._db.read() as conn:
            session = await turn_store.session_config(conn, session_id)
            controls = await runtime_layers.turn_controls(conn, turn_id)
        if session is None:
            return
        try:
            runtime = self._assembler.for_session(session, controls)
        except EverloopError:
            return  # the reason transaction reports the broken configuration
        await self._remote.discover(session.organization_id, runtime)

    async def _call_model(
        self,
        session_id: str,
        turn_id: str,
        state: loop.TurnState,
        model: ResolvedModel,
        message_id: str,
    ) -> dict[str, Any]:
        """Call the model, retrying transient failures; deltas are written as they arrive."""
        attempt = 0
        started = time.monotonic()
        while True:
            attempt += 1
            request = loop.model_request(state, attempt=attempt)
            request = replace(request, messages=self._revealed(session_id, request.messages))
            first_token: float | None = None
            accumulated = ""
            pending = ""
            last_flush = time.monotonic()
            try:
                async with self._cancellable(turn_id), self._model_calls:
                    completed: Completed | None = None
                    async for item in model.driver.stream(request):
                        if isinstance(item, TextDelta):
                            if first_token is None:
                                first_token = time.monotonic()
                            accumulated += item.text
                            pending += item.text
                            if time.monotonic() - last_flush >= DELTA_FLUSH_SECONDS:
                                await self._write_delta(
                                    session_id,
                                    turn_id,
                                    state,
                                    message_id,
                                    pending,
                                    accumulated,
                                    attempt,
                                )
                                pending, last_flush = "", time.monotonic()
                        else:
                            completed = item
                    if completed is None:
                        raise ModelCallError(
                            "the model stream ended without an answer", retryable=True
                        )
                return {
                    "ok": True,
                    "text": completed.text,
                    "tool_calls": [part_to_json(c) for c in completed.tool_calls],
                    "usage": completed.usage.to_json(),
                    "finish_reason": completed.finish_reason,
                    "pending_delta": pending,
                    "accumulated": accumulated,
                    "attempt": attempt,
                    "duration_ms": _ms_since(started),
                    "ttft_ms": None if first_token is None else int((first_token - started) * 1000),
                }
            except ModelCallError as error:
                if not error.retryable or attempt >= self._settings.retry_attempts:
                    return {
                        "ok": False,
                        "error": error.message,
                        "status": error.status,
                        "retryable": error.retryable,
                        "attempt": attempt,
                        "duration_ms": _ms_since(started),
                    }
                delay = min(
                    self._settings.retry_base_seconds * 2 ** (attempt - 1),
                    self._settings.retry_max_seconds,
                )
                if error.retry_after is not None:
                    delay = min(max(delay, error.retry_after), self._settings.retry_max_seconds)
                log.info(
                    "turn %s: model attempt %d failed (%s); retrying in %.2fs",
                    turn_id,
                    attempt,
                    error,
                    delay,
                )
                async with self._cancellable(turn_id):
                    await asyncio.sleep(delay)

    def _revealed(self, session_id: str, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        """The history as the model reads it: tool results with a sealed value are opened here,
        in memory only (see ``reveal_result``)."""
        every = tools_by_name(t for c in self._capabilities.all() for t in c.tools)
        revealing = {name: tool for name, tool in every.items() if hasattr(tool, "reveal")}
        if not revealing:
            return messages
        return tuple(
            replace(
                message,
                content=tuple(
                    reveal_result(revealing.get(part.name or ""), part, session_id)
                    if isinstance(part, ToolResultPart)
                    else part
                    for part in message.content
                ),
            )
            if message.tool_results
            else message
            for message in messages
        )

    async def _write_delta(
        self,
        session_id: str,
        turn_id: str,
        state: loop.TurnState,
        message_id: str,
        delta: str,
        accumulated: str,
        attempt: int,
    ) -> None:
        # Deltas are written as they stream and are not part of the exactly-once record: a
        # retried call streams again under a new ``attempt``. output.message.completed is the
        # authoritative text.
        data = ev.output_message_delta(
            turn_id=turn_id, message_id=message_id, delta=delta, accumulated=accumulated
        )
        data["attempt"] = attempt
        async with self._db.write() as conn:
            if await turn_store.turn_status(conn, turn_id) != "running":
                raise TurnHalted("cancelled")
            await append_events(
                conn,
                session_id,
                [NewEvent("output.message.delta", data, _context(turn_id, state.input_message_id))],
            )
        self._signals.events_appended(session_id)

    async def _record_reason(
        self,
        session_id: str,
        turn_id: str,
        state: loop.TurnState,
        model: ResolvedModel,
        message_id: str,
        outcome: dict[str, Any],
        key: str,
    ) -> dict[str, Any]:
        context = _context(turn_id, state.input_message_id)
        created = now()
        if outcome["ok"]:
            calls = tuple(_call_from_json(c) for c in outcome["tool_calls"])
            usage = TokenUsage.from_json(outcome["usage"])
            new_state, effects = loop.model_responded(
                state,
                message_id=message_id,
                text=outcome["text"],
                tool_calls=calls,
                usage=usage,
                created_at=created,
            )
        else:
            usage = TokenUsage()
            calls = ()
            error = ModelCallError(
                outcome["error"], status=outcome["status"], retryable=outcome["retryable"]
            )
            new_state, effects = loop.model_failed(state, error, created_at=created)
        effect = effects[0]

        async def write(conn: AsyncConnection) -> dict[str, Any]:
            await self._require_running(conn, turn_id)
            new: list[NewEvent] = []
            if outcome["ok"]:
                if outcome["pending_delta"]:
                    delta = ev.output_message_delta(
                        turn_id=turn_id,
                        message_id=message_id,
                        delta=outcome["pending_delta"],
                        accumulated=outcome["accumulated"],
                    )
                    delta["attempt"] = outcome["attempt"]
                    new.append(NewEvent("output.message.delta", delta, context))
                reply = new_state.messages[-1]
                new.append(
                    NewEvent(
                        "output.message.completed",
                        ev.output_message_completed(
                            message=reply, model=model.model_name, usage=usage
                        ),
                        context,
                    )
                )
            new.append(
                NewEvent(
                    "llm.generation", self._generation(state, model, outcome, calls, usage), context
                )
            )
            new.append(
                NewEvent(
                    "reason.completed",
                    ev.reason_completed(
                        success=bool(outcome["ok"]),
                        text=outcome.get("text"),
                        tool_call_count=len(calls),
                        usage=usage,
                        duration_ms=outcome["duration_ms"],
                        error=outcome.get("error"),
                    ),
                    context,
                )
            )
            await turn_store.add_session_usage(conn, session_id, usage)
            match effect:
                case loop.RunTools(calls=run_calls):
                    client = state.settings.client_side_tools
                    server_calls = [c for c in run_calls if c.name not in client]
                    client_calls = [c for c in run_calls if c.name in client]
                    new.append(
                        NewEvent("act.started", ev.act_started(tool_calls=run_calls), context)
                    )
                    new.extend(
                        NewEvent("tool.started", ev.tool_started(tool_call=c), context)
                        for c in server_calls
                    )
                    if client_calls:
                        await self._request_client_calls(
                            conn, session_id, turn_id, state.iteration, client_calls
                        )
                        new.append(
                            NewEvent(
                                "tool.call_requested",
                                ev.tool_call_requested(tool_calls=tuple(client_calls)),
                                context,
                            )
                        )
                    await append_events(conn, session_id, new)
                case loop.CompleteTurn(final_message=final):
                    await append_events(conn, session_id, new)
                    await self._end_turn(
                        conn,
                        session_id,
                        turn_id,
                        new_state,
                        context,
                        final,
                        None,
                        outcome.get("ttft_ms"),
                    )
                case loop.FailTurn():
                    await append_events(conn, session_id, new)
                    await self._end_turn(
                        conn, session_id, turn_id, new_state, context, None, effect, None
                    )
                case loop.CallModel():
                    raise AssertionError(
                        "a model answer never asks for another model call directly"
                    )
            result: dict[str, Any] = {"state": new_state.to_json()}
            if new_state.status in ("completed", "failed"):
                result["next_turn"] = await turn_store.next_open_turn(conn, session_id)
            return result

        return await self._once(session_id, turn_id, key, write)

    def _generation(
        self,
        state: loop.TurnState,
        model: ResolvedModel,
        outcome: dict[str, Any],
        calls: tuple[ToolCallPart, ...],
        usage: TokenUsage,
    ) -> dict[str, Any]:
        data = ev.llm_generation(
            model=model.model_name,
            system_prompt=state.settings.system_prompt,
            # The turn's own messages; earlier turns are in the log already (this keeps the
            # event size independent of the session's length). prompt_message_count says how
            # many messages the model actually saw.
            messages=state.turn_messages,
            tools=state.settings.tools,
            text=outcome.get("text"),
            tool_calls=calls,
            usage=usage,
            success=bool(outcome["ok"]),
            provider=model.provider_name or model.driver_kind,
            duration_ms=outcome["duration_ms"],
            time_to_first_token_ms=outcome.get("ttft_ms"),
            finish_reason=outcome.get("finish_reason"),
            error=outcome.get("error"),
        )
        metadata = data["metadata"]
        assert isinstance(metadata, dict)
        metadata["prompt_message_count"] = len(state.messages)
        metadata["model_id"] = model.model_id
        metadata["provider_id"] = model.provider_id
        metadata["attempts"] = outcome["attempt"]
        prices = model.prices
        metadata["estimated_cost_usd"] = round(
            (
                usage.input_tokens * prices.input
                + usage.output_tokens * prices.output
                + usage.cache_read_tokens * prices.cache_read
                + usage.cache_creation_tokens * prices.cache_write
            )
            / 1_000_000,
            10,
        )
        return data

    async def _end_turn(
        self,
        conn: AsyncConnection,
        session_id: str,
        turn_id: str,
        state: loop.TurnState,
        context: EventContext,
        final: Message | None,
        failure: loop.FailTurn | None,
        ttft_ms: int | None,
    ) -> None:
        """Write the turn's terminal events and return the session to idle (caller's tx)."""
        if not await turn_store.move_turn(
            conn,
            turn_id,
            to="completed" if failure is None else "failed",
            allowed_from=("running",),
        ):
            raise TurnHalted("cancelled")
        new: list[NewEvent] = []
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
            new.append(
                NewEvent(
                    "turn.completed",
                    ev.turn_completed(
                        turn_id=turn_id,
                        iterations=state.iteration,
                        usage=state.usage,
                        final_message_id=final.id,
                        final_answer=final.text,
                        duration_ms=None,
                        time_to_first_token_ms=ttft_ms,
                        tool_call_count=state.tool_call_count,
                        llm_call_count=state.llm_call_count,
                    ),
                    context,
                )
            )
            last_text = final.text
        total = await turn_store.session_usage(conn, session_id)
        new.append(
            NewEvent(
                "session.idled",
                ev.session_idled(turn_id=turn_id, iterations=state.iteration, usage=total),
                context,
            )
        )
        await append_events(conn, session_id, new)
        values: dict[str, Any] = {"status": "idle", "updated_at": now(), "finished_at": now()}
        if last_text:
            values["output_preview"] = ev.preview(last_text)
        await turn_store.update_session(conn, session_id, values)

    # -- act ---------------------------------------------------------------------------------

    async def _act(
        self, session_id: str, turn_id: str, call_json: dict[str, Any]
    ) -> dict[str, Any]:
        call = _call_from_json(call_json)
        key = f"tool:{call.id}"
        try:
            done, recorded = await self._recorded(turn_id, key)
            if done:
                return _as_result(recorded)
            async with self._db.read() as conn:
                turn = await turn_store.get_turn(conn, turn_id)
                session = await turn_store.session_config(conn, session_id)
            if turn is None or turn.status != "running" or session is None:
                raise TurnHalted(turn.status if turn else "missing")
            try:
                runtime = self._assembler.for_session(session)
                tool = self._server_tools(session, runtime).get(call.name)
                if tool is None:  # an MCP tool (connects if its server is not listed yet)
                    tool = await self._remote.find(session.organization_id, runtime, call.name)
                # The session's effective network access, for tools that make outbound requests.
                access = runtime.network_access
            except EverloopError:
                tool, access = None, NetworkAccess(allowed=())
            started = time.monotonic()
            org_id = session.organization_id
            result: ToolResultPart | None = None
            if not is_transactional(tool):
                context = ToolContext(session_id, org_id, turn_id, call.id, network_access=access)
                result = await self._interrupted(tool, call, turn_id) or await self._run_tool(
                    tool, call, context, turn_id
                )

            async def write(conn: AsyncConnection) -> dict[str, Any]:
                await self._require_running(conn, turn_id)
                outcome = result
                if outcome is None:
                    # A database-only tool: its writes share this transaction.
                    savepoint = await conn.begin_nested()
                    context = ToolContext(
                        session_id, org_id, turn_id, call.id, connection=conn, network_access=access
                    )
                    outcome = await self._run_tool(tool, call, context, turn_id)
                    if outcome.error is None:
                        await savepoint.commit()
                    else:
                        await savepoint.rollback()
                duration = _ms_since(started)
                data = ev.tool_completed(tool_call=call, result=outcome, duration_ms=duration)
                await append_events(
                    conn,
                    session_id,
                    [NewEvent("tool.completed", data, _context(turn_id, turn.input_message_id))],
                )
                return {"result": part_to_json(outcome)}

            return await self._once(session_id, turn_id, key, write)
        except TurnHalted as halted:
            return {"halted": str(halted)}

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
            async with self._db.write() as conn:
                done, _ = await turn_store.recorded_effect(conn, turn_id, key)
                if not done:
                    await turn_store.record_effect(conn, turn_id, key, {"started_at": now()})
                    return None
        except IntegrityError:
            pass  # another run of this step recorded the start first
        return ToolResultPart(
            call.id,
            call.name,
            None,
            "the call was interrupted (everloop restarted while it ran) and this tool is not "
            "idempotent, so it was not repeated: its outcome is unknown. Check its effect "
            "before calling it again.",
        )

    async def _run_tool(
        self, tool: Tool | None, call: ToolCallPart, context: ToolContext, turn_id: str
    ) -> ToolResultPart:
        try:
            async with self._cancellable(turn_id):
                return await execute_tool_call(tool, call, context)
        except (TurnHalted, asyncio.CancelledError):
            raise
        except Exception as exc:  # a tool bug is a tool error for the model, not a crash
            log.exception("tool %s raised", call.name)
            return ToolResultPart(
                call.id, call.name, None, f"the tool failed unexpectedly: {type(exc).__name__}"
            )

    # -- finish (a failure decided between steps, e.g. the iteration limit) -----------------

    async def _finish(
        self,
        session_id: str,
        turn_id: str,
        state_json: dict[str, Any],
        act_completed: dict[str, Any],
    ) -> dict[str, Any]:
        state = loop.TurnState.from_json(state_json)
        effect = loop.pending_effects(state)[0]
        assert isinstance(effect, loop.FailTurn)

        async def write(conn: AsyncConnection) -> dict[str, Any]:
            await self._require_running(conn, turn_id)
            context = _context(turn_id, state.input_message_id)
            await append_events(
                conn, session_id, [NewEvent("act.completed", act_completed, context)]
            )
            await self._end_turn(conn, session_id, turn_id, state, context, None, effect, None)
            following = await turn_store.next_open_turn(conn, session_id)
            return {"state": state.to_json(), "next_turn": following}

        try:
            return await self._once(session_id, turn_id, "finish", write)
        except TurnHalted as halted:
            return {"halted": str(halted)}

    async def _next_turn(self, session_id: str) -> str | None:
        async with self._db.read() as conn:
            return await turn_store.next_open_turn(conn, session_id)

    # -- plumbing ----------------------------------------------------------------------------

    async def _require_running(self, conn: AsyncConnection, turn_id: str) -> None:
        status = await turn_store.turn_status(conn, turn_id)
        if status != "running":
            raise TurnHalted(status or "missing")

    async def _recorded(self, turn_id: str, key: str) -> tuple[bool, JsonValue]:
        async with self._db.read() as conn:
            return await turn_store.recorded_effect(conn, turn_id, key)

    async def _once(
        self,
        session_id: str,
        turn_id: str,
        key: str,
        write: Callable[[AsyncConnection], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """Run ``write`` and record its result under ``key`` in one transaction, at most once."""
        try:
            async with self._db.write() as conn:
                done, recorded = await turn_store.recorded_effect(conn, turn_id, key)
                if done:
                    return {**_as_result(recorded), REPLAYED: True}
                try:
                    result = await write(conn)
                except EverloopError as exc:
                    result = await self._fail_setup(conn, session_id, turn_id, exc.message)
                await turn_store.record_effect(conn, turn_id, key, result)
        except IntegrityError:
            # Another execution of this step committed first: its result is the result.
            done, recorded = await self._recorded(turn_id, key)
            if not done:
                raise
            return _as_result(recorded)
        self._signals.events_appended(session_id)
        return result

    async def _fail_setup(
        self, conn: AsyncConnection, session_id: str, turn_id: str, reason: str
    ) -> dict[str, Any]:
        """The turn cannot start (its configuration is broken): fail it with a readable message."""
        turn = await turn_store.get_turn(conn, turn_id)
        if turn is None or not await turn_store.move_turn(
            conn, turn_id, to="failed", allowed_from=turn_store.OPEN
        ):
            return {"halted": "failed"}
        context = _context(turn_id, turn.input_message_id)
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
        )
        await turn_store.update_session(
            conn,
            session_id,
            {"status": "idle", "updated_at": now(), "output_preview": ev.preview(text)},
        )
        return {"halted": "failed"}

    def _cancellable(self, turn_id: str) -> _CancelScope:
        return _CancelScope(self._db, self._signals, turn_id)


class _CancelScope:
    """Run a block while watching the turn: if it is cancelled, the block is interrupted and
    ``TurnHalted`` is raised. The in-process signal makes this immediate; the database poll
    covers a cancel recorded by another process."""

    def __init__(self, db: Database, signals: Signals, turn_id: str) -> None:
        self._db = db
        self._signals = signals
        self._turn_id = turn_id
        self._watcher: asyncio.Task[None] | None = None
        self._cancelled = False

    async def __aenter__(self) -> _CancelScope:
        task = asyncio.current_task()
        assert task is not None

        async def watch() -> None:
            while True:
                await self._signals.wait_for_cancel(self._turn_id, CANCEL_POLL_SECONDS)
                async with self._db.read() as conn:
                    status = await turn_store.turn_status(conn, self._turn_id)
                if status != "running":
                    self._cancelled = True
                    task.cancel()
                    return

        self._watcher = asyncio.create_task(watch())
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        assert self._watcher is not None
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher
        if self._cancelled:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            raise TurnHalted("cancelled")
        return False


def _as_result(value: JsonValue) -> dict[str, Any]:
    """A step result read back from ``turn_effects`` (always a JSON object)."""
    assert isinstance(value, dict), value
    return value


ToolStatus = Literal["success", "error", "timeout", "cancelled"]


def client_completed(
    call: client_store.ClientCall, result: JsonValue, error: str | None, status: ToolStatus
) -> dict[str, Any]:
    """``tool.completed`` data for a client-side call's outcome."""
    part = ToolResultPart(call.call_id, call.name, result, error)
    tool_call = ToolCallPart(call.call_id, call.name, call.arguments)
    return ev.tool_completed(
        tool_call=tool_call,
        result=part,
        duration_ms=None,
        status=status,
    )


def _ts_after(seconds: float) -> str:
    return format_ts(datetime.now(UTC) + timedelta(seconds=seconds))


def _seconds_until(ts: str) -> float:
    moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return (moment - datetime.now(UTC)).total_seconds()


async def _no_wake(_turn_id: str) -> None:
    return None


def _context(turn_id: str, input_message_id: str) -> EventContext:
    return EventContext(
        turn_id=turn_id, input_message_id=input_message_id, exec_id=None, trace_id=turn_id
    )


def _call_from_json(value: dict[str, Any]) -> ToolCallPart:
    part = part_from_json(value)
    assert isinstance(part, ToolCallPart)
    return part


def _result_from_json(value: dict[str, Any]) -> ToolResultPart:
    part = part_from_json(value)
    assert isinstance(part, ToolResultPart)
    return part


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


__all__ = ["RUN_TURN_WORKFLOW", "RunnerSettings", "TurnHalted", "TurnRunner", "ids", "replace"]
