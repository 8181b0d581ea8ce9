"""CPU of the telemetry hooks of one turn, in-process, without a server (issue 24).

Replays what a one-tool turn reports (its request's span, the turn, reason / model call, act /
tool call, reason / model call) N times with tracing off, with tracing that drops every trace
(sampling), keeps one in ten, and keeps all, the spans encoded as an OTLP protobuf request by a
batch processor's thread (as for export, without the HTTP post) with the encoder everloop's
exporter uses; ``--sdk-encoder`` uses the OpenTelemetry SDK's instead. CPU is the process's (the
processor's thread included), per turn.

Usage: python benchmarks/telemetry_hooks.py [--turns 3000]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from everloop import ids
from everloop.telemetry import otlp, tracing
from everloop.telemetry import turns as telemetry


class Encoder(SpanExporter):
    def __init__(self, sdk: bool) -> None:
        self.sdk = sdk

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.sdk:
            encode_spans(spans).SerializeToString()
        else:
            otlp.encode(spans)
        return SpanExportResult.SUCCESS


def one_turn(turn_id: str) -> None:
    attributes: dict[str, Any] = {"http.request.method": "POST", "everloop.request_id": "r"}
    with tracing.server_span("POST", attributes, {}) as request:
        tracing.link_to_turn(turn_id)
        if request is not None:
            request.set_attributes({"http.route": "/api/v1/x", "http.response.status_code": 201})
    with telemetry.turn("session_x", turn_id) as record:
        record.opened(replayed=False)
        for iteration in (1, 2):
            with (
                telemetry.phase("reason", iteration),
                telemetry.model_call("llmsim", "bench", iteration) as call,
            ):
                call.ok, call.attempts, call.finish_reason = True, 1, "stop"
                call.input_tokens, call.output_tokens, call.ttft_ms = 40, 5, 1
            if iteration == 1:
                with telemetry.phase("act", 1), telemetry.tool_call("add", "call_1") as tool:
                    tool.outcome = "ok"
        record.observe(2, 80, 10)
        record.status = "completed"


def measure(turns: list[str], ratio: float | None, *, sdk: bool = False) -> float:
    processor = None
    if ratio is not None:
        processor = BatchSpanProcessor(Encoder(sdk), max_queue_size=100_000)
        if sdk:  # the SDK's encoder reads ReadableSpans
            tracing.install([processor], sample_ratio=ratio)
        else:  # as configure() sets up the OTLP exporter
            tracing.install([], direct=[processor], sample_ratio=ratio)
    started = time.process_time()
    for turn_id in turns:
        one_turn(turn_id)
    if processor is not None:
        processor.force_flush()
        tracing.shutdown()
    return (time.process_time() - started) / len(turns) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--sdk-encoder", action="store_true", help="encode with the SDK's encoder")
    args = parser.parse_args()
    logging.getLogger("everloop.turns").setLevel(logging.WARNING)  # the line is not measured
    turns = [ids.new_id("turn") for _ in range(args.turns)]
    measure(turns[:200], None)  # warm-up
    for label, ratio in (("off", None), ("dropped", 0.0), ("one in ten", 0.1), ("all", 1.0)):
        cpu = measure(turns, ratio, sdk=args.sdk_encoder)
        print(f"{label:>11}: {cpu:7.1f} us CPU per turn")
    print(f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
