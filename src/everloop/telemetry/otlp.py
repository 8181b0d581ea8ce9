"""OTLP export of everloop's spans: the protobuf request written directly, then the SDK's
OTLP/HTTP exporter's own client sends it.

Why not the SDK's encoder: it builds a protobuf message object per span, attribute and value,
and hashes the resource (a JSON dump) once per span; measured, that was ~33 µs of CPU per span,
half of what tracing cost a turn (docs/benchmarks.md, issue 24). Writing the wire format of the
few message types a span uses (``opentelemetry/proto/trace/v1/trace.proto`` and
``common/v1/common.proto``) costs a fraction of that. The output is the same request: the tests
decode both with ``opentelemetry-proto`` and compare.

Everything else is the SDK's: the exporter resolves the endpoint, headers, compression, timeout
and TLS from the standard ``OTEL_EXPORTER_OTLP_*`` variables and retries; the batch processor
queues and flushes.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

log = logging.getLogger(__name__)

_double = struct.Struct("<d").pack
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_U64 = (1 << 64) - 1

# Span.flags (fixed32, field 16): the parent's is-remote bit is known (0x100), and set (0x200).
_FLAGS_LOCAL = b"\x85\x01" + _fixed32(0x100)
_FLAGS_REMOTE = b"\x85\x01" + _fixed32(0x300)
# Link.flags (fixed32, field 6).
_LINK_FLAGS_LOCAL = b"\x35" + _fixed32(0x100)
_LINK_FLAGS_REMOTE = b"\x35" + _fixed32(0x300)


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length, the payload."""
    size = len(payload)
    return tag + (bytes((size,)) if size < 0x80 else _varint(size)) + payload


_keys: dict[str, bytes] = {}


def _key(key: str) -> bytes:
    """``KeyValue.key`` (field 1), cached: spans repeat a few dozen keys."""
    encoded = _keys.get(key)
    if encoded is None:
        encoded = _field(b"\x0a", key.encode())
        if len(_keys) < 1024:
            _keys[key] = encoded
    return encoded


def _value(value: Any) -> bytes:
    """An ``AnyValue``'s fields (the same choice of type, in the same order, as the SDK's)."""
    if value is None:
        return b""
    if value is True:
        return b"\x10\x01"
    if value is False:
        return b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value & _U64)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _value(item)) for item in value))
    if isinstance(value, Mapping):
        return _field(b"\x32", attributes(value, b"\x0a"))
    raise TypeError(f"an attribute value of type {type(value).__name__}")


def _pair(key: str, value: Any) -> bytes:
    """A ``KeyValue``'s length and body."""
    body = _key(str(key)) + _field(b"\x12", _value(value))
    size = len(body)
    return (bytes((size,)) if size < 0x80 else _varint(size)) + body


# Encoded pairs of repeated values (model, tool and system names, small counts, flags), one
# cache per type: a key (k, 1) would also find (k, True). Ids are unique and long texts big:
# not kept.
_strings: dict[tuple[str, str], bytes] = {}
_ints: dict[tuple[str, int], bytes] = {}
_bools: dict[tuple[str, bool], bytes] = {}
_UNIQUE = frozenset(
    {"everloop.session.id", "everloop.turn.id", "everloop.request_id", "gen_ai.tool.call.id"}
)


def _cache_for(key: str, value: Any) -> dict[tuple[str, Any], bytes] | None:
    kind = value.__class__
    if key in _UNIQUE:
        return None
    if kind is str:
        return _strings if len(value) <= 64 else None
    if kind is int:
        return _ints if 0 <= value < 1024 else None
    return _bools if kind is bool else None


def attributes(values: Mapping[str, Any] | None, tag: bytes) -> bytes:
    """Repeated ``KeyValue`` fields under ``tag``."""
    if not values:
        return b""
    out = []
    for key, value in values.items():
        try:
            cache = _cache_for(key, value)
            if cache is None:
                out.append(tag + _pair(key, value))
                continue
            encoded = cache.get((key, value))
            if encoded is None:
                encoded = _pair(key, value)
                if len(cache) >= 4096:
                    cache.clear()
                cache[(key, value)] = encoded
            out.append(tag + encoded)
        except TypeError:
            log.warning("span attribute %s not exported: %s", key, type(value).__name__)
    return b"".join(out)


_times = struct.Struct("<BQBQ").pack  # start_time_unix_nano (7), end_time_unix_nano (8)
_KINDS = tuple(b"\x30" + bytes((value + 1,)) for value in range(5))  # the proto counts from 1
_UNSET = b"\x7a\x00"  # an empty Status


def _span(span: ReadableSpan) -> bytes:
    context = span.context
    assert context is not None
    parent = span.parent
    out = [b"\x0a\x10" + context.trace_id.to_bytes(16, "big")]
    out.append(b"\x12\x08" + context.span_id.to_bytes(8, "big"))
    if context.trace_state:
        state = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
        out.append(_field(b"\x1a", state.encode()))
    if parent is not None:
        out.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    out.append(_field(b"\x2a", span.name.encode()))
    out.append(_KINDS[span.kind.value])
    out.append(_times(0x39, span.start_time or 0, 0x41, span.end_time or 0))
    out.append(attributes(span.attributes, b"\x4a"))
    if span.dropped_attributes:
        out.append(b"\x50" + _varint(span.dropped_attributes))
    for event in span.events:
        body = b"\x09" + _fixed64(event.timestamp) + _field(b"\x12", event.name.encode())
        body += attributes(event.attributes, b"\x1a")
        out.append(_field(b"\x5a", body))
    for link in span.links:
        linked = link.context
        body = b"\x0a\x10" + linked.trace_id.to_bytes(16, "big")
        body += b"\x12\x08" + linked.span_id.to_bytes(8, "big")
        body += attributes(link.attributes, b"\x22")
        body += _LINK_FLAGS_REMOTE if linked.is_remote else _LINK_FLAGS_LOCAL
        out.append(_field(b"\x6a", body))
    status = span.status
    if status.status_code.value or status.description:
        body = _field(b"\x12", status.description.encode()) if status.description else b""
        if status.status_code.value:
            body += b"\x18" + _varint(status.status_code.value)
        out.append(_field(b"\x7a", body))
    else:
        out.append(_UNSET)
    out.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(out)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    body = _field(b"\x0a", scope.name.encode()) if scope.name else b""
    if scope.version:
        body += _field(b"\x12", scope.version.encode())
    return body + attributes(scope.attributes, b"\x1a")


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest`` holding ``spans``, grouped by resource and scope."""
    groups: dict[int, tuple[Resource, dict[int, tuple[InstrumentationScope | None, list[bytes]]]]]
    groups = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        scopes = groups.setdefault(id(resource), (resource, {}))[1]
        scopes.setdefault(id(scope), (scope, []))[1].append(_field(b"\x12", _span(span)))
    request = []
    for resource, scopes in groups.values():
        body = [_field(b"\x0a", attributes(resource.attributes, b"\x0a"))]
        for scope, encoded in scopes.values():
            scope_spans = _field(b"\x0a", _scope(scope)) + b"".join(encoded)
            if scope is not None and scope.schema_url:
                scope_spans += _field(b"\x1a", scope.schema_url.encode())
            body.append(_field(b"\x12", scope_spans))
        if resource.schema_url:
            body.append(_field(b"\x1a", resource.schema_url.encode()))
        request.append(_field(b"\x0a", b"".join(body)))
    return b"".join(request)


class SpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter with the request encoded by :func:`encode`."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        client = getattr(self, "_client", None)
        if client is None or getattr(self, "_shutdown", False):
            return super().export(spans)  # an SDK of another shape: its own way
        try:
            data = encode(spans)
        except Exception:
            log.exception("could not encode %d spans for export", len(spans))
            return SpanExportResult.FAILURE
        result = client.export(data)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE
