"""llmsim, the scripted in-process model."""

from __future__ import annotations

import asyncio
import json
import math
import time

import pytest

from everloop.domain.messages import JsonValue, Message, TextPart, ToolCallPart, ToolResultPart
from everloop.llm.base import (
    Completed,
    ModelCallError,
    ModelDriver,
    ModelRequest,
    ModelStreamEvent,
    TextDelta,
    ToolSpec,
    complete,
)
from everloop.llm.llmsim import LlmSim, LlmSimScriptError, validate_llmsim_script

TIME_TOOL = ToolSpec("get_current_time", "Time", {"type": "object"})
ADD_TOOL = ToolSpec("add", "Add", {"type": "object"})


def _user(text: str, message_id: str = "message_u") -> Message:
    return Message(message_id, "user", (TextPart(text),))


def _agent(text: str) -> Message:
    return Message("message_a", "agent", (TextPart(text),))


def _request(
    *messages: Message,
    tools: tuple[ToolSpec, ...] = (TIME_TOOL,),
    attempt: int | None = None,
    system_prompt: str | None = None,
) -> ModelRequest:
    settings: dict[str, JsonValue] = {} if attempt is None else {"attempt": attempt}
    return ModelRequest("llmsim", system_prompt, messages, tools, settings)


async def _events(script: JsonValue, request: ModelRequest) -> list[ModelStreamEvent]:
    return [event async for event in LlmSim(script).stream(request)]


async def _answer(script: JsonValue, request: ModelRequest) -> Completed:
    return await complete(LlmSim(script), request)


def test_llmsim_is_a_model_driver() -> None:
    driver: ModelDriver = LlmSim()
    assert driver is not None


@pytest.mark.parametrize(
    ("script", "messages", "expected"),
    [
        (None, (_user("hello"),), "Echo: hello"),
        ({"response": {"type": "echo"}}, (), "Echo: "),
        ({"response": {"type": "fixed", "text": "Fixed!"}}, (_user("x"),), "Fixed!"),
        ({"response": {"type": "sequence", "texts": ["a", "b"]}}, (_user("x"),), "a"),
        (
            {"response": {"type": "sequence", "texts": ["a", "b"]}},
            (_user("x"), _agent("a"), _user("y")),
            "b",
        ),
        (
            {"response": {"type": "sequence", "texts": ["a", "b"]}},
            (_user("x"), _agent("a"), _user("y"), _agent("b"), _user("z")),
            "a",
        ),
        (
            {"response": {"type": "lorem", "tokens": 5}},
            (_user("x"),),
            "Lorem ipsum dolor si",
        ),
    ],
)
async def test_responses(script: JsonValue, messages: tuple[Message, ...], expected: str) -> None:
    done = await _answer(script, _request(*messages))
    assert done.text == expected
    assert done.tool_calls == ()
    assert done.finish_reason == "stop"


async def test_lorem_is_long_and_deterministic() -> None:
    script: JsonValue = {"response": {"type": "lorem", "tokens": 500}}
    first = await _answer(script, _request(_user("x")))
    second = await _answer(script, _request(_user("y")))
    assert len(first.text) == 2000
    assert first.text == second.text
    assert first.usage.output_tokens == 500


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (429, True), (500, True), (503, True)]
)
async def test_error_response(status: int, retryable: bool) -> None:
    script: JsonValue = {"response": {"type": "error", "status": status, "message": "boom"}}
    with pytest.raises(ModelCallError) as caught:
        await _answer(script, _request(_user("time")))
    assert caught.value.status == status
    assert caught.value.retryable is retryable
    assert caught.value.message == "boom"


@pytest.mark.parametrize("key", ["fail_attempts", "times"])
async def test_error_only_for_the_first_attempts(key: str) -> None:
    script: JsonValue = {
        "response": {"type": "error", "status": 503, "message": "busy", key: 2},
        "tool_calls": [],
    }
    for attempt in (None, 1, 2):
        with pytest.raises(ModelCallError):
            await _answer(script, _request(_user("hi"), attempt=attempt))
    done = await _answer(script, _request(_user("hi"), attempt=3))
    assert done.text == "Echo: hi"


async def test_error_then_response() -> None:
    script: JsonValue = {
        "response": {
            "type": "error",
            "status": 500,
            "fail_attempts": 1,
            "then": {"type": "fixed", "text": "recovered"},
        }
    }
    assert (await _answer(script, _request(_user("hi"), attempt=2))).text == "recovered"


async def test_tool_rule_fires_on_the_user_message() -> None:
    done = await _answer(None, _request(_user("What TIME is it?")))
    assert done.text == ""
    assert done.finish_reason == "tool_calls"
    (call,) = done.tool_calls
    assert call.name == "get_current_time"
    assert call.arguments == {}
    assert call.id.startswith("call_")
    assert len(call.id) == len("call_") + 24
    int(call.id[5:], 16)


async def test_tool_rules_need_the_tool_to_be_offered() -> None:
    done = await _answer(None, _request(_user("what time is it"), tools=(ADD_TOOL,)))
    assert done.tool_calls == ()
    assert done.text == "Echo: what time is it"


async def test_tool_rules_only_match_their_pattern() -> None:
    done = await _answer(None, _request(_user("timezone talk")))  # \btime\b does not match
    assert done.tool_calls == ()


async def test_all_matching_rules_fire_in_one_response() -> None:
    script: JsonValue = {
        "tool_calls": [
            {"when": "time", "name": "get_current_time", "arguments": {}},
            {"when": "add", "name": "add", "arguments": {"a": 1, "b": 2}},
            {"when": "nomatch", "name": "add", "arguments": {}},
        ]
    }
    done = await _answer(script, _request(_user("add the time"), tools=(TIME_TOOL, ADD_TOOL)))
    assert [(c.name, c.arguments) for c in done.tool_calls] == [
        ("get_current_time", {}),
        ("add", {"a": 1, "b": 2}),
    ]
    assert len({c.id for c in done.tool_calls}) == 2


async def test_tool_call_ids_and_usage_are_deterministic() -> None:
    request = _request(_user("what time"), system_prompt="sys")
    first = await _answer(None, request)
    again = await _answer(None, request)
    assert first == again
    later = await _answer(None, _request(_user("a"), _agent("b"), _user("what time")))
    assert later.tool_calls[0].id != first.tool_calls[0].id


async def test_no_tool_call_after_tool_results() -> None:
    call = ToolCallPart("call_1", "get_current_time", {})
    messages = (
        _user("what time is it"),
        Message("message_a", "agent", (call,)),
        Message("message_r", "tool_result", (ToolResultPart("call_1", result={"iso": "now"}),)),
    )
    done = await _answer(None, _request(*messages))
    assert done.tool_calls == ()
    assert done.text == 'Echo: what time is it\nget_current_time: {"iso": "now"}'


async def test_echo_lists_errors_and_only_this_turns_results() -> None:
    old = ToolCallPart("call_old", "add", {})
    messages = (
        _user("first"),
        Message("message_a0", "agent", (old,)),
        Message("message_r0", "tool_result", (ToolResultPart("call_old", result=1),)),
        _user("second", "message_u2"),
        Message("message_a1", "agent", (ToolCallPart("call_1", "add", {}),)),
        Message(
            "message_r1",
            "tool_result",
            (ToolResultPart("call_1", name="divide", error="division by zero"),),
        ),
    )
    done = await _answer(None, _request(*messages))
    assert done.text == "Echo: second\ndivide: error: division by zero"


async def test_usage_counts_characters() -> None:
    request = _request(_user("abcdefghi"), system_prompt="sys", tools=())
    done = await _answer({"response": {"type": "fixed", "text": "12345"}}, request)
    assert done.usage.input_tokens == math.ceil((3 + 9) / 4)
    assert done.usage.output_tokens == 2
    assert (done.usage.cache_read_tokens, done.usage.cache_creation_tokens) == (0, 0)


async def test_tool_call_usage_counts_the_calls_json() -> None:
    done = await _answer(None, _request(_user("time")))
    wire = [
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": {}} for c in done.tool_calls
    ]
    assert done.usage.output_tokens == math.ceil(len(json.dumps(wire)) / 4)


@pytest.mark.parametrize(
    ("chunk_chars", "sizes"), [(16, [16, 16, 8]), (7, [7] * 5 + [5]), (100, [40])]
)
async def test_chunking(chunk_chars: int, sizes: list[int]) -> None:
    text = "x" * 40
    script: dict[str, JsonValue] = {"response": {"type": "fixed", "text": text}}
    if chunk_chars != 16:  # 16 is the default
        script["chunk_chars"] = chunk_chars
    events = await _events(script, _request(_user("hi")))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert [len(d.text) for d in deltas] == sizes
    assert isinstance(events[-1], Completed)
    assert "".join(d.text for d in deltas) == events[-1].text


async def test_a_chunk_delay_paces_the_same_deltas() -> None:
    script: JsonValue = {
        "response": {"type": "fixed", "text": "abcdefgh"},
        "chunk_chars": 3,
        "chunk_delay_ms": 1,
    }
    events = await _events(script, _request(_user("hi")))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["abc", "def", "gh"]


async def test_latency_before_first_token() -> None:
    script: JsonValue = {"latency_ms": 30, "response": {"type": "fixed", "text": "hi"}}
    started = time.monotonic()
    events = await _events(script, _request(_user("x")))
    assert time.monotonic() - started >= 0.025
    assert events[0] == TextDelta("hi")


async def test_latency_is_cancellable() -> None:
    script: JsonValue = {"latency_ms": 10_000}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_answer(script, _request(_user("x"))), 0.05)


@pytest.mark.parametrize(
    ("script", "path"),
    [
        ([], "script"),
        ({"bogus": 1}, "bogus"),
        ({"response": "echo"}, "response"),
        ({"response": {"type": "nope"}}, "response.type"),
        ({"response": {}}, "response.type"),
        ({"response": {"type": "fixed"}}, "response.text"),
        ({"response": {"type": "fixed", "text": "a", "extra": 1}}, "response.extra"),
        ({"response": {"type": "sequence", "texts": []}}, "response.texts"),
        ({"response": {"type": "sequence", "texts": ["a", 2]}}, "response.texts[1]"),
        ({"response": {"type": "lorem", "tokens": -1}}, "response.tokens"),
        ({"response": {"type": "lorem", "tokens": True}}, "response.tokens"),
        ({"response": {"type": "error", "status": 200}}, "response.status"),
        (
            {"response": {"type": "error", "status": 500, "fail_attempts": 0}},
            "response.fail_attempts",
        ),
        (
            {"response": {"type": "error", "status": 500, "times": 1, "fail_attempts": 1}},
            "response.times",
        ),
        (
            {"response": {"type": "error", "status": 500, "then": {"type": "error"}}},
            "response.then.type",
        ),
        ({"tool_calls": {}}, "tool_calls"),
        ({"tool_calls": [{"name": "x"}]}, "tool_calls[0].when"),
        ({"tool_calls": [{"when": "(", "name": "x"}]}, "tool_calls[0].when"),
        ({"tool_calls": [{"when": "a", "name": 3}]}, "tool_calls[0].name"),
        ({"tool_calls": [{"when": "a", "name": "x", "arguments": []}]}, "tool_calls[0].arguments"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"chunk_chars": 0}, "chunk_chars"),
        ({"chunk_chars": 1.5}, "chunk_chars"),
        ({"chunk_delay_ms": -5}, "chunk_delay_ms"),
        ({"chunk_delay_ms": "slow"}, "chunk_delay_ms"),
    ],
)
def test_script_validation_names_the_path(script: JsonValue, path: str) -> None:
    with pytest.raises(LlmSimScriptError) as caught:
        validate_llmsim_script(script)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ")
    assert isinstance(caught.value, ValueError)


def test_valid_scripts() -> None:
    validate_llmsim_script(None)
    validate_llmsim_script({})
    validate_llmsim_script(
        {
            "response": {"type": "error", "status": 429, "message": "slow", "fail_attempts": 2},
            "tool_calls": [{"when": "x", "name": "y"}],
            "latency_ms": 1.5,
            "chunk_chars": 3,
            "chunk_delay_ms": 20,
        }
    )


async def test_tool_call_rules_match_in_linear_time() -> None:
    # ``(a+)+$`` on 40 characters backtracks for hours in Python's re; the script is a tenant's.
    script: JsonValue = {
        "response": {"type": "fixed", "text": "no tool"},
        "tool_calls": [{"when": "^(a+)+$", "name": "add", "arguments": {}}],
    }
    hostile = await _events(script, _request(_user("a" * 40 + "!"), tools=(ADD_TOOL,)))
    assert [e.text for e in hostile if isinstance(e, TextDelta)] == ["no tool"]
    matching = await _events(script, _request(_user("A" * 40), tools=(ADD_TOOL,)))
    (done,) = [e for e in matching if isinstance(e, Completed)]
    assert [c.name for c in done.tool_calls] == ["add"]  # still case-insensitive


@pytest.mark.parametrize("when", [r"(a)\1", "(?=a)", "(?<!a)b"])
def test_a_rule_re2_cannot_run_is_refused_naming_it(when: str) -> None:
    script: JsonValue = {"tool_calls": [{"when": when, "name": "add", "arguments": {}}]}
    with pytest.raises(LlmSimScriptError) as refused:
        validate_llmsim_script(script)
    assert refused.value.path == "tool_calls[0].when"
    assert "regular expression" in refused.value.problem
