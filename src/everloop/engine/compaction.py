"""Compaction: keep a long session's prompt inside its model's context window.

Before a model call (``ReasonPhase.reason``), when the session has the ``compaction``
capability and its model's window is known, the prompt is counted (``llm.tokens``; corrected
by what the provider reported for earlier prompts). Past ``threshold`` of the window, the
oldest whole turns before the running one are summarised by a model (the turn's, or the
capability's ``model_id``) and replaced, in the model's view only, by that summary; the most
recent turns that fit in ``keep_recent`` of the window stay verbatim. Whole turns are the unit,
so a tool call is never separated from its result, and the running turn is never compacted.

The event log is untouched (append-only). The checkpoint is an event, ``context.compacted``
(id ``cmp_...``, the turns and sequences it covers, the summary, tokens before and after),
written with the step record that moves the turn onto it (``TurnState.basis``), so later
calls and later turns read their history from the newest checkpoint (``engine.context``).

It is a durable step (``compact:<iteration>``): a crash before the record leaves no
checkpoint (the summary is asked for again), one after it finds the record (no second
checkpoint). ``context.compacting`` is written before the summary call, also once. A summary
call that fails is logged and the model call goes ahead uncompacted: compaction saves a turn,
it never fails one.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.event_log import NewEvent
from everloop.domain.messages import (
    JsonObject,
    Message,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    json_text,
)
from everloop.domain.usage import TokenUsage
from everloop.engine import loop
from everloop.engine.context import Conversation, TurnContext, summary_message
from everloop.engine.env import TurnEnv
from everloop.engine.ports import ResolvedModel
from everloop.engine.steps import Advanced, StepRecorder, StepResult, event_context, running
from everloop.errors import EverloopError
from everloop.llm.base import Completed, ModelCallError, ModelRequest
from everloop.store import turns as turn_store
from everloop.store.event_log import append_events

log = logging.getLogger("everloop.engine")

COMPACTION_CAPABILITY = "compaction"
STRATEGY = "summarization"
_PART_CHARS = 2_000  # of one message part, in what the summariser reads
_SHORT_PART_CHARS = 400  # when the long form would not fit the summariser's window

SUMMARY_PROMPT = (
    "You compact a conversation between a user and an AI agent so the agent can continue it "
    "without the full transcript. Write a faithful summary of what was asked, decided and "
    "done: the user's goals and constraints, facts and figures established, tool calls that "
    "matter and what they returned, files or resources created, open questions and the next "
    "steps. Keep names, ids, numbers and paths exactly. Write it as notes to yourself; do not "
    "address the user. If a previous summary is given, fold it in."
)


@dataclass(frozen=True, slots=True)
class CompactionConfig:
    """The ``compaction`` capability's config (``CONFIG_SCHEMA`` in
    ``capabilities.compaction``); defaults for what it leaves out."""

    threshold: float = 0.8  # of the context window, counted before the call
    keep_recent: float = 0.25  # of the window, kept verbatim as the newest whole turns
    summary_max_tokens: int = 2_000
    model_id: str | None = None

    @classmethod
    def of(cls, context: TurnContext) -> CompactionConfig | None:
        """The turn's config; None when the session does not have the capability."""
        runtime = context.runtime
        if runtime is None:
            return None
        for capability in runtime.capabilities:
            if capability.ref == COMPACTION_CAPABILITY:
                return cls.from_config(capability.config or {})
        return None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CompactionConfig:
        model_id = config.get("model_id")
        given = {
            key: config[key]
            for key in ("threshold", "keep_recent", "summary_max_tokens")
            if isinstance(config.get(key), int | float)
        }
        return cls(**given, model_id=model_id if isinstance(model_id, str) and model_id else None)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a compaction would replace: ``compacted`` turns (after the basis's summary) and the
    ``kept`` ones, each (turn id, messages), oldest first."""

    conversation: Conversation
    compacted: tuple[tuple[str, tuple[Message, ...]], ...]
    kept: tuple[tuple[str, tuple[Message, ...]], ...]
    tokens_before: int


class Compactor:
    def __init__(self, env: TurnEnv, steps: StepRecorder) -> None:
        self._env = env
        self._steps = steps

    async def before_call(
        self,
        context: TurnContext,
        state: loop.TurnState,
        model: ResolvedModel,
        *,
        replayed: bool,
    ) -> loop.TurnState:
        """``state``, or ``state`` moved onto a new checkpoint when its prompt is over the
        threshold (see the module docstring). ``replayed``: the reason phase was opened by an
        earlier run, which may have compacted already."""
        context.counted_prompt = None
        config = CompactionConfig.of(context)
        window = model.context_window
        if config is None or window is None:
            return state
        key = f"compact:{state.iteration}"
        if replayed:
            recorded = await self._steps.replay(context, key)
            if isinstance(recorded, Advanced):
                return recorded.state
        counted = self._counted(model, state)
        context.counted_prompt = counted
        tokens = self._env.tokens.calibrated(model.model_name, counted)
        if tokens <= config.threshold * window:
            return state
        plan = await self._plan(context, state, model, config, window, tokens)
        if plan is None:
            log.warning(
                "turn %s: prompt of ~%d tokens is over %d%% of the %d-token window and has no "
                "earlier turn left to compact",
                context.turn_id,
                tokens,
                int(config.threshold * 100),
                window,
            )
            return state
        return await self._compact(context, state, model, config, plan, key)

    def observe(self, context: TurnContext, model: ResolvedModel, usage: TokenUsage) -> None:
        """The provider's count of the prompt just sent: corrects later estimates."""
        if context.counted_prompt is not None and usage.input_tokens:
            self._env.tokens.observe(model.model_name, context.counted_prompt, usage.input_tokens)
        context.counted_prompt = None

    def _counted(self, model: ResolvedModel, state: loop.TurnState) -> int:
        settings = state.settings
        return self._env.tokens.prompt(
            model.model_name, settings.system_prompt, settings.tools, state.messages
        ).total

    def _tokens(self, model: ResolvedModel, state: loop.TurnState) -> int:
        return self._env.tokens.calibrated(model.model_name, self._counted(model, state))

    async def _plan(
        self,
        context: TurnContext,
        state: loop.TurnState,
        model: ResolvedModel,
        config: CompactionConfig,
        window: int,
        tokens: int,
    ) -> _Plan | None:
        async with self._env.db.read() as conn:
            conversation = await self._env.transcripts.conversation(
                conn, context.session_id, before_turn=context.turn_id, basis=state.basis
            )
        counter, name = self._env.tokens, model.model_name
        budget = config.keep_recent * window
        turns = conversation.turns
        kept_from, kept_tokens = len(turns), 0
        while kept_from > 0:
            size = counter.calibrated(name, counter.messages(name, turns[kept_from - 1][1]))
            if kept_tokens + size > budget:
                break
            kept_tokens += size
            kept_from -= 1
        if kept_from == 0:
            return None
        return _Plan(conversation, turns[:kept_from], turns[kept_from:], tokens)

    async def _compact(
        self,
        context: TurnContext,
        state: loop.TurnState,
        model: ResolvedModel,
        config: CompactionConfig,
        plan: _Plan,
        key: str,
    ) -> loop.TurnState:
        ctx = event_context(context.turn_id, context.input_message_id)
        messages_before = len(state.messages)

        async def starting(conn: AsyncConnection) -> StepResult:
            data = {
                "reason": "proactive_budget",
                "strategy": STRATEGY,
                "messages_before": messages_before,
                "tokens_before": plan.tokens_before,
            }
            new = [NewEvent("context.compacting", data, ctx)]
            await append_events(conn, context.session_id, new, guard=running(context.turn_id))
            return Advanced(state)

        await self._steps.run(context, f"{key}:start", starting)
        started = time.monotonic()
        try:
            summariser = (
                await self._env.models.resolve(context.org_id, (config.model_id,))
                if config.model_id
                else model
            )
            summary, usage = await self._summarise(context, summariser, config, plan)
        except (ModelCallError, EverloopError) as exc:
            log.warning(
                "turn %s: compaction skipped: the summary call failed: %s", context.turn_id, exc
            )
            return state
        duration_ms = int((time.monotonic() - started) * 1000)
        checkpoint_id = _checkpoint_id(context.turn_id, state.iteration)
        history = (
            summary_message(checkpoint_id, summary),
            *(m for _, messages in plan.kept for m in messages),
        )
        compacted = loop.history_replaced(state, history, checkpoint_id)
        counted_after = self._counted(model, compacted)
        tokens_after = self._env.tokens.calibrated(model.model_name, counted_after)
        through_turn = plan.compacted[-1][0]

        async def write(conn: AsyncConnection) -> StepResult:
            spans = await turn_store.turn_sequences(
                conn, context.session_id, (plan.compacted[0][0], through_turn)
            )
            data: JsonObject = {
                "checkpoint_id": checkpoint_id,
                "reason": "proactive_budget",
                "strategy_used": STRATEGY,
                "steps": [
                    {
                        "strategy": STRATEGY,
                        "messages_after": len(compacted.messages),
                        "duration_ms": duration_ms,
                    }
                ],
                "messages_before": messages_before,
                "messages_after": len(compacted.messages),
                "tokens_before": plan.tokens_before,
                "tokens_after": tokens_after,
                "duration_ms": duration_ms,
                "previous_checkpoint_id": state.basis,
                "from_turn_id": plan.compacted[0][0],
                "through_turn_id": through_turn,
                "from_sequence": spans[0],
                "through_sequence": spans[1],
                "turns_compacted": len(plan.compacted),
                "turns_kept": len(plan.kept),
                "summary": summary,
                "model": summariser.model_name,
                "usage": usage.to_json(),
            }
            await turn_store.add_session_usage(
                conn, context.session_id, usage, guard=running(context.turn_id)
            )
            new = [NewEvent("context.compacted", data, ctx)]
            new.extend(
                await self._env.budgets.charge(
                    conn,
                    context.session_id,
                    ref_id=f"{context.turn_id}:{key}",
                    usage=usage,
                    cost_usd=summariser.prices.cost_usd(usage),
                    context=ctx,
                )
            )
            await append_events(conn, context.session_id, new)
            return Advanced(compacted)

        result, _ = await self._steps.run(context, key, write)
        assert isinstance(result, Advanced), result
        context.history, context.history_basis = history, checkpoint_id
        context.counted_prompt = counted_after
        return result.state

    async def _summarise(
        self,
        context: TurnContext,
        model: ResolvedModel,
        config: CompactionConfig,
        plan: _Plan,
    ) -> tuple[str, TokenUsage]:
        counter = self._env.tokens
        window = model.context_window
        text = _render(plan, _PART_CHARS)
        if window is not None and counter.text(model.model_name, text) > 0.8 * window:
            text = _render(plan, _SHORT_PART_CHARS)
        # The drivers take their output limit from the model's settings, not per request: the
        # length is asked for in the prompt, and ``_bounded`` holds the summary to it.
        limit = f" Keep it under {config.summary_max_tokens} tokens."
        request = ModelRequest(
            model=model.model_name,
            system_prompt=SUMMARY_PROMPT + limit,
            messages=(Message(_request_id(context.turn_id), "user", (TextPart(text),)),),
        )
        completed: Completed | None = None
        async with self._env.cancellable(context.turn_id), self._env.model_calls:
            async for item in model.driver.stream(request):
                if isinstance(item, Completed):
                    completed = item
        if completed is None or not completed.text.strip():
            raise ModelCallError("the summary call gave no text", retryable=False)
        return _bounded(completed.text.strip(), config.summary_max_tokens), completed.usage


def _render(plan: _Plan, part_chars: int) -> str:
    """The compacted turns as a plain transcript for the summariser (one user message, so no
    provider sees a tool result without its call)."""
    lines: list[str] = []
    summary = plan.conversation.summary
    if summary is not None:
        lines += ["# Summary so far", summary.text, ""]
    lines.append("# Conversation to fold into the summary")
    for number, (_, messages) in enumerate(plan.compacted, start=1):
        lines.append(f"## Turn {number}")
        for message in messages:
            for part in message.content:
                lines.append(_part_line(message.role, part, part_chars))
    return "\n".join(lines)


def _part_line(role: str, part: object, limit: int) -> str:
    match part:
        case TextPart(text=text):
            who = "User" if role == "user" else "Agent"
            return f"{who}: {_cut(text, limit)}"
        case ToolCallPart(name=name, arguments=arguments):
            return f"Agent called {name}({_cut(json_text(arguments), limit)})"
        case ToolResultPart(name=name, result=result, error=error):
            if error is not None:
                return f"Tool {name or ''} failed: {_cut(error, limit)}"
            shown = result if isinstance(result, str) else json_text(result)
            return f"Tool {name or ''} returned: {_cut(shown, limit)}"
    return f"[{type(part).__name__}]"


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} [... {len(text) - limit} characters left out ...] {text[-half:]}"


def _bounded(summary: str, max_tokens: int) -> str:
    """The summary cut to about ``max_tokens`` (a model that ignores ``max_tokens``, or a
    simulator, must not grow the window it is meant to shrink)."""
    limit = max_tokens * 4
    return summary if len(summary) <= limit else summary[:limit] + " [summary cut]"


def _request_id(turn_id: str) -> str:
    return loop.derived_message_id(turn_id, "compaction-request")


def _checkpoint_id(turn_id: str, iteration: int) -> str:
    return "cmp_" + hashlib.sha256(f"{turn_id}:compact:{iteration}".encode()).hexdigest()[:32]
