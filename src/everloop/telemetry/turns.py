"""What the engine reports of a turn: one context manager per span, metrics with them.

- ``turn``: the trace's root span (``tracing.turn_root``), the running-turns gauge, and at the
  end the turn's metrics and its log line (session, turn, status, iterations, tokens, duration).
- ``phase``: a reason or act phase, under the turn.
- ``model_call``: one model call with its retries, with the GenAI semantic conventions'
  attributes (``gen_ai.system``, ``gen_ai.request.model``, ``gen_ai.usage.*``,
  ``gen_ai.response.finish_reasons``); prompt and completion only if
  ``EVERLOOP_TRACE_CONTENT`` is set.
- ``tool_call``: one server-side tool call (name, outcome, duration).

The engine sets what it learns on the records these yield; nothing here reads the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from everloop.telemetry import metrics, tracing

if TYPE_CHECKING:
    from everloop.telemetry.tracing import LiveSpan as Span

log = logging.getLogger("everloop.turns")


@dataclass
class TurnRecord:
    """What is known of a turn at its end: set by the runner from the turn's durable state."""

    session_id: str
    turn_id: str
    status: str = "other"
    iterations: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    resumed: bool = False

    def opened(self, *, replayed: bool) -> None:
        """The turn claimed its session: a first start, or a resumption of recorded work."""
        self.resumed = replayed
        (metrics.TURNS_RESUMED if replayed else metrics.TURNS_STARTED).inc()

    def observe(self, iteration: int, input_tokens: int, output_tokens: int) -> None:
        self.iterations = iteration
        self.input_tokens, self.output_tokens = input_tokens, output_tokens


@contextmanager
def turn(session_id: str, turn_id: str) -> Iterator[TurnRecord]:
    """Around the whole run of a turn in this process."""
    record = TurnRecord(session_id, turn_id)
    started = time.monotonic()
    metrics.RUNNING_TURNS.inc()
    try:
        with tracing.turn_root(
            turn_id, {"everloop.session.id": session_id, "everloop.turn.id": turn_id}
        ) as root:
            try:
                yield record
            except Exception:
                record.status = "error"
                raise
            except BaseException:
                # Stopped in this process (a shutdown), not ended: it resumes from its records
                # (and the root span is left open, for the process that ends the turn).
                record.status = "interrupted"
                raise
            if root is not None:
                _end_root(root, record)
    finally:
        metrics.RUNNING_TURNS.dec()
        seconds = time.monotonic() - started
        if record.status != "interrupted":
            metrics.TURNS_ENDED.labels(metrics.turn_status(record.status)).inc()
            metrics.TURN_DURATION.observe(seconds)
        log.info(
            "turn ended" if record.status != "interrupted" else "turn interrupted",
            extra={
                "fields": {
                    "session": session_id,
                    "turn": turn_id,
                    "status": record.status,
                    "iterations": record.iterations,
                    "input_tokens": record.input_tokens,
                    "output_tokens": record.output_tokens,
                    "duration_ms": int(seconds * 1000),
                    "resumed": record.resumed,
                }
            },
        )


def _end_root(root: Span, record: TurnRecord) -> None:
    root.set_attributes(
        {
            "everloop.turn.status": record.status,
            "everloop.turn.iterations": record.iterations,
            "everloop.turn.resumed": record.resumed,
            "gen_ai.usage.input_tokens": record.input_tokens,
            "gen_ai.usage.output_tokens": record.output_tokens,
        }
    )
    if record.status == "failed":
        from opentelemetry.trace import Status, StatusCode

        root.set_status(Status(StatusCode.ERROR, "the turn failed"))


@contextmanager
def phase(name: str, iteration: int) -> Iterator[None]:
    """A reason or act phase of the current turn."""
    if not tracing.enabled():
        yield
        return
    with tracing.span(name, {"everloop.iteration": iteration}):
        yield


@dataclass
class ModelCallRecord:
    """Set by the model call as it ends."""

    ok: bool = False
    attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    ttft_ms: int | None = None
    error: str | None = None
    prompt: str | None = None
    completion: str | None = None
    wants_content: bool = field(default_factory=tracing.content_enabled)


@contextmanager
def model_call(system: str, model: str, iteration: int) -> Iterator[ModelCallRecord]:
    """One model call (with its retries) of the current turn."""
    record = ModelCallRecord()
    started = time.monotonic()
    with tracing.span(
        f"chat {model}",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": system,
            "gen_ai.request.model": model,
            "everloop.iteration": iteration,
        },
        client=True,
    ) as current:
        try:
            yield record
        finally:
            outcome = "ok" if record.ok else "error"
            metrics.MODEL_CALL_DURATION.labels(model, outcome).observe(time.monotonic() - started)
            if record.ttft_ms is not None:
                metrics.TIME_TO_FIRST_TOKEN.labels(model).observe(record.ttft_ms / 1000)
            if record.input_tokens:
                metrics.MODEL_TOKENS.labels(model, "input").inc(record.input_tokens)
            if record.output_tokens:
                metrics.MODEL_TOKENS.labels(model, "output").inc(record.output_tokens)
            if current is not None:
                _end_model_span(current, record)


def _end_model_span(current: Span, record: ModelCallRecord) -> None:
    current.set_attributes(
        {
            "gen_ai.usage.input_tokens": record.input_tokens,
            "gen_ai.usage.output_tokens": record.output_tokens,
            "everloop.model.attempts": record.attempts,
        }
    )
    if record.finish_reason:
        current.set_attribute("gen_ai.response.finish_reasons", [record.finish_reason])
    if record.ttft_ms is not None:
        current.set_attribute("everloop.model.time_to_first_token_ms", record.ttft_ms)
    if record.prompt is not None:
        current.set_attribute("gen_ai.input.messages", record.prompt)
    if record.completion is not None:
        current.set_attribute("gen_ai.output.messages", record.completion)
    if not record.ok:
        from opentelemetry.trace import Status, StatusCode

        current.set_attribute("error.type", "model_call_error")
        current.set_status(Status(StatusCode.ERROR, record.error or "the model call failed"))


@dataclass
class ToolCallRecord:
    """Set by the act phase as the call ends: ``ok``, ``error`` or ``halted``."""

    outcome: str = "halted"


@contextmanager
def tool_call(name: str, call_id: str) -> Iterator[ToolCallRecord]:
    """One server-side tool call of the current turn."""
    record = ToolCallRecord()
    started = time.monotonic()
    with tracing.span(
        f"execute_tool {name}",
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
        },
    ) as current:
        try:
            yield record
        finally:
            seconds = time.monotonic() - started
            metrics.TOOL_CALLS.labels(name, record.outcome).inc()
            metrics.TOOL_DURATION.labels(name).observe(seconds)
            if current is not None:
                current.set_attributes(
                    {
                        "everloop.tool.outcome": record.outcome,
                        "everloop.tool.duration_ms": int(seconds * 1000),
                    }
                )
                if record.outcome == "error":
                    from opentelemetry.trace import Status, StatusCode

                    current.set_attribute("error.type", "tool_error")
                    current.set_status(Status(StatusCode.ERROR, "the tool returned an error"))
