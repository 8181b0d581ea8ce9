"""Event payload builders: shapes of digest §7 and the Everruns OpenAPI ``*Data`` schemas."""

from __future__ import annotations

import json
from typing import get_args

from everloop.domain.messages import Message, TextPart, ToolCallPart, ToolResultPart
from everloop.domain.usage import TokenUsage
from everloop.engine import events
from everloop.llm.base import ToolSpec

USAGE = TokenUsage(10, 5)
CALL = ToolCallPart("call_1", "add", {"a": 1, "b": 2})


def test_event_types_are_the_closed_vocabulary() -> None:
    assert get_args(events.EventType) == events.EVENT_TYPES
    assert events.TURN_COMPLETED in events.TERMINAL_TURN_EVENTS
    assert all(t.count(".") >= 1 for t in events.EVENT_TYPES)


def test_input_message() -> None:
    message = Message("message_1", "user", (TextPart("hi"),), "2026-01-01T00:00:00.000Z")
    assert events.input_message(message=message) == {
        "message": {
            "id": "message_1",
            "role": "user",
            "content": [{"type": "text", "text": "hi"}],
            "created_at": "2026-01-01T00:00:00.000Z",
        }
    }


def test_turn_payloads() -> None:
    assert events.turn_started(turn_id="t", input_message_id="m", input_content="hi") == {
        "turn_id": "t",
        "input_message_id": "m",
        "input_content": "hi",
    }
    completed = events.turn_completed(
        turn_id="t",
        iterations=2,
        usage=USAGE,
        final_message_id="m2",
        final_answer="x" * 500,
        duration_ms=12,
        time_to_first_token_ms=3,
        tool_call_count=1,
        llm_call_count=2,
    )
    assert completed["usage"] == USAGE.to_json()
    preview = completed["final_answer_preview"]
    assert isinstance(preview, str)
    assert len(preview) == events.PREVIEW_CHARS
    assert completed["status"] == "completed"
    failed = events.turn_failed(turn_id="t", error="boom", error_code="model_call_failed")
    assert failed["error_code"] == "model_call_failed"
    assert failed["error_disclosure"] == "standard"
    assert events.turn_cancelled(turn_id="t", reason="user", usage=None) == {
        "turn_id": "t",
        "reason": "user",
        "usage": None,
    }


def test_output_message_completed_derives_the_phase() -> None:
    with_calls = Message("m", "agent", (CALL,))
    answer = Message("m2", "agent", (TextPart("done"),))
    data = events.output_message_completed(message=with_calls, model="llmsim", usage=USAGE)
    assert data["message"] == {
        "id": "m",
        "role": "agent",
        "content": [
            {"type": "tool_call", "id": "call_1", "name": "add", "arguments": CALL.arguments}
        ],
        "created_at": None,
        "phase": "commentary",
    }
    assert data["metadata"] == {"model": "llmsim", "model_id": None, "provider_id": None}
    data = events.output_message_completed(message=answer, model="llmsim", usage=None)
    assert isinstance(data["message"], dict)
    assert data["message"]["phase"] == "final_answer"
    assert "error_code" not in data


def test_reason_and_output_stream_payloads() -> None:
    assert events.reason_started(model="llmsim")["metadata"] == {
        "model": "llmsim",
        "model_id": None,
        "provider_id": None,
    }
    done = events.reason_completed(
        success=True, text="hi", tool_call_count=0, usage=USAGE, duration_ms=1
    )
    assert done["has_tool_calls"] is False
    assert done["text_preview"] == "hi"
    started = events.output_message_started(turn_id="t", message_id="m", model="x", iteration=1)
    assert started == {"turn_id": "t", "message_id": "m", "model": "x", "iteration": 1}
    delta = events.output_message_delta(turn_id="t", message_id="m", delta="b", accumulated="ab")
    assert delta["accumulated"] == "ab"


def test_act_and_tool_payloads() -> None:
    ok = ToolResultPart("call_1", "add", {"result": 3})
    bad = ToolResultPart("call_2", "divide", error="division by zero")
    assert events.act_started(tool_calls=(CALL,))["tool_calls"] == [
        {"id": "call_1", "name": "add", "display_name": None, "narration": None}
    ]
    act = events.act_completed(results=(ok, bad), duration_ms=4)
    assert (act["success_count"], act["error_count"], act["completed"]) == (1, 1, True)
    assert events.tool_started(tool_call=CALL)["tool_call"] == {
        "id": "call_1",
        "name": "add",
        "arguments": {"a": 1, "b": 2},
    }
    completed = events.tool_completed(tool_call=CALL, result=ok, duration_ms=1)
    assert completed["status"] == "success"
    assert completed["result"] == [{"type": "text", "text": '{"result":3}'}]
    assert completed["error"] is None
    assert completed["error_kind"] is None
    failed = events.tool_completed(tool_call=CALL, result=bad, duration_ms=1)
    assert (failed["success"], failed["status"], failed["result"]) == (False, "error", None)
    assert failed["error"] == "division by zero"
    assert failed["error_kind"] is None
    unknown = ToolResultPart("call_1", "add", error="in doubt: ...")
    in_doubt = events.tool_completed(
        tool_call=CALL, result=unknown, duration_ms=0, error_kind="in_doubt"
    )
    assert (in_doubt["status"], in_doubt["error_kind"]) == ("error", "in_doubt")
    assert events.transcript_repaired(tool_call=CALL) == {
        "tool_call_id": "call_1",
        "tool_name": "add",
        "action": "synthesize",
    }
    text = events.tool_completed(
        tool_call=CALL, result=ToolResultPart("c", result="plain"), duration_ms=None
    )
    assert text["result"] == [{"type": "text", "text": "plain"}]


def test_llm_generation_includes_the_system_prompt() -> None:
    data = events.llm_generation(
        model="llmsim",
        system_prompt="Be nice.",
        messages=(Message("m", "user", (TextPart("hi"),)),),
        tools=(ToolSpec("add", "Add", {"type": "object"}),),
        text="",
        tool_calls=(CALL,),
        usage=USAGE,
        success=True,
        finish_reason="tool_calls",
    )
    messages = data["messages"]
    assert isinstance(messages, list)
    assert [m["role"] for m in messages if isinstance(m, dict)] == ["system", "user"]
    assert data["tools"] == [{"name": "add", "description": "Add"}]
    assert isinstance(data["metadata"], dict)
    assert data["metadata"]["finish_reasons"] == ["tool_calls"]
    json.dumps(data)


def test_session_payloads() -> None:
    assert events.session_started(harness_id="h", agent_id=None, model_id=None) == {
        "harness_id": "h",
        "agent_id": None,
        "model_id": None,
    }
    assert events.session_activated(turn_id="t", input_message_id="m") == {
        "turn_id": "t",
        "input_message_id": "m",
    }
    assert events.session_idled(turn_id="t", iterations=1, usage=USAGE)["usage"] == USAGE.to_json()
