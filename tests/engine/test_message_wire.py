"""Messages, content parts and token usage on the wire (one serialiser, exact round trips)."""

from __future__ import annotations

import pytest

from everloop.domain.messages import (
    ImagePart,
    JsonValue,
    Message,
    Part,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    message_from_json,
    message_to_json,
    part_from_json,
    part_to_json,
)
from everloop.domain.usage import TokenUsage


@pytest.mark.parametrize(
    ("part", "wire"),
    [
        (TextPart("hi"), {"type": "text", "text": "hi"}),
        (
            ImagePart("https://x/y.png", "image/png"),
            {"type": "image", "url": "https://x/y.png", "media_type": "image/png"},
        ),
        (
            ToolCallPart("call_1", "add", {"a": 1}),
            {"type": "tool_call", "id": "call_1", "name": "add", "arguments": {"a": 1}},
        ),
        (
            ToolResultPart("call_1", result={"result": 1}),
            {
                "type": "tool_result",
                "tool_call_id": "call_1",
                "result": {"result": 1},
                "error": None,
            },
        ),
        (
            ToolResultPart("call_1", name="divide", error="division by zero"),
            {
                "type": "tool_result",
                "tool_call_id": "call_1",
                "name": "divide",
                "result": None,
                "error": "division by zero",
            },
        ),
    ],
)
def test_part_wire_shape(part: Part, wire: JsonValue) -> None:
    assert part_to_json(part) == wire
    assert part_from_json(wire) == part
    assert isinstance(wire, dict)
    assert part.kind == wire["type"]


def test_message_round_trip_and_helpers() -> None:
    message = Message(
        "message_1",
        "agent",
        (TextPart("a"), ToolCallPart("c", "add", {}), TextPart("b")),
        "2026-01-01T00:00:00.000Z",
    )
    assert message_from_json(message_to_json(message)) == message
    assert message.text == "ab"
    assert message.tool_calls == (ToolCallPart("c", "add", {}),)
    assert ToolResultPart("c").succeeded
    assert not ToolResultPart("c", error="x").succeeded


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        ({"type": "video"}, "part.type"),
        ({"type": "text"}, "text"),
        ({"type": "tool_call", "id": "c", "name": "n", "arguments": []}, "arguments"),
        ("text", "part"),
    ],
)
def test_bad_parts(wire: JsonValue, problem: str) -> None:
    with pytest.raises(ValueError, match=f"^{problem}:"):
        part_from_json(wire)


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        ({"id": "m", "role": "system", "content": []}, "message.role"),
        ({"id": "m", "role": "user", "content": "hi"}, "message.content"),
        ({"role": "user", "content": []}, "id"),
    ],
)
def test_bad_messages(wire: JsonValue, problem: str) -> None:
    with pytest.raises(ValueError, match=f"^{problem}:"):
        message_from_json(wire)


def test_usage_adds_and_round_trips() -> None:
    total = TokenUsage(1, 2, 3, 4) + TokenUsage(10, 20, 30, 40)
    assert total == TokenUsage(11, 22, 33, 44)
    assert total.total_tokens == 110
    assert TokenUsage.from_json(total.to_json()) == total
    assert TokenUsage.from_json(
        {"input_tokens": 5, "output_tokens": 6, "cache_read_tokens": None}
    ) == (TokenUsage(5, 6))
    with pytest.raises(ValueError, match=r"usage\.output_tokens"):
        TokenUsage.from_json({"input_tokens": 1, "output_tokens": -1})
    with pytest.raises(ValueError, match="usage"):
        TokenUsage.from_json([])
