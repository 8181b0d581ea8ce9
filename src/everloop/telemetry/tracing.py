"""Traces: one per turn, with ids derived from the turn id.

A turn's trace id is the 128 bits of its id (``turn_<32 hex>``: the hex *is* the trace id), so
the trace of a turn and its events (``context.trace_id``, which is the turn id) name each other.
The root span's id is derived from the turn id too: a turn resumed by another process after a
crash starts its root span again with the same ids, and the spans the first process exported
before it died and those of the second form one tree. Only the process that ends the turn ends
(and exports) the root span.

Exporters: OTLP over HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the exporter reads the
other standard ``OTEL_EXPORTER_OTLP_*`` variables itself: headers, timeout, ...), JSON lines to a
file when ``EVERLOOP_TRACE_FILE`` is set (written as each span ends, so a ``kill -9`` loses
nothing already ended). With neither, no tracer exists: every hook checks one flag and returns,
and the OpenTelemetry SDK is not even imported.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.trace import Span, SpanContext, Tracer

AttributeValue = str | bool | int | float | Sequence[str]

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_content = False
# Ids the next span must take (a turn's root span); read by the provider's id generator.
_forced: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "everloop_forced_span_ids", default=None
)


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _tracer is not None


def content_enabled() -> bool:
    """Whether prompts and completions go into spans (``EVERLOOP_TRACE_CONTENT``)."""
    return _tracer is not None and _content


def turn_trace_id(turn_id: str) -> int:
    """The trace id of a turn: the hex of its id, else (an id of another shape) a hash."""
    hex_part = turn_id.rpartition("_")[2]
    if len(hex_part) == 32:
        try:
            value = int(hex_part, 16)
        except ValueError:
            value = 0
        if value:
            return value
    return int.from_bytes(hashlib.sha256(turn_id.encode()).digest()[:16], "big") or 1


def turn_root_span_id(turn_id: str) -> int:
    """The span id of a turn's root span (the same in every process that runs the turn)."""
    digest = hashlib.sha256(b"everloop-turn-root:" + turn_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def configure(
    *,
    otlp_endpoint: str | None,
    trace_file: Path | None,
    content: bool,
    service_name: str,
    sample_ratio: float = 1.0,
    attributes: Mapping[str, str] | None = None,
) -> bool:
    """Set up this process's tracer if an exporter is configured (then True: the caller
    shuts it down); else leave tracing as it is."""
    if not otlp_endpoint and trace_file is None:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create(
        {"service.name": service_name, "process.pid": os.getpid(), **(attributes or {})}
    )
    provider = TracerProvider(resource=resource, id_generator=_ids(), sampler=sampler(sample_ratio))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The exporter takes the endpoint (and headers, ...) from the standard variables.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if trace_file is not None:
        provider.add_span_processor(SimpleSpanProcessor(_file_exporter(trace_file)))
    install(provider, content=content)
    return True


def install(provider: TracerProvider | None, *, content: bool = False) -> None:
    """Use ``provider`` for everloop's spans (None: tracing off). Tests install one with an
    in-memory exporter; its id generator must come from ``id_generator()``."""
    global _provider, _tracer, _content
    _provider = provider
    _tracer = provider.get_tracer("everloop") if provider is not None else None
    _content = content


def id_generator() -> Any:
    """The id generator a tracer provider needs for turns' deterministic ids."""
    return _ids()


def shutdown() -> None:
    """Flush and stop the exporters (at process shutdown)."""
    provider = _provider
    install(None)
    if provider is not None:
        provider.shutdown()


@contextmanager
def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, *, client: bool = False
) -> Iterator[Span | None]:
    """A child span of the current one (None when tracing is off); a ``client`` span calls
    out of the process (a model)."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind, get_current_span

    parent = get_current_span()
    if not parent.is_recording() and parent.get_span_context().is_valid:
        yield None  # in a trace the sampler dropped: its spans would be dropped too
        return
    kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
    started = tracer.start_span(name, kind=kind, attributes=attributes)
    with _current(started):
        yield started


@contextmanager
def _current(started: Span, *, end_on_cancel: bool = True) -> Iterator[None]:
    """``started`` is the current span inside the block, and ends after it (an exception on
    the way out is recorded on it; a cancellation ends it only if ``end_on_cancel``). Leaner
    than ``start_as_current_span``'s layers of context managers: these run several times per
    turn."""
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode, set_span_in_context

    token = context.attach(set_span_in_context(started))
    end = True
    try:
        yield
    except Exception as exc:
        started.record_exception(exc)
        started.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    except BaseException:
        end = end_on_cancel
        raise
    finally:
        context.detach(token)
        if end:
            started.end()


@contextmanager
def turn_root(turn_id: str, attributes: Mapping[str, AttributeValue]) -> Iterator[Span | None]:
    """The root span of ``turn_id``'s trace, with the turn's ids, current inside the block."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.context import Context

    token = _forced.set((turn_trace_id(turn_id), turn_root_span_id(turn_id)))
    try:
        started = tracer.start_span("turn", context=Context(), attributes=attributes)
    finally:
        _forced.reset(token)
    # Cancelled (a shutdown), the turn goes on later or elsewhere, and the process that ends
    # it ends this span (same ids): ending it here too would export the root twice.
    with _current(started, end_on_cancel=False):
        yield started


@contextmanager
def server_span(
    name: str, attributes: Mapping[str, AttributeValue], headers: Mapping[str, str]
) -> Iterator[Span | None]:
    """An HTTP request's span, continuing the caller's trace if it sent ``traceparent``."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    parent = extract(headers) if "traceparent" in headers else None
    started = tracer.start_span(name, parent, kind=SpanKind.SERVER, attributes=attributes)
    with _current(started):
        yield started


def error_status(description: str) -> Any:
    """A span status saying the operation failed."""
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR, description)


def turn_span_context(turn_id: str) -> SpanContext:
    """The context of ``turn_id``'s root span, for links to it."""
    from opentelemetry.trace import SpanContext, TraceFlags

    return SpanContext(
        turn_trace_id(turn_id),
        turn_root_span_id(turn_id),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


def link_to_turn(turn_id: str) -> None:
    """Link the current span (an HTTP request's) to the trace of the turn it started."""
    if _tracer is None:
        return
    from opentelemetry.trace import get_current_span

    current = get_current_span()
    if current.is_recording():
        current.add_link(turn_span_context(turn_id), {"everloop.turn.id": turn_id})


_MASK = (1 << 64) - 1


def _mix(value: int) -> int:
    """SplitMix64's finalizer: the ids of turns made in one millisecond differ in a counter's
    last bits only, and must not all fall on the same side of the bound."""
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def sampler(ratio: float) -> Any:
    """Keep ``ratio`` of the traces, deciding by trace id (so every process that runs a turn
    decides alike), and a child as its parent. Not OpenTelemetry's ``traceidratio``: it reads
    the trace id's low 64 bits as a number, and in a turn's trace id (a UUIDv7) their top bits
    are the fixed variant ``10``, so it would keep no turn below a ratio of one half; here the
    whole id is hashed first."""
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )

    if ratio >= 1:
        return ParentBased(ALWAYS_ON)
    bound = int(ratio * _MASK)

    class TraceRatio(Sampler):
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: Any = None,
            attributes: Any = None,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            if _mix((trace_id >> 64) ^ (trace_id & _MASK)) < bound:
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
            return SamplingResult(Decision.DROP)

        def get_description(self) -> str:
            return f"EverloopTraceRatio{{{ratio}}}"

    return ParentBased(TraceRatio())


def _ids() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class TurnIds(RandomIdGenerator):
        """Random ids, except for a turn's root span (``_forced``)."""

        def generate_trace_id(self) -> int:
            forced = _forced.get()
            return forced[0] if forced else super().generate_trace_id()

        def generate_span_id(self) -> int:
            forced = _forced.get()
            return forced[1] if forced else super().generate_span_id()

    return TurnIds()


def _file_exporter(path: Path) -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLinesExporter(SpanExporter):
        """Each ended span as one JSON line (``ReadableSpan.to_json``), flushed at once."""

        def __init__(self) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = threading.Lock()
            self._file = path.open("a", encoding="utf-8")

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            lines = "".join(json.dumps(json.loads(s.to_json())) + "\n" for s in spans)
            with self._lock:
                if self._file.closed:
                    return SpanExportResult.FAILURE
                self._file.write(lines)
                self._file.flush()
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            with self._lock:
                self._file.close()

    return JsonLinesExporter()
