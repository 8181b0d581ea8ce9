"""``OTEL_EXPORTER_OTLP_ENDPOINT`` sends a real ``everloop serve``'s spans over OTLP/HTTP
(issue 24): a receiver on 127.0.0.1 in the test decodes them with ``opentelemetry-proto``. The
turn's spans carry its trace id and the GenAI attributes; no span holds the admin token."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from everloop.telemetry import tracing
from tests.e2e.conftest import Api, Server, wait_for

pytestmark = pytest.mark.slow


class Receiver:
    """An OTLP/HTTP traces endpoint that keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.raw = bytearray()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.requests.append(request)
                received.paths.append(self.path)
                received.raw += body
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[Any]:
        return [
            span
            for request in list(self.requests)
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def server(start_server: Callable[..., Server], receiver: Receiver) -> Server:
    return start_server(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="100")


def attributes(span: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in span.attributes:
        kind = item.value.WhichOneof("value")
        value = getattr(item.value, kind)
        values[item.key] = list(value.values) if kind == "array_value" else value
    return values


def test_spans_reach_an_otlp_endpoint(server: Server, api: Api, receiver: Receiver) -> None:
    model_id = api.llmsim_model(
        {
            "response": {"type": "fixed", "text": "The sum is 5."},
            "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
        }
    )
    session_id = api.create_session(model_id, capabilities=[{"ref": "test_math"}])
    turn_id = api.post_message(session_id, "please add 2 and 3")["turn_id"]
    api.wait_type(session_id, "session.idled")
    trace_id = tracing.turn_trace_id(turn_id).to_bytes(16, "big")

    def turn_spans() -> list[Any] | None:
        found = [s for s in receiver.spans() if s.trace_id == trace_id]
        return found if any(not s.parent_span_id for s in found) else None

    spans = wait_for(turn_spans, timeout=30, what="the turn's spans at the receiver")
    assert set(receiver.paths) == {"/v1/traces"}
    names = sorted(s.name for s in spans)
    model = next(s for s in spans if s.name.startswith("chat "))
    assert names == sorted(
        ["turn", "reason", "reason", "act", "execute_tool add", *[model.name] * 2]
    )
    assert attributes(model)["gen_ai.system"] == "llmsim"
    assert attributes(model)["gen_ai.usage.output_tokens"] > 0
    assert attributes(model)["gen_ai.response.finish_reasons"]
    [root] = [s for s in spans if not s.parent_span_id]
    assert root.span_id == tracing.turn_root_span_id(turn_id).to_bytes(8, "big")
    assert attributes(root)["everloop.turn.status"] == "completed"
    resource = {
        a.key: a.value.string_value
        for a in receiver.requests[0].resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "everloop"
    assert server.token.encode() not in receiver.raw
    assert b"please add 2 and 3" not in receiver.raw  # no prompt text unless asked
