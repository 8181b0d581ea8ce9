"""Traces of turns (issue 24): a turn with two tool calls is one trace, its id the turn id's
hex, with reason and act spans, model calls under reason (GenAI attributes) and tool calls
under act; the HTTP request that started it is a span linked to it. Spans are read with the
OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended

from everloop.telemetry import tracing

pytestmark = pytest.mark.timeout(60)

TWO_ADDS = {
    "response": {"type": "fixed", "text": "Both sums are done."},
    "tool_calls": [
        {"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}},
        {"when": "add", "name": "add", "arguments": {"a": 4, "b": 5}},
    ],
}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install([SimpleSpanProcessor(exporter)])
    yield exporter
    tracing.shutdown()


def _children(found: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return sorted(
        (s for s in found if s.parent is not None and s.parent.span_id == parent.context.span_id),
        key=lambda s: s.start_time or 0,
    )


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_a_turn_with_two_tool_calls_is_one_trace(
    engine: Api, spans: InMemorySpanExporter
) -> None:
    sid = await new_session(engine, TWO_ADDS, capabilities=[{"ref": "test_math"}])
    posted = await send(engine, sid, "please add twice")
    turn_id = posted["turn_id"]
    found_events = await wait_turns_ended(engine, sid)
    assert "turn.completed" in [e["type"] for e in found_events]

    found = list(spans.get_finished_spans())
    trace_id = tracing.turn_trace_id(turn_id)
    assert f"{trace_id:032x}" == turn_id.removeprefix("turn_")
    turn = [s for s in found if s.context is not None and s.context.trace_id == trace_id]
    [root] = [s for s in turn if s.parent is None]
    assert root.name == "turn"
    assert root.context is not None
    assert root.context.span_id == tracing.turn_root_span_id(turn_id)
    attrs = _attributes(root)
    assert attrs["everloop.turn.iterations"] == 2
    assert attrs["everloop.session.id"] == sid
    assert attrs["everloop.turn.id"] == turn_id
    assert attrs["everloop.turn.status"] == "completed"
    assert attrs["everloop.turn.resumed"] is False

    # reason(1) -> act(1) -> reason(2), in that order, directly under the turn.
    phases = _children(turn, root)
    assert [(p.name, _attributes(p)["everloop.iteration"]) for p in phases] == [
        ("reason", 1),
        ("act", 1),
        ("reason", 2),
    ]
    generations = [e for e in found_events if e["type"] == "llm.generation"]
    for reason, generation in zip((phases[0], phases[2]), generations, strict=True):
        [call] = _children(turn, reason)
        usage = generation["data"]["metadata"]["usage"]
        model = _attributes(call)
        assert call.name == f"chat {model['gen_ai.request.model']}"
        assert model["gen_ai.system"] == "llmsim"
        assert model["gen_ai.operation.name"] == "chat"
        assert model["gen_ai.usage.input_tokens"] == usage["input_tokens"] > 0
        assert model["gen_ai.usage.output_tokens"] == usage["output_tokens"] > 0
        assert model["gen_ai.response.finish_reasons"]
        # No prompt or completion text unless EVERLOOP_TRACE_CONTENT says so.
        assert "gen_ai.input.messages" not in model and "gen_ai.output.messages" not in model
    assert root.attributes is not None
    assert root.attributes["gen_ai.usage.output_tokens"] == sum(
        g["data"]["metadata"]["usage"]["output_tokens"] for g in generations
    )

    tools = _children(turn, phases[1])
    assert [t.name for t in tools] == ["execute_tool add", "execute_tool add"]
    started = [e["data"]["tool_call"]["id"] for e in found_events if e["type"] == "tool.started"]
    assert sorted(_attributes(t)["gen_ai.tool.call.id"] for t in tools) == sorted(started)
    for tool in tools:
        assert _attributes(tool)["gen_ai.tool.name"] == "add"
        assert _attributes(tool)["everloop.tool.outcome"] == "ok"
        assert _attributes(tool)["everloop.tool.duration_ms"] >= 0
    # Every span of the turn is one of these: nothing stray in its trace.
    assert len(turn) == 1 + 3 + 2 + 2

    # The request that posted the message is a span of its own trace, linked to the turn.
    [post] = [s for s in found if s.name == "POST /api/v1/sessions/{session_id}/messages"]
    assert _attributes(post)["http.response.status_code"] == 201
    assert [(link.context.trace_id, link.context.span_id) for link in post.links] == [
        (trace_id, tracing.turn_root_span_id(turn_id))
    ]
    # And the events of the turn are what the trace id finds.
    listed = await engine.client.get(f"/v1/sessions/{sid}/events", params={"trace_id": turn_id})
    assert {e["context"]["turn_id"] for e in listed.json()["data"]} == {turn_id}


async def test_prompts_and_completions_only_when_asked(
    engine: Api, spans: InMemorySpanExporter
) -> None:
    tracing.install([SimpleSpanProcessor(spans)], content=True)
    sid = await new_session(engine, {"response": {"type": "fixed", "text": "Hi there"}})
    await send(engine, sid, "hello model")
    await wait_turns_ended(engine, sid)
    [call] = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    prompt = json.loads(str(_attributes(call)["gen_ai.input.messages"]))
    assert prompt[-1]["content"] == [{"type": "text", "text": "hello model"}]
    completion = json.loads(str(_attributes(call)["gen_ai.output.messages"]))
    assert completion == {"text": "Hi there", "tool_calls": []}


def test_trace_ids_of_turns_are_their_hex_and_stable() -> None:
    turn_id = "turn_0190f3c2a1b27c3d8e9fa0b1c2d3e4f5"
    assert tracing.turn_trace_id(turn_id) == int("0190f3c2a1b27c3d8e9fa0b1c2d3e4f5", 16)
    assert tracing.turn_root_span_id(turn_id) == tracing.turn_root_span_id(turn_id) != 0
    assert tracing.turn_root_span_id(turn_id) != tracing.turn_root_span_id(turn_id[:-1] + "6")
    assert tracing.turn_trace_id("turn_not-hex") != 0


def test_sampling_keeps_a_share_of_turns_decided_by_their_ids() -> None:
    from everloop import ids

    turns = [ids.new_id("turn") for _ in range(2000)]

    def kept(ratio: float) -> set[str]:
        exporter = InMemorySpanExporter()
        tracing.install([SimpleSpanProcessor(exporter)], sample_ratio=ratio)
        try:
            for turn_id in turns:
                with tracing.turn_root(turn_id, {"everloop.turn.id": turn_id}), tracing.span("x"):
                    pass
        finally:
            tracing.shutdown()
        found = exporter.get_finished_spans()
        roots = {str((s.attributes or {})["everloop.turn.id"]) for s in found if s.parent is None}
        # A child goes with its root: both or neither.
        assert len(found) == 2 * len(roots)
        return roots

    tenth = kept(0.1)
    assert 120 <= len(tenth) <= 280  # ~200 of 2000, however the ids fall
    assert kept(0.1) == tenth  # every process decides alike for a turn
    assert kept(0.0) == set()
    assert len(kept(1.0)) == len(turns)


async def test_a_turn_stopped_by_a_shutdown_leaves_its_root_to_the_next_process(
    spans: InMemorySpanExporter,
) -> None:
    import asyncio

    from everloop.telemetry import turns as telemetry

    turn_id = "turn_0190f3c2a1b27c3d8e9fa0b1c2d3e4f5"
    inside = asyncio.Event()

    async def run() -> None:
        with telemetry.turn("session_x", turn_id), telemetry.phase("reason", 1):
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(run())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [reason] = spans.get_finished_spans()  # the root is not ended: it would be exported twice
    assert reason.name == "reason"
    assert reason.parent is not None
    assert reason.parent.span_id == tracing.turn_root_span_id(turn_id)
