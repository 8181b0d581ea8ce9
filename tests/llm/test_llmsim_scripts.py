"""llmsim script fields ``repeat`` and ``raw_arguments``, and the unparsed-arguments mark."""

from __future__ import annotations

import pytest

from everloop.domain.messages import JsonValue, Message, TextPart, ToolCallPart, ToolResultPart
from everloop.domain.tool_arguments import (
    RAW_ARGUMENTS_LIMIT,
    arguments_text,
    parse_arguments_text,
    unparsed,
)
from everloop.llm.base import Completed, ModelRequest, ToolSpec
from everloop.llm.llmsim import LlmSim, LlmSimScriptError, parse_llmsim_script

TOOLS = (ToolSpec("add", "add", {"type": "object"}),)
USER = Message("message_u", "user", (TextPart("add it"),))


async def _answer(script: JsonValue, *messages: Message) -> Completed:
    request = ModelRequest(model="m", system_prompt=None, messages=messages, tools=TOOLS)
    items = [item async for item in LlmSim(script).stream(request)]
    last = items[-1]
    assert isinstance(last, Completed)
    return last


def _round(call: ToolCallPart, n: int) -> tuple[Message, Message]:
    result = ToolResultPart(call.id, call.name, {"result": 3})
    return (
        Message(f"message_a{n}", "agent", (call,)),
        Message(f"message_r{n}", "tool_result", (result,)),
    )


async def test_a_repeat_rule_fires_after_each_result_up_to_its_count() -> None:
    script = {"tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 1}, "repeat": 3}]}
    history: tuple[Message, ...] = (USER,)
    ids = []
    for n in range(3):
        answer = await _answer(script, *history)
        (call,) = answer.tool_calls
        assert call.arguments == {"a": 1}
        ids.append(call.id)
        history += _round(call, n)
    assert len(set(ids)) == 3
    done = await _answer(script, *history)
    assert done.tool_calls == ()
    assert done.text.startswith("Echo: add it")


async def test_raw_arguments_give_a_call_marked_unparsed() -> None:
    script = {"tool_calls": [{"when": "add", "name": "add", "raw_arguments": '{"a": 1,'}]}
    (call,) = (await _answer(script, USER)).tool_calls
    found = unparsed(call.arguments)
    assert found is not None
    assert found.raw == '{"a": 1,'
    assert found.error.endswith("at line 1 column 9 (char 8)")
    assert arguments_text(call.arguments) == '{"a": 1,'


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({"repeat": 0}, "tool_calls[0].repeat"),
        ({"repeat": True}, "tool_calls[0].repeat"),
        ({"raw_arguments": 3}, "tool_calls[0].raw_arguments"),
        ({"raw_arguments": "{}", "arguments": {}}, "tool_calls[0].raw_arguments"),
    ],
)
def test_bad_rule_fields_are_named(rule: dict[str, JsonValue], path: str) -> None:
    with pytest.raises(LlmSimScriptError) as caught:
        parse_llmsim_script({"tool_calls": [{"when": "x", "name": "add"} | rule]})
    assert caught.value.path == path


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("[1, 2]", "expected a JSON object, got an array"),
        ('"text"', "expected a JSON object, got a string"),
        ("{", "Expecting property name enclosed in double quotes at line 1 column 2 (char 1)"),
    ],
)
def test_text_that_is_not_an_object_is_marked(raw: str, error: str) -> None:
    found = unparsed(parse_arguments_text(raw))
    assert found is not None and found.error == error and found.raw == raw


def test_parsed_arguments_are_unmarked_and_long_text_is_bounded() -> None:
    assert parse_arguments_text('{"a": 1}') == {"a": 1}
    assert parse_arguments_text("  ") == {}
    assert unparsed({"a": 1}) is None
    found = unparsed(parse_arguments_text("{" + "x" * 5000))
    assert found is not None and found.truncated and len(found.raw) == RAW_ARGUMENTS_LIMIT
