"""The pure checks of ``engine.loop_guard``: counting calls in a row, and the repair errors for
what a scripted model cannot produce (a tool name it was not offered)."""

from __future__ import annotations

from everloop.capabilities.tool_call_repair import MAX_LISTED_TOOLS, repair_error
from everloop.domain.messages import Message, ToolCallPart
from everloop.engine.loop_guard import call_key, repeats_in_a_row


def _agent(n: int, *calls: ToolCallPart) -> Message:
    return Message(f"message_{n}", "agent", calls)


def test_calls_in_a_row_count_across_messages_and_by_canonical_arguments() -> None:
    a1 = ToolCallPart("c1", "add", {"a": 1, "b": 2})
    a2 = ToolCallPart("c2", "add", {"b": 2, "a": 1})  # same call, keys in another order
    other = ToolCallPart("c3", "add", {"a": 1, "b": 3})
    a3 = ToolCallPart("c4", "add", {"a": 1, "b": 2})
    a4 = ToolCallPart("c5", "add", {"a": 1, "b": 2})
    counts = repeats_in_a_row([_agent(1, a1), _agent(2, a2), _agent(3, other, a3, a4)])
    assert counts == {"c1": 1, "c2": 2, "c3": 1, "c4": 1, "c5": 2}
    assert call_key(a1) == call_key(a2) != call_key(other)


def test_an_unknown_tool_lists_the_offered_names_bounded() -> None:
    call = ToolCallPart("c1", "ad", {})
    assert repair_error(call, None, ["subtract", "add"]) == (
        "unknown tool 'ad': the available tools are: add, subtract. "
        "Call one of them by its exact name."
    )
    many = [f"tool_{i:03}" for i in range(MAX_LISTED_TOOLS + 5)]
    error = repair_error(call, None, many)
    assert error is not None and error.count("tool_") == MAX_LISTED_TOOLS
    assert "(and 5 more)" in error
