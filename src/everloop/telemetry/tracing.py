"""Traces: one per turn, with ids derived from the turn id.

A turn's trace id is the 128 bits of its id (``turn_<32 hex>``: the hex *is* the trace id), so
the trace of a turn and its events (``context.trace_id``, which is the turn id) name each other.
The root span's id is derived from the turn id too: a turn resumed by another process after a
crash starts its root span again with the same ids, and the spans the first process exported
before it died and those of the second form one tree. Only the process that ends the turn ends
(and exports) the root span.

How spans are made: a span is a small record of ours (:class:`LiveSpan`) while it runs, and
becomes the OpenTelemetry SDK's ``ReadableSpan`` when it ends, handed to the SDK's span
processors (a batch processor in front of the OTLP exporter, a simple one in front of the file
exporter, the tests' in-memory exporter). Not the SDK's ``Tracer``: its spans validate and copy
every attribute under a lock, consult the sampler and the context machinery per span, and cost
~40 µs each; a turn makes eight (docs/benchmarks.md, issue 24). Sampling is by trace and decided
once, at the trace's first span; the current span is one context variable.

Exporters: OTLP over HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the exporter reads the
other standard ``OTEL_EXPORTER_OTLP_*`` variables itself: headers, timeout, ...), JSON lines to a
file when ``EVERLOOP_TRACE_FILE`` is set (written as each span ends, so a ``kill -9`` loses
nothing already ended). With neither, nothing is recorded: every hook checks one flag and
returns, and the OpenTelemetry SDK is not even imported.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import os
import random
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, Status

AttributeValue = str | bool | int | float | Sequence[str]

_MASK = (1 << 64) - 1


class _Tracing:
    """What this process records spans with (one instance while tracing is on)."""

    def __init__(
        self,
        processors: Sequence[SpanProcessor],
        *,
        direct: Sequence[Any],
        content: bool,
        sample_ratio: float,
        resource: Resource | None,
    ) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

        self.processors = tuple(processors)
        self.direct = tuple(direct)
        self.content = content
        self.keep_all = sample_ratio >= 1
        self.bound = int(max(0.0, sample_ratio) * _MASK)
        self.resource = resource if resource is not None else Resource.create({})
        self.scope: InstrumentationScope = InstrumentationScope("everloop")
        self.readable = ReadableSpan
        self.context = SpanContext
        self.link = Link
        self.sampled = TraceFlags(TraceFlags.SAMPLED)
        self.internal_kind = SpanKind.INTERNAL
        self.client_kind = SpanKind.CLIENT
        self.server_kind = SpanKind.SERVER
        self.unset = Status(StatusCode.UNSET)

    def keeps(self, trace_id: int) -> bool:
        """Whether the trace ``trace_id`` is recorded: ``sample_ratio`` of the traces, decided
        by the id alone (so every process that runs a turn decides alike). Not OpenTelemetry's
        ``traceidratio``: it reads the id's low 64 bits as a number, and in a turn's trace id (a
        UUIDv7) their top bits are the fixed variant ``10``, so it would keep no turn below a
        ratio of one half; here the whole id is mixed first."""
        return self.keep_all or _mix((trace_id >> 64) ^ (trace_id & _MASK)) < self.bound

    def ended(self, span: LiveSpan) -> None:
        span.end_time = time.time_ns()
        span.resource = self.resource
        span.instrumentation_scope = self.scope
        if span.status is None:
            span.status = self.unset
        for direct in self.direct:
            direct.on_end(span)
        if not self.processors:
            return
        parent = span.parent
        readable = self.readable(
            span.name,
            context=self._context_of(span),
            parent=self._context_of(parent) if isinstance(parent, LiveSpan) else parent,
            resource=self.resource,
            attributes=span.attributes,
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=self.scope,
        )
        for processor in self.processors:
            processor.on_end(readable)

    def _context_of(self, span: LiveSpan) -> SpanContext:
        return self.context(span.trace_id, span.span_id, is_remote=False, trace_flags=self.sampled)


_state: _Tracing | None = None


class _Sampled:
    """The trace flags of a recorded span, as a processor reads them."""

    sampled = True


class LiveSpan:
    """A span while it runs: what the code sets on it (the subset of OpenTelemetry's ``Span``
    everloop uses). Ended, it carries what an exporter reads of a ``ReadableSpan`` (``name``,
    ``context``, ``parent``, ``kind``, ``start_time``, ``end_time``, ``attributes``, ``events``,
    ``links``, ``status``, ``resource``, ``instrumentation_scope``) and goes as it is to the
    OTLP exporter's batch processor; other processors get a ``ReadableSpan`` made of it. It is
    its own span context (``trace_id``, ``span_id``, ``is_remote``, ``trace_flags``,
    ``trace_state``), and its children's parent: no ``SpanContext`` is made per span."""

    __slots__ = (
        "attributes",
        "end_time",
        "events",
        "instrumentation_scope",
        "kind",
        "links",
        "name",
        "parent",
        "resource",
        "span_id",
        "start_time",
        "status",
        "trace_id",
    )

    dropped_attributes = 0
    is_remote = False
    trace_flags = _Sampled()
    trace_state = None

    def __init__(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent: LiveSpan | SpanContext | None,
        kind: Any,
        attributes: dict[str, Any],
    ) -> None:
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent = parent
        self.kind = kind
        self.start_time = time.time_ns()
        self.end_time: int | None = None
        self.attributes = attributes  # the caller's own dict: taken, not copied
        self.events: tuple[Any, ...] = ()
        self.links: tuple[Link, ...] = ()
        self.status: Status | None = None
        self.resource: Resource | None = None
        self.instrumentation_scope: InstrumentationScope | None = None

    @property
    def context(self) -> LiveSpan:
        return self

    def is_recording(self) -> bool:
        return True

    def update_name(self, name: str) -> None:
        self.name = name

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self.attributes.update(attributes)

    def set_status(self, status: Status) -> None:
        self.status = status

    def add_link(self, context: SpanContext, attributes: Mapping[str, AttributeValue]) -> None:
        from opentelemetry.trace import Link

        self.links = (*self.links, Link(context, attributes))

    def record_exception(self, exc: BaseException) -> None:
        """An ``exception`` event with the semantic conventions' attributes."""
        from opentelemetry.sdk.trace import Event

        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        attributes = {
            "exception.type": type(exc).__qualname__,
            "exception.message": str(exc),
            "exception.stacktrace": stack,
            "exception.escaped": "False",
        }
        self.events = (*self.events, Event("exception", attributes))


# The current span of this task: a LiveSpan, _DROPPED inside a trace the sampler dropped.
_DROPPED = object()
_current: contextvars.ContextVar[LiveSpan | object | None] = contextvars.ContextVar(
    "everloop_current_span", default=None
)


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _state is not None


def content_enabled() -> bool:
    """Whether prompts and completions go into spans (``EVERLOOP_TRACE_CONTENT``)."""
    return _state is not None and _state.content


@functools.lru_cache(maxsize=4096)
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


@functools.lru_cache(maxsize=4096)
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
    """Set up this process's tracing if an exporter is configured (then True: the caller
    shuts it down); else leave tracing as it is."""
    if not otlp_endpoint and trace_file is None:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create(
        {"service.name": service_name, "process.pid": os.getpid(), **(attributes or {})}
    )
    processors: list[SpanProcessor] = []
    direct: list[SpanProcessor] = []
    if otlp_endpoint:
        from everloop.telemetry.otlp import SpanExporter

        # The exporter takes the endpoint (and headers, ...) from the standard variables, the
        # processor its queue and batch sizes (OTEL_BSP_*); it reads a span's context and
        # queues it, the exporter encodes what a LiveSpan carries.
        direct.append(
            BatchSpanProcessor(
                SpanExporter(),
                max_queue_size=_setting("OTEL_BSP_MAX_QUEUE_SIZE", 8192),
                max_export_batch_size=_setting("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 2048),
            )
        )
    if trace_file is not None:
        processors.append(SimpleSpanProcessor(_file_exporter(trace_file)))
    install(
        processors, direct=direct, content=content, sample_ratio=sample_ratio, resource=resource
    )
    return True


def _setting(name: str, default: int) -> int:
    """A standard ``OTEL_BSP_*`` size if set, else everloop's: a turn makes ~8 spans, and a
    request of 2,048 spans costs a quarter of the CPU of four of 512 (the SDK's default)."""
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


def install(
    processors: Sequence[SpanProcessor] | None,
    *,
    direct: Sequence[Any] = (),
    content: bool = False,
    sample_ratio: float = 1.0,
    resource: Resource | None = None,
) -> None:
    """Hand ended spans to ``processors`` as ``ReadableSpan`` and to ``direct`` processors
    as they are (``LiveSpan``: the batch processor in front of ``otlp.SpanExporter``); None:
    tracing off. Tests install one in front of the SDK's in-memory exporter."""
    global _state
    _state = (
        _Tracing(
            processors,
            direct=direct,
            content=content,
            sample_ratio=sample_ratio,
            resource=resource,
        )
        if processors is not None
        else None
    )


def shutdown() -> None:
    """Flush and stop the exporters (at process shutdown)."""
    tracing = _state
    install(None)
    if tracing is not None:
        for processor in (*tracing.direct, *tracing.processors):
            processor.shutdown()


class SpanScope:
    """A span current inside a ``with`` block, ended after it (an exception on the way out is
    recorded on it; a cancellation ends it only if ``end_on_cancel``). ``span`` None: no span,
    and the block runs in ``marker`` (None: as it was; ``_DROPPED``: a trace the sampler
    dropped, so no span inside it is made either). A class, not ``@contextmanager``: these
    nest three deep several times a turn, and a generator per layer cost more than the span.
    """

    __slots__ = ("end_on_cancel", "marker", "span", "token")

    def __init__(
        self, span: LiveSpan | None, *, marker: object = None, end_on_cancel: bool = True
    ) -> None:
        self.span = span
        self.marker = marker
        self.end_on_cancel = end_on_cancel
        self.token: contextvars.Token[LiveSpan | object | None] | None = None

    def __enter__(self) -> LiveSpan | None:
        current = self.span if self.span is not None else self.marker
        if current is not None:
            self.token = _current.set(current)
        return self.span

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if self.token is not None:
            _current.reset(self.token)
        started = self.span
        if started is None:
            return
        if exc is not None:
            if not isinstance(exc, Exception):
                if not self.end_on_cancel:
                    return
            else:
                started.record_exception(exc)
                started.set_status(error_status(f"{type(exc).__name__}: {exc}"))
        tracing = _state
        if tracing is not None:
            tracing.ended(started)


NO_SPAN = SpanScope(None)  # holds no state: shared


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, *, client: bool = False
) -> SpanScope:
    """A child span of the current one (None when tracing is off, or outside any trace, or in
    a trace the sampler dropped); a ``client`` span calls out of the process (a model)."""
    tracing = _state
    parent = _current.get()
    if tracing is None or parent.__class__ is not LiveSpan:
        return NO_SPAN
    return SpanScope(
        LiveSpan(
            name,
            parent.trace_id,
            random.getrandbits(64) or 1,
            parent,
            tracing.client_kind if client else tracing.internal_kind,
            dict(attributes) if attributes else {},
        )
    )


def turn_root(turn_id: str, attributes: Mapping[str, AttributeValue]) -> SpanScope:
    """The root span of ``turn_id``'s trace, with the turn's ids, current inside the block."""
    tracing = _state
    if tracing is None:
        return NO_SPAN
    trace_id = turn_trace_id(turn_id)
    if not tracing.keeps(trace_id):
        return SpanScope(None, marker=_DROPPED)
    started = LiveSpan(
        "turn", trace_id, turn_root_span_id(turn_id), None, tracing.internal_kind, dict(attributes)
    )
    # Cancelled (a shutdown), the turn goes on later or elsewhere, and the process that ends
    # it ends this span (same ids): ending it here too would export the root twice.
    return SpanScope(started, end_on_cancel=False)


def server_span(
    name: str, attributes: Mapping[str, AttributeValue], headers: Mapping[str, str]
) -> SpanScope:
    """An HTTP request's span, continuing the caller's trace if it sent ``traceparent``."""
    tracing = _state
    if tracing is None:
        return NO_SPAN
    parent = _remote_parent(headers) if "traceparent" in headers else None
    if parent is not None:
        if not parent.trace_flags.sampled:
            return SpanScope(None, marker=_DROPPED)
        trace_id = parent.trace_id
    else:
        trace_id = random.getrandbits(128) or 1
        if not tracing.keeps(trace_id):
            return SpanScope(None, marker=_DROPPED)
    started = LiveSpan(
        name, trace_id, random.getrandbits(64) or 1, parent, tracing.server_kind, dict(attributes)
    )
    return SpanScope(started)


def _remote_parent(headers: Mapping[str, str]) -> SpanContext | None:
    """The caller's span from W3C ``traceparent`` (None if it is not a valid one)."""
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = get_current_span(TraceContextTextMapPropagator().extract(headers)).get_span_context()
    return context if context.is_valid else None


def error_status(description: str) -> Status:
    """A span status saying the operation failed."""
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR, description)


def link_to_turn(turn_id: str) -> None:
    """Link the current span (an HTTP request's) to the trace of the turn it started."""
    current = _current.get()
    tracing = _state
    if tracing is not None and isinstance(current, LiveSpan):
        context = tracing.context(
            turn_trace_id(turn_id),
            turn_root_span_id(turn_id),
            is_remote=True,
            trace_flags=tracing.sampled,
        )
        current.links = (*current.links, tracing.link(context, {"everloop.turn.id": turn_id}))


def _mix(value: int) -> int:
    """SplitMix64's finalizer: the ids of turns made in one millisecond differ in a counter's
    last bits only, and must not all fall on the same side of the bound."""
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


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
