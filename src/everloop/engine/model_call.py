"""One model call of a reason phase: retries of transient errors, deltas streamed as they arrive.

What the model says passes two filters before anything is written: the secret redactor (the
values of the session's secrets become ``[redacted:NAME]``, ``domain.secret_refs``) and the
``output`` guardrails (``engine.guardrails``). Both hold back a tail that could be the start of
what they look for, so a value or a blocked word split across deltas is caught before any of it
is written. Deltas are written at most every ``DELTA_FLUSH_SECONDS``; the answer itself is
recorded by the reason phase (``engine.reason``) in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field, replace

from everloop.domain.event_log import NewEvent
from everloop.domain.messages import JsonObject, ToolCallPart, message_to_json
from everloop.domain.secret_refs import Redactor, StreamRedactor, map_strings
from everloop.domain.usage import TokenUsage
from everloop.engine import events as ev
from everloop.engine import loop
from everloop.engine.context import TurnContext
from everloop.engine.env import TurnEnv
from everloop.engine.guardrails import BlockedOutput, OutputGuard, output_events, policy_for
from everloop.engine.ports import ResolvedModel
from everloop.engine.steps import event_context, running
from everloop.llm.base import Completed, ModelCallError, TextDelta
from everloop.store.event_log import append_events
from everloop.telemetry import turns as telemetry

log = logging.getLogger("everloop.engine")

DELTA_FLUSH_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class ModelOutcome:
    """What one model call (with its retries) came to. ``text`` is what is stored: for an answer
    a guardrail ``blocked``, its replacement; ``guard_events`` are the guardrails' events."""

    ok: bool
    attempt: int
    duration_ms: int
    text: str | None = None
    tool_calls: tuple[ToolCallPart, ...] = ()
    usage: TokenUsage = field(default_factory=TokenUsage)
    finish_reason: str | None = None
    pending_delta: str = ""
    accumulated: str = ""
    ttft_ms: int | None = None
    error: str | None = None
    status: int | None = None
    retryable: bool = False
    blocked: BlockedOutput | None = None
    guard_events: tuple[tuple[ev.EventType, JsonObject], ...] = ()


async def call_model(
    env: TurnEnv,
    context: TurnContext,
    state: loop.TurnState,
    model: ResolvedModel,
    message_id: str,
    redactor: Redactor,
) -> ModelOutcome:
    """Call the model, retrying transient failures; deltas are written as they arrive.

    Deltas go through a ``StreamRedactor`` and then an ``OutputGuard``; a guard that blocks
    sends nothing more, and the outcome's text is the replacement (the blocked text is never
    written: not in a delta, not in the stored message). The call is a span of the turn's
    trace; what the span may show of the text is what is stored (secrets redacted)."""
    with telemetry.model_call(model.driver_kind, model.model_name, state.iteration) as record:
        if record.wants_content:
            system = state.settings.system_prompt
            record.prompt = json.dumps(
                ([{"role": "system", "content": system}] if system else [])
                + [message_to_json(m) for m in state.messages]
            )
        outcome = await _call(env, context, state, model, message_id, redactor)
        record.ok, record.attempts, record.error = outcome.ok, outcome.attempt, outcome.error
        record.input_tokens = outcome.usage.input_tokens
        record.output_tokens = outcome.usage.output_tokens
        record.finish_reason, record.ttft_ms = outcome.finish_reason, outcome.ttft_ms
        if record.wants_content and outcome.ok:
            record.completion = json.dumps(
                {"text": outcome.text, "tool_calls": [c.name for c in outcome.tool_calls]}
            )
        return outcome


async def _call(
    env: TurnEnv,
    context: TurnContext,
    state: loop.TurnState,
    model: ResolvedModel,
    message_id: str,
    redactor: Redactor,
) -> ModelOutcome:
    settings = env.settings
    policy = policy_for(context.runtime)
    attempt = 0
    started = time.monotonic()
    while True:
        attempt += 1
        request = loop.model_request(state, attempt=attempt)
        first_token: float | None = None
        stream = StreamRedactor(redactor)
        guard = OutputGuard(policy)
        last_flush = time.monotonic()
        try:
            async with env.cancellable(context.turn_id), env.model_calls:
                completed: Completed | None = None
                async for item in model.driver.stream(request):
                    if isinstance(item, TextDelta):
                        if first_token is None:
                            first_token = time.monotonic()
                        guard.feed(stream.feed(item.text))
                        if time.monotonic() - last_flush >= DELTA_FLUSH_SECONDS:
                            pending = guard.release()
                            if pending:
                                await _write_delta(
                                    env, context, message_id, pending, guard.emitted, attempt
                                )
                                last_flush = time.monotonic()
                    else:
                        completed = item
                if completed is None:
                    raise ModelCallError("the model stream ended without an answer", retryable=True)
            guard.feed(stream.finish())
            pending = guard.finish()
            text = redactor.text(completed.text)
            hits, blocked = guard.outcome(text)
            return ModelOutcome(
                ok=True,
                attempt=attempt,
                duration_ms=_ms_since(started),
                text=blocked.replacement if blocked is not None else text,
                tool_calls=tuple(_referenced(c, redactor) for c in completed.tool_calls),
                usage=completed.usage,
                finish_reason=completed.finish_reason,
                pending_delta="" if blocked is not None else pending,
                accumulated=guard.emitted,
                ttft_ms=None if first_token is None else int((first_token - started) * 1000),
                blocked=blocked,
                guard_events=tuple(
                    output_events(hits, blocked, turn_id=context.turn_id, message_id=message_id)
                ),
            )
        except ModelCallError as error:
            if not error.retryable or attempt >= settings.retry_attempts:
                return ModelOutcome(
                    ok=False,
                    attempt=attempt,
                    duration_ms=_ms_since(started),
                    error=redactor.text(error.message),
                    status=error.status,
                    retryable=error.retryable,
                )
            delay = min(
                settings.retry_base_seconds * 2 ** (attempt - 1), settings.retry_max_seconds
            )
            if error.retry_after is not None:
                delay = min(max(delay, error.retry_after), settings.retry_max_seconds)
            log.info(
                "turn %s: model attempt %d failed (%s); retrying in %.2fs",
                context.turn_id,
                attempt,
                error,
                delay,
            )
            async with env.cancellable(context.turn_id):
                await asyncio.sleep(delay)


async def _write_delta(
    env: TurnEnv,
    context: TurnContext,
    message_id: str,
    delta: str,
    accumulated: str,
    attempt: int,
) -> None:
    # Deltas are written as they stream and are not part of the exactly-once record: a
    # retried call streams again under a new ``attempt``. output.message.completed is the
    # authoritative text.
    data = ev.output_message_delta(
        turn_id=context.turn_id, message_id=message_id, delta=delta, accumulated=accumulated
    )
    data["attempt"] = attempt
    async with env.db.write() as conn:
        ctx = event_context(context.turn_id, context.input_message_id)
        await append_events(
            conn,
            context.session_id,
            [NewEvent("output.message.delta", data, ctx)],
            guard=running(context.turn_id),
        )
    env.signals.events_appended(context.session_id)


def _referenced(call: ToolCallPart, redactor: Redactor) -> ToolCallPart:
    """``call`` with secret values in its arguments turned back into placeholders: the tool
    still gets the value (it resolves placeholders), the record never holds it."""
    if not redactor:
        return call
    arguments = map_strings(call.arguments, redactor.references)
    assert isinstance(arguments, dict)
    return replace(call, arguments=arguments)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
