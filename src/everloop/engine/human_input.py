"""A person in the loop: the act phase's calls that wait for someone outside the turn.

The reason phase that records the model's tool calls (``engine.reason``) hands them here, in its
own transaction, and gets back the events that open the act phase. Three kinds of call wait,
all recorded as pending rows of ``client_tool_calls`` (``store.client_tools``) with a deadline,
the session set to ``waitingfortoolresults``:

- client-side tools (``engine.client_wait``): ``tool.call_requested``;
- ``ask_user`` questions: ``tool.call_requested`` with ``kind: "ask_user"`` and the normalized
  ``questions`` (answered by ``POST .../question-answers``);
- server-side calls the ``tool_approval`` capability holds back: ``tool.approval_requested``
  (decided by ``POST .../tool-approvals``); they get no ``tool.started`` until approved.

The runner then waits for every one of them exactly as for client-side results
(``engine.client_wait.collect``) and runs the approved calls through the ordinary act step
(``engine.act``), whose record makes them exactly-once across a crash: an approval is a
committed row, so a restart neither loses it nor runs the call twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import SideEffect, side_effect_of
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.human_input import (
    ASK_USER,
    ASK_USER_CAPABILITY,
    ASK_USER_HINT,
    TOOL_APPROVAL_CAPABILITY,
    ApprovalPolicy,
    BadQuestions,
    normalize_questions,
)
from everloop.domain.messages import ToolCallPart, ToolResultPart
from everloop.domain.runtime_agent import RuntimeAgent
from everloop.domain.timestamps import format_ts, now
from everloop.engine import events as ev
from everloop.engine.client_wait import request_client_calls
from everloop.engine.context import TurnContext
from everloop.engine.env import TurnEnv
from everloop.llm.base import ToolSpec
from everloop.store import client_tools as client_store
from everloop.store import turns as turn_store


def offered(
    runtime: RuntimeAgent, specs: list[ToolSpec], client_side: frozenset[str]
) -> tuple[list[ToolSpec], frozenset[str]]:
    """The tool specs the model is offered and the tools the turn hands out: ``ask_user`` is
    offered only with the client hint ``ask_user``, and is answered outside the turn."""
    if not any(c.ref == ASK_USER_CAPABILITY for c in runtime.capabilities):
        return specs, client_side
    if not runtime.hints.get(ASK_USER_HINT):
        return [s for s in specs if s.name != ASK_USER], client_side
    return specs, client_side | {ASK_USER}


def approval_policy(runtime: RuntimeAgent | None) -> ApprovalPolicy | None:
    """The ``tool_approval`` capability's policy, if the capability is active."""
    if runtime is None:
        return None
    for capability in runtime.capabilities:
        if capability.ref == TOOL_APPROVAL_CAPABILITY:
            return ApprovalPolicy.from_config(capability.config)
    return None


def _capability_config(runtime: RuntimeAgent | None, ref: str) -> dict[str, object]:
    for capability in runtime.capabilities if runtime else ():
        if capability.ref == ref and capability.config:
            return dict(capability.config)
    return {}


async def park_calls(
    conn: AsyncConnection,
    env: TurnEnv,
    context: TurnContext,
    iteration: int,
    calls: tuple[ToolCallPart, ...],
    client_side: frozenset[str],
    ctx: EventContext,
) -> list[NewEvent]:
    """Record the calls that wait outside the turn (see the module docstring); the events that
    open the act phase, in order."""
    questions = [c for c in calls if c.name == ASK_USER and c.name in client_side]
    client = [c for c in calls if c.name in client_side and c.name != ASK_USER]
    server = [c for c in calls if c.name not in client_side]
    policy = approval_policy(context.runtime)
    gated = [c for c in server if policy and policy.requires(c.name, _risk(env, context, c))]
    new = [NewEvent("act.started", ev.act_started(tool_calls=calls), ctx)]
    new.extend(
        NewEvent("tool.started", ev.tool_started(tool_call=c), ctx)
        for c in server
        if c not in gated
    )
    waiting = False
    if client:
        await request_client_calls(conn, env, context, iteration, client)
        new.append(
            NewEvent("tool.call_requested", ev.tool_call_requested(tool_calls=tuple(client)), ctx)
        )
        waiting = True
    config = _capability_config(context.runtime, ASK_USER_CAPABILITY)
    seconds = _seconds(config.get("timeout_seconds"), env.settings.client_tool_timeout_seconds)
    for call in questions:
        deadline = _ts_after(seconds)
        await _insert(conn, context, iteration, call, deadline, client_store.QUESTION)
        try:
            normalized = normalize_questions(call.arguments)
        except BadQuestions as bad:
            # The model is told at once; nobody is asked.
            await client_store.settle(
                conn, context.turn_id, call.id, status="answered", error=str(bad)
            )
            part = ToolResultPart(call.id, call.name, None, str(bad))
            done = ev.tool_completed(tool_call=call, result=part, duration_ms=None)
            new.append(NewEvent(ev.TOOL_COMPLETED, done, ctx))
            continue
        data = ev.questions_requested(tool_call=call, questions=normalized, expires_at=deadline)
        new.append(NewEvent(ev.TOOL_CALL_REQUESTED, data, ctx))
        waiting = True
    if gated:
        assert policy is not None
        seconds = _seconds(policy.timeout_seconds, env.settings.approval_timeout_seconds)
        deadline = _ts_after(seconds)
        for call in gated:
            await _insert(conn, context, iteration, call, deadline, client_store.APPROVAL)
        data = ev.approval_requested(tool_calls=tuple(gated), expires_at=deadline)
        new.append(NewEvent(ev.TOOL_APPROVAL_REQUESTED, data, ctx))
        waiting = True
    if waiting:
        await turn_store.update_session(
            conn, context.session_id, {"status": "waitingfortoolresults", "updated_at": now()}
        )
    return new


async def waits_for_approval(env: TurnEnv, context: TurnContext, iteration: int) -> set[str]:
    """The ids of the act phase's calls recorded as waiting for approval. Read only where
    there can be any: the turn's policy is on, or the turn was started by another process (its
    calls were parked under the configuration it had then)."""
    if context.fresh and approval_policy(context.runtime) is None:
        return set()
    async with env.db.read() as conn:
        calls = await client_store.calls_of(conn, context.turn_id, iteration)
    return {c.call_id for c in calls if c.kind == client_store.APPROVAL}


def _risk(env: TurnEnv, context: TurnContext, call: ToolCallPart) -> str | None:
    """The risk level of the tool ``call`` names: its capability's; an MCP tool that is not
    safe to repeat is ``high``, any other ``low`` (from the listing the turn offered the model;
    no I/O here: this runs inside the reason phase's transaction)."""
    runtime = context.runtime
    if runtime is None:
        return None
    for tool in runtime.tools:
        if tool.name == call.name and tool.capability_id is not None:
            if tool.capability_id not in env.capabilities:
                return None
            return env.capabilities.get(tool.capability_id).risk_level
    found = (context.remote_tools or {}).get(call.name)
    if found is None:
        return "high"  # not a capability's tool, and not known safe
    return "high" if side_effect_of(found) is SideEffect.AT_MOST_ONCE else "low"


async def _insert(
    conn: AsyncConnection,
    context: TurnContext,
    iteration: int,
    call: ToolCallPart,
    deadline: str,
    kind: str,
) -> None:
    await client_store.insert_pending(
        conn,
        turn_id=context.turn_id,
        session_id=context.session_id,
        iteration=iteration,
        calls=[(call.id, call.name, call.arguments, deadline)],
        kind=kind,
    )


def _seconds(configured: object, default: float) -> float:
    if isinstance(configured, int | float) and not isinstance(configured, bool) and configured > 0:
        return float(configured)
    return default


def _ts_after(seconds: float) -> str:
    return format_ts(datetime.now(UTC) + timedelta(seconds=seconds))
