"""llmsim: the built-in, in-process simulated model, driven by a JSON script.

Every key of the script is optional; a missing key takes its default::

    {
      "response": {"type": "echo"},
      "tool_calls": [{"when": "\\btime\\b", "name": "get_current_time", "arguments": {}}],
      "latency_ms": 0,
      "chunk_chars": 16,
      "chunk_delay_ms": 0
    }

``response`` is what the model says when it calls no tool:

- ``{"type": "echo"}`` -- ``Echo: <last user text>``, then one line ``<tool name>: <result JSON>``
  (or ``<tool name>: error: <message>``) per tool result that arrived after that user message.
- ``{"type": "fixed", "text": "..."}`` -- always that text.
- ``{"type": "sequence", "texts": [...]}`` -- ``texts[n % len(texts)]`` where ``n`` is the number
  of agent messages already in the request, so a session walks through the list.
- ``{"type": "lorem", "tokens": N}`` -- deterministic lorem ipsum of exactly ``4 * N`` characters.
- ``{"type": "error", "status": S, "message": "..."}`` -- raises ``ModelCallError``, retryable
  iff ``S == 429`` or ``S >= 500``. With ``"fail_attempts": K`` (alias ``"times"``) it fails
  only while the runner's retry attempt ``request.settings["attempt"]`` (1-based, default 1) is
  ``<= K`` and answers with ``"then"`` (default ``{"type": "echo"}``) afterwards. The attempt
  number is used, not the history, because a failed call leaves no trace in the history.

``tool_calls`` rules: when the request's *last* message is the user's, every rule whose ``when``
regex (case-insensitive) matches the user's text and whose tool is offered in ``request.tools``
becomes a tool call, all in one response. ``when`` is RE2 syntax (a tenant writes the script:
linear time, no backreferences or lookarounds; see ``everloop.patterns``). Call ids are
``call_<24 hex>`` hashed from the user message id, the history length and the rule index, so a
retried step produces the same ids. A rule's optional fields:

- ``"arguments": {...}`` -- the call's arguments (default ``{}``).
- ``"raw_arguments": "..."`` -- instead of ``arguments``: the arguments as text the model wrote,
  parsed as a driver parses streamed text (``llm.wire.parse_tool_arguments``), so text that is
  not a JSON object gives a call marked unparsed; the HTTP simulator sends the text as is.
- ``"repeat": K`` (default 1) -- the rule fires on the first ``K`` model calls after the user's
  message (each after the previous call's results), not only on the first: a model that keeps
  asking for the same call.

``latency_ms`` is slept before the first token of every call; ``chunk_chars`` is the size of each
``TextDelta``; ``chunk_delay_ms`` is slept between two deltas (a slowly streaming answer).
Usage is deterministic: ``input_tokens = ceil(chars / 4)`` over the system prompt and every
message (text parts by their text, other parts by their wire JSON), ``output_tokens =
ceil(chars / 4)`` over the answer (for tool calls, the JSON of the calls); cache buckets are 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, TypeGuard, assert_never

from everloop.domain.messages import (
    JsonObject,
    JsonValue,
    Message,
    TextPart,
    ToolCallPart,
    json_text,
    part_to_json,
)
from everloop.domain.usage import TokenUsage
from everloop.errors import InvalidInput
from everloop.llm.base import (
    Completed,
    FinishReason,
    ModelCallError,
    ModelRequest,
    ModelStreamEvent,
    TextDelta,
)
from everloop.llm.wire import parse_tool_arguments
from everloop.patterns import Regex, compile_untrusted

DEFAULT_SCRIPT: JsonObject = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "\\btime\\b", "name": "get_current_time", "arguments": {}}],
}

MAX_REPEAT = 1000

_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation "
    "ullamco laboris nisi ut aliquip ex ea commodo consequat. "
)


class LlmSimScriptError(ValueError):
    """An llmsim script is malformed; ``path`` names the failing field (``response.type``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class EchoResponse:
    kind: Literal["echo"] = field(default="echo", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class FixedResponse:
    text: str
    kind: Literal["fixed"] = field(default="fixed", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class SequenceResponse:
    texts: tuple[str, ...]
    kind: Literal["sequence"] = field(default="sequence", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class LoremResponse:
    tokens: int
    kind: Literal["lorem"] = field(default="lorem", init=False, repr=False)


AnswerResponse: TypeAlias = EchoResponse | FixedResponse | SequenceResponse | LoremResponse


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    status: int
    message: str
    fail_attempts: int | None = None
    then: AnswerResponse = EchoResponse()
    kind: Literal["error"] = field(default="error", init=False, repr=False)


Response: TypeAlias = AnswerResponse | ErrorResponse


@dataclass(frozen=True, slots=True)
class ToolRule:
    when: Regex
    name: str
    arguments: JsonObject
    repeat: int = 1


@dataclass(frozen=True, slots=True)
class LlmSimScript:
    response: Response
    tool_calls: tuple[ToolRule, ...]
    latency_ms: float = 0
    chunk_chars: int = 16
    chunk_delay_ms: float = 0


def parse_llmsim_script(script: JsonValue) -> LlmSimScript:
    """Parse a script (``None`` means the default); raises ``LlmSimScriptError``."""
    if script is None:
        script = {}
    if not isinstance(script, Mapping):
        raise LlmSimScriptError("script", "expected an object")
    known = {"response", "tool_calls", "latency_ms", "chunk_chars", "chunk_delay_ms"}
    unknown = sorted(set(script) - known)
    if unknown:
        raise LlmSimScriptError(unknown[0], "unknown field")
    response = _parse_response(script.get("response", DEFAULT_SCRIPT["response"]), "response")
    raw_rules = script.get("tool_calls", DEFAULT_SCRIPT["tool_calls"])
    if not isinstance(raw_rules, list):
        raise LlmSimScriptError("tool_calls", "expected a list")
    rules = tuple(_parse_rule(rule, f"tool_calls[{i}]") for i, rule in enumerate(raw_rules))
    latency_ms = script.get("latency_ms", 0)
    if not _is_number(latency_ms) or latency_ms < 0:
        raise LlmSimScriptError("latency_ms", "expected a non-negative number")
    chunk_chars = script.get("chunk_chars", 16)
    if not _is_int(chunk_chars) or chunk_chars < 1:
        raise LlmSimScriptError("chunk_chars", "expected an integer >= 1")
    chunk_delay_ms = script.get("chunk_delay_ms", 0)
    if not _is_number(chunk_delay_ms) or chunk_delay_ms < 0:
        raise LlmSimScriptError("chunk_delay_ms", "expected a non-negative number")
    return LlmSimScript(
        response,
        rules,
        latency_ms=latency_ms,
        chunk_chars=chunk_chars,
        chunk_delay_ms=chunk_delay_ms,
    )


def validate_llmsim_script(script: JsonValue) -> None:
    """Raise ``LlmSimScriptError`` naming the failing field if ``script`` is not valid."""
    parse_llmsim_script(script)


class LlmSim:
    """The simulated model driver (a ``ModelDriver``)."""

    def __init__(self, script: JsonValue = None) -> None:
        self.script = parse_llmsim_script(script)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelStreamEvent]:
        script = self.script
        if script.latency_ms:
            await asyncio.sleep(script.latency_ms / 1000)
        input_tokens = _tokens(_prompt_chars(request))
        response = script.response
        if isinstance(response, ErrorResponse):
            if response.fail_attempts is None or request.attempt <= response.fail_attempts:
                retryable = response.status == 429 or response.status >= 500
                raise ModelCallError(response.message, status=response.status, retryable=retryable)
            response = response.then
        calls = _tool_calls(script.tool_calls, request)
        if calls:
            calls_json = json.dumps([part_to_json(call) for call in calls])
            usage = TokenUsage(input_tokens=input_tokens, output_tokens=_tokens(len(calls_json)))
            yield Completed(text="", tool_calls=calls, usage=usage, finish_reason="tool_calls")
            return
        text = _answer(response, request)
        for start in range(0, len(text), script.chunk_chars):
            if start and script.chunk_delay_ms:
                await asyncio.sleep(script.chunk_delay_ms / 1000)
            yield TextDelta(text[start : start + script.chunk_chars])
        usage = TokenUsage(input_tokens=input_tokens, output_tokens=_tokens(len(text)))
        finish: FinishReason = "stop"
        yield Completed(text=text, tool_calls=(), usage=usage, finish_reason=finish)


def _answer(response: AnswerResponse, request: ModelRequest) -> str:
    match response:
        case EchoResponse():
            return _echo(request.messages)
        case FixedResponse(text=text):
            return text
        case SequenceResponse(texts=texts):
            agent_messages = sum(1 for message in request.messages if message.role == "agent")
            return texts[agent_messages % len(texts)]
        case LoremResponse(tokens=tokens):
            size = tokens * 4
            repeated = _LOREM * (size // len(_LOREM) + 1)
            return repeated[:size]
        case _:
            assert_never(response)


def _echo(messages: tuple[Message, ...]) -> str:
    # Only the messages after the last user message matter (searched from the end).
    last_user = next(
        (i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), -1
    )
    lines = ["Echo: " + (messages[last_user].text if last_user >= 0 else "")]
    names = {call.id: call.name for m in messages[last_user + 1 :] for call in m.tool_calls}
    for message in messages[last_user + 1 :]:
        for result in message.tool_results:
            name = result.name or names.get(result.tool_call_id, result.tool_call_id)
            if result.error is not None:
                lines.append(f"{name}: error: {result.error}")
            else:
                lines.append(f"{name}: {json.dumps(result.result, ensure_ascii=False)}")
    return "\n".join(lines)


def _tool_calls(rules: tuple[ToolRule, ...], request: ModelRequest) -> tuple[ToolCallPart, ...]:
    last_user = next(
        (i for i in range(len(request.messages) - 1, -1, -1) if request.messages[i].role == "user"),
        -1,
    )
    if last_user < 0:
        return ()
    user = request.messages[last_user]
    # Model calls already answered since the user's message: each left one agent message.
    answered = sum(1 for m in request.messages[last_user + 1 :] if m.role == "agent")
    if answered and request.messages[-1].role != "tool_result":
        return ()
    offered = {tool.name for tool in request.tools}
    calls: list[ToolCallPart] = []
    for index, rule in enumerate(rules):
        if answered < rule.repeat and rule.name in offered and rule.when.search(user.text):
            seed = f"{user.id}:{len(request.messages)}:{index}"
            call_id = "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
            calls.append(ToolCallPart(id=call_id, name=rule.name, arguments=dict(rule.arguments)))
    return tuple(calls)


def _prompt_chars(request: ModelRequest) -> int:
    chars = len(request.system_prompt or "")
    for message in request.messages:
        chars += _message_chars(message)
    return chars


# Characters per message, remembered: a session's history is the same messages turn after turn
# (messages are immutable), so counting them again would make every call cost more than the one
# before it. Bounded; a message that fell out is simply counted again. An entry holds the content
# it counted and is used only for that very object: ``id()`` alone is reused once an object is
# freed, and the HTTP simulator parses fresh messages with the same ids on every request.
_CHARS: dict[tuple[str, int], tuple[object, int]] = {}
_CHARS_LIMIT = 65_536


def _message_chars(message: Message) -> int:
    key = (message.id, id(message.content))
    found = _CHARS.get(key)
    if found is not None and found[0] is message.content:
        return found[1]
    chars = 0
    for part in message.content:
        if isinstance(part, TextPart):
            chars += len(part.text)
        else:
            chars += len(json_text(part_to_json(part)))
    if len(_CHARS) >= _CHARS_LIMIT:
        _CHARS.clear()
    _CHARS[key] = (message.content, chars)
    return chars


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _parse_response(raw: JsonValue, path: str, *, allow_error: bool = True) -> Response:
    if not isinstance(raw, Mapping):
        raise LlmSimScriptError(path, "expected an object")
    kind = raw.get("type")
    fields: set[str]
    response: Response
    match kind:
        case "echo":
            fields, response = set(), EchoResponse()
        case "fixed":
            fields, response = {"text"}, FixedResponse(_string(raw, "text", path))
        case "sequence":
            texts = raw.get("texts")
            if not isinstance(texts, list) or not texts:
                raise LlmSimScriptError(f"{path}.texts", "expected a non-empty list of strings")
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    raise LlmSimScriptError(f"{path}.texts[{i}]", "expected a string")
            fields, response = {"texts"}, SequenceResponse(tuple(str(t) for t in texts))
        case "lorem":
            tokens = raw.get("tokens")
            if not _is_int(tokens) or tokens < 0:
                raise LlmSimScriptError(f"{path}.tokens", "expected a non-negative integer")
            fields, response = {"tokens"}, LoremResponse(tokens)
        case "error" if allow_error:
            fields = {"status", "message", "fail_attempts", "times", "then"}
            response = _parse_error(raw, path)
        case _:
            allowed = "echo, fixed, sequence, lorem" + (", error" if allow_error else "")
            raise LlmSimScriptError(f"{path}.type", f"expected one of {allowed}; got {kind!r}")
    unknown = sorted(set(raw) - fields - {"type"})
    if unknown:
        raise LlmSimScriptError(f"{path}.{unknown[0]}", "unknown field")
    return response


def _parse_error(raw: Mapping[str, JsonValue], path: str) -> ErrorResponse:
    status = raw.get("status")
    if not _is_int(status) or not 400 <= status <= 599:
        raise LlmSimScriptError(f"{path}.status", "expected an HTTP error status (400-599)")
    if "fail_attempts" in raw and "times" in raw:
        raise LlmSimScriptError(f"{path}.times", "give either fail_attempts or times, not both")
    key = "times" if "times" in raw else "fail_attempts"
    fail_attempts = raw.get(key)
    if fail_attempts is not None and (not _is_int(fail_attempts) or fail_attempts < 1):
        raise LlmSimScriptError(f"{path}.{key}", "expected an integer >= 1")
    then: Response = EchoResponse()
    if "then" in raw:
        then = _parse_response(raw["then"], f"{path}.then", allow_error=False)
    assert not isinstance(then, ErrorResponse)
    message = _string(raw, "message", path) if "message" in raw else f"simulated error {status}"
    return ErrorResponse(status, message, fail_attempts=fail_attempts, then=then)


def _parse_rule(raw: JsonValue, path: str) -> ToolRule:
    if not isinstance(raw, Mapping):
        raise LlmSimScriptError(path, "expected an object")
    unknown = sorted(set(raw) - {"when", "name", "arguments", "raw_arguments", "repeat"})
    if unknown:
        raise LlmSimScriptError(f"{path}.{unknown[0]}", "unknown field")
    when = _string(raw, "when", path)
    try:
        pattern = compile_untrusted(when, field=f"{path}.when", ignore_case=True)
    except InvalidInput as exc:  # a tenant writes the script: RE2, no backtracking
        raise LlmSimScriptError(f"{path}.when", exc.message) from None
    arguments = raw.get("arguments", {})
    if not isinstance(arguments, dict):
        raise LlmSimScriptError(f"{path}.arguments", "expected an object")
    if "raw_arguments" in raw:
        if "arguments" in raw:
            raise LlmSimScriptError(f"{path}.raw_arguments", "give arguments or raw_arguments")
        arguments = parse_tool_arguments(_string(raw, "raw_arguments", path))
    repeat = raw.get("repeat", 1)
    if not _is_int(repeat) or not 1 <= repeat <= MAX_REPEAT:
        raise LlmSimScriptError(f"{path}.repeat", f"expected an integer from 1 to {MAX_REPEAT}")
    return ToolRule(pattern, _string(raw, "name", path), arguments, repeat)


def _string(raw: Mapping[str, JsonValue], key: str, path: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise LlmSimScriptError(f"{path}.{key}", "expected a string")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
