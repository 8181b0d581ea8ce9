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
            metrics.child(metrics.TURNS_ENDED, metrics.turn_status(record.status)).inc()
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


def phase(name: str, iteration: int) -> tracing.SpanScope:
    """A reason or act phase of the current turn."""
    if not tracing.enabled():
        return tracing.NO_SPAN
    return tracing.span(name, {"everloop.iteration": iteration})


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


class _ModelCall:
    """``model_call``'s block: a class rather than ``@contextmanager`` (several a turn)."""

    __slots__ = ("model", "record", "scope", "span", "started")

    def __init__(self, system: str, model: str, iteration: int) -> None:
        self.model = model
        self.record = ModelCallRecord()
        self.scope = tracing.span(
            f"chat {model}",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": system,
                "gen_ai.request.model": model,
                "everloop.iteration": iteration,
            },
            client=True,
        )
        self.span: Span | None = None
        self.started = 0.0

    def __enter__(self) -> ModelCallRecord:
        self.span = self.scope.__enter__()
        self.started = time.monotonic()
        return self.record

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        record, model = self.record, self.model
        outcome = "ok" if record.ok else "error"
        metrics.child(metrics.MODEL_CALL_DURATION, model, outcome).observe(
            time.monotonic() - self.started
        )
        if record.ttft_ms is not None:
            metrics.child(metrics.TIME_TO_FIRST_TOKEN, model).observe(record.ttft_ms / 1000)
        if record.input_tokens:
            metrics.child(metrics.MODEL_TOKENS, model, "input").inc(record.input_tokens)
        if record.output_tokens:
            metrics.child(metrics.MODEL_TOKENS, model, "output").inc(record.output_tokens)
        if self.span is not None:
            _end_model_span(self.span, record)
        self.scope.__exit__(kind, exc, tb)


def model_call(system: str, model: str, iteration: int) -> _ModelCall:
    """One model call (with its retries) of the current turn: ``with model_call(...) as
    record``, the call sets what it learns on ``record``."""
    return _ModelCall(system, model, iteration)


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


class _ToolCall:
    """``tool_call``'s block."""

    __slots__ = ("name", "record", "scope", "span", "started")

    def __init__(self, name: str, call_id: str) -> None:
        self.name = name
        self.record = ToolCallRecord()
        self.scope = tracing.span(
            f"execute_tool {name}",
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": call_id,
            },
        )
        self.span: Span | None = None
        self.started = 0.0

    def __enter__(self) -> ToolCallRecord:
        self.span = self.scope.__enter__()
        self.started = time.monotonic()
        return self.record

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        seconds = time.monotonic() - self.started
        outcome = self.record.outcome
        metrics.child(metrics.TOOL_CALLS, self.name, outcome).inc()
        metrics.child(metrics.TOOL_DURATION, self.name).observe(seconds)
        current = self.span
        if current is not None:
            current.set_attributes(
                {"everloop.tool.outcome": outcome, "everloop.tool.duration_ms": int(seconds * 1000)}
            )
            if outcome == "error":
                current.set_attribute("error.type", "tool_error")
                current.set_status(tracing.error_status("the tool returned an error"))
        self.scope.__exit__(kind, exc, tb)


def tool_call(name: str, call_id: str) -> _ToolCall:
    """One server-side tool call of the current turn: ``with tool_call(...) as record``, the
    act phase sets the outcome on ``record``."""
    return _ToolCall(name, call_id)
