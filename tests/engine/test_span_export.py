"""Spans as exported (issue 24): everloop's OTLP encoder writes the same request as the
OpenTelemetry SDK's (both decoded with opentelemetry-proto and compared), and request spans
follow a caller's W3C ``traceparent``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from everloop.telemetry import otlp, tracing
from everloop.telemetry import turns as telemetry

TURN = "turn_0190f3c2a1b27c3d8e9fa0b1c2d3e4f5"


class Ended(SpanExporter):
    """Keeps what a direct processor is handed: the spans as everloop made them."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def ended() -> Ended:
    return Ended()


@pytest.fixture
def spans(ended: Ended) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    resource = Resource.create({"service.name": "everloop-test", "process.pid": 7})
    tracing.install(
        [SimpleSpanProcessor(exporter)], direct=[SimpleSpanProcessor(ended)], resource=resource
    )
    yield exporter
    tracing.shutdown()


def _decoded(data: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(data)


def _same_as_the_sdk(found: list[ReadableSpan], live: Sequence[Any] | None = None) -> None:
    """everloop's request for ``found`` (or for ``live``, the same spans as everloop handed
    them to the OTLP exporter's processor) decodes equal to the SDK's for ``found``."""
    ours = _decoded(otlp.encode(found if live is None else live))
    sdk = _decoded(encode_spans(found).SerializeToString())
    assert ours == sdk
    assert sum(len(s.spans) for r in ours.resource_spans for s in r.scope_spans) == len(found)


def test_the_spans_of_a_turn_encode_as_the_sdk_encodes_them(
    spans: InMemorySpanExporter, ended: Ended
) -> None:
    with tracing.server_span("POST", {"http.request.method": "POST"}, {}) as request:
        tracing.link_to_turn(TURN)
        assert request is not None
        request.set_attributes({"http.route": "/api/v1/x", "http.response.status_code": 500})
        request.set_status(tracing.error_status("HTTP 500"))
    with telemetry.turn("session_x", TURN) as record:
        record.opened(replayed=False)
        with (
            telemetry.phase("reason", 1),
            telemetry.model_call("llmsim", "m" * 70, 1) as call,
        ):
            call.ok, call.attempts, call.finish_reason = True, 1, "stop"
            call.input_tokens, call.output_tokens, call.ttft_ms = 2**40, 5, 0
            call.prompt = "é" * 200  # a length past one varint byte, in UTF-8
        with (
            pytest.raises(ValueError),
            telemetry.phase("act", 1),
            telemetry.tool_call("add", "call_1") as tool,
        ):
            tool.outcome = "error"
            raise ValueError("a tool blew up")
        record.status = "failed"
    found = list(spans.get_finished_spans())
    assert len(found) == 6
    assert {s.status.status_code for s in found} == {StatusCode.ERROR, StatusCode.UNSET}
    assert any(e.name == "exception" for s in found for e in s.events)
    _same_as_the_sdk(found)
    assert [s.name for s in ended.spans] == [s.name for s in found]
    _same_as_the_sdk(found, ended.spans)


def test_every_attribute_type_and_span_shape_encodes_as_the_sdk_encodes_it() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "other", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("some.library", "1.2.3", schema_url="https://example.test/s")
    remote = SpanContext(
        0xABC,
        0xDEF,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    values = {
        "s": "text",
        "long": "x" * 300,
        "t": True,
        "f": False,
        "i": -5,
        "big": 2**62,
        "d": 1.5,
        "strings": ["a", "b"],
        "bools": [True, False],
        "ints": [1, -2],
        "floats": [0.25],
        "empty": [],
    }
    with tracer.start_as_current_span(
        "root", kind=SpanKind.SERVER, attributes=values, links=[Link(remote, {"k": "v"})]
    ) as root:
        root.add_event("an event", {"n": 1}, timestamp=123)
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "bad"))
        with tracer.start_as_current_span("ok", kind=SpanKind.PRODUCER) as ok:
            ok.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span(
        "remote child", context=set_span_in_context(NonRecordingSpan(remote))
    ):
        pass
    found = list(exporter.get_finished_spans())
    provider.shutdown()
    _same_as_the_sdk(found)

    # Two resources in one batch: one ResourceSpans each, in order.
    exporter2 = InMemorySpanExporter()
    tracing.install([SimpleSpanProcessor(exporter2)])
    try:
        with tracing.turn_root(TURN, {"everloop.turn.id": TURN}):
            pass
    finally:
        tracing.shutdown()
    mixed = [*found, *exporter2.get_finished_spans()]
    _same_as_the_sdk(mixed)
    assert len(_decoded(otlp.encode(mixed)).resource_spans) == 2


def test_a_request_continues_the_callers_sampled_trace(
    spans: InMemorySpanExporter, ended: Ended
) -> None:
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with (
        tracing.server_span("GET", {}, {"traceparent": caller}) as request,
        tracing.span("inside"),
    ):
        assert request is not None
    found = {s.name: s for s in spans.get_finished_spans()}
    request_span = found["GET"]
    assert request_span.context is not None and request_span.parent is not None
    assert request_span.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert request_span.parent.span_id == 0x00F067AA0BA902B7
    assert request_span.parent.is_remote
    assert found["inside"].parent is not None
    assert found["inside"].parent.span_id == request_span.context.span_id
    _same_as_the_sdk(list(spans.get_finished_spans()), ended.spans)


def test_a_callers_unsampled_trace_records_nothing(spans: InMemorySpanExporter) -> None:
    unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    with tracing.server_span("GET", {}, {"traceparent": unsampled}) as request:
        assert request is None
        with tracing.span("inside") as inside:
            assert inside is None
    # A malformed header starts a trace of its own.
    with tracing.server_span("GET", {}, {"traceparent": "not a trace"}) as request:
        assert request is not None
    [found] = spans.get_finished_spans()
    assert found.parent is None


def test_no_span_outside_a_trace_or_with_tracing_off(spans: InMemorySpanExporter) -> None:
    with tracing.span("stray") as stray:
        assert stray is None
    tracing.shutdown()
    with tracing.turn_root(TURN, {}) as root, tracing.span("x") as child:
        assert root is None and child is None
    assert spans.get_finished_spans() == ()
