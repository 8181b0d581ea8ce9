"""The three wire formats as the llmsim HTTP simulator sees them: requests in, answers out.

Requests are parsed back into a ``ModelRequest`` so the in-process ``LlmSim`` decides what to say;
its answer (text, tool calls, usage) is written in the wire format asked for, streamed (SSE) or
whole. Usage reports a deterministic cached prefix so clients exercise their cache accounting:
of the ``T`` prompt tokens LlmSim counts, ``T // 2`` are cache reads and, on Anthropic's wire
only, ``T // 4`` cache writes. OpenAI wire counts are inclusive (``prompt_tokens = T``);
Anthropic's ``input_tokens`` excludes both cache buckets.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from everloop.domain.messages import (
    ImagePart,
    JsonValue,
    Message,
    Part,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from everloop.domain.tool_arguments import arguments_text
from everloop.domain.usage import TokenUsage
from everloop.llm.base import FinishReason, ModelRequest, ToolSpec

WireFormat = Literal["chat", "responses", "anthropic"]


class WireRequestError(ValueError):
    """The request body is not something this wire format accepts (answered with 400)."""


@dataclass(frozen=True, slots=True)
class SimAnswer:
    text: str
    tool_calls: tuple[ToolCallPart, ...]
    usage: TokenUsage  # as LlmSim counted: input_tokens is the whole prompt
    finish_reason: FinishReason
    thinking: str
    chunks: tuple[str, ...]


def cached_split(prompt_tokens: int) -> tuple[int, int]:
    """(cache read, cache creation) tokens of a prompt of ``prompt_tokens``."""
    return prompt_tokens // 2, prompt_tokens // 4


# -- requests ----------------------------------------------------------------------------------


def parse_request(wire: WireFormat, body: Mapping[str, Any]) -> ModelRequest:
    if not isinstance(body.get("model"), str):
        raise WireRequestError("model: expected a string")
    match wire:
        case "chat":
            system, messages = _chat_messages(body.get("messages"))
            tools = _tools(body.get("tools"), nested="function")
        case "responses":
            system = body.get("instructions")
            messages = _responses_input(body.get("input"))
            tools = _tools(body.get("tools"), nested=None)
        case "anthropic":
            system = _anthropic_system(body.get("system"))
            messages = _anthropic_messages(body.get("messages"))
            tools = _tools(body.get("tools"), nested=None, schema_key="input_schema")
    return ModelRequest(
        model=body["model"],
        system_prompt=system if isinstance(system, str) else None,
        messages=tuple(messages),
        tools=tools,
    )


def wants_thinking(wire: WireFormat, body: Mapping[str, Any]) -> bool:
    match wire:
        case "chat":
            return body.get("reasoning_effort") is not None
        case "responses":
            return isinstance(body.get("reasoning"), dict)
        case "anthropic":
            thinking = body.get("thinking")
            return isinstance(thinking, dict) and thinking.get("type") == "enabled"


def _tools(raw: Any, *, nested: str | None, schema_key: str = "parameters") -> tuple[ToolSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise WireRequestError("tools: expected a list")
    specs = []
    for tool in raw:
        spec = tool.get(nested) if nested and isinstance(tool, dict) else tool
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise WireRequestError("tools: each tool needs a name")
        specs.append(
            ToolSpec(spec["name"], str(spec.get("description") or ""), spec.get(schema_key) or {})
        )
    return tuple(specs)


def _result_part(call_id: str, content: Any, names: dict[str, str], is_error: bool) -> Part:
    text = _text_of(content)
    name = names.get(call_id)
    if is_error or text.startswith("error: "):
        return ToolResultPart(call_id, name, error=text.removeprefix("error: "))
    try:
        result: JsonValue = json.loads(text)
    except json.JSONDecodeError:
        result = text
    return ToolResultPart(call_id, name, result=result)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


class _Conversation:
    """Accumulates messages, merging tool calls and results into the message before them."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.names: dict[str, str] = {}

    def add(self, role: Literal["user", "agent", "tool_result"], parts: list[Part]) -> None:
        for part in parts:
            if isinstance(part, ToolCallPart):
                self.names[part.id] = part.name
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == role and role != "user":
            self.messages[-1] = Message(last.id, role, (*last.content, *parts))
        else:
            self.messages.append(Message(f"msg_{len(self.messages)}", role, tuple(parts)))


def _chat_messages(raw: Any) -> tuple[str | None, list[Message]]:
    if not isinstance(raw, list):
        raise WireRequestError("messages: expected a list")
    system: list[str] = []
    conv = _Conversation()
    for message in raw:
        if not isinstance(message, dict):
            raise WireRequestError("messages: expected objects")
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            system.append(_text_of(content))
        elif role == "user":
            parts: list[Part] = []
            if isinstance(content, str):
                parts.append(TextPart(content))
            for block in content if isinstance(content, list) else ():
                if block.get("type") == "text":
                    parts.append(TextPart(str(block.get("text", ""))))
                elif block.get("type") == "image_url":
                    parts.append(ImagePart(str(block.get("image_url", {}).get("url", ""))))
            conv.add("user", parts)
        elif role == "assistant":
            parts = [TextPart(_text_of(content))] if content else []
            for call in message.get("tool_calls") or ():
                function = call.get("function", {})
                arguments = json.loads(function.get("arguments") or "{}")
                parts.append(ToolCallPart(call["id"], function.get("name", ""), arguments))
            conv.add("agent", parts)
        elif role == "tool":
            call_id = str(message.get("tool_call_id", ""))
            conv.add("tool_result", [_result_part(call_id, content, conv.names, False)])
        else:
            raise WireRequestError(f"messages: unknown role {role!r}")
    return ("\n\n".join(system) if system else None), conv.messages


def _responses_input(raw: Any) -> list[Message]:
    if isinstance(raw, str):
        return [Message("msg_0", "user", (TextPart(raw),))]
    if not isinstance(raw, list):
        raise WireRequestError("input: expected a string or a list")
    conv = _Conversation()
    for item in raw:
        if not isinstance(item, dict):
            raise WireRequestError("input: expected objects")
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            parts: list[Part] = []
            if isinstance(content, str):
                parts.append(TextPart(content))
            for block in content if isinstance(content, list) else ():
                if block.get("type") in ("input_text", "output_text"):
                    parts.append(TextPart(str(block.get("text", ""))))
                elif block.get("type") == "input_image":
                    parts.append(ImagePart(str(block.get("image_url", ""))))
            conv.add("agent" if item.get("role") == "assistant" else "user", parts)
        elif kind == "function_call":
            arguments = json.loads(item.get("arguments") or "{}")
            conv.add("agent", [ToolCallPart(item["call_id"], item.get("name", ""), arguments)])
        elif kind == "function_call_output":
            call_id = str(item.get("call_id", ""))
            part = _result_part(call_id, item.get("output"), conv.names, False)
            conv.add("tool_result", [part])
    return conv.messages


def _anthropic_system(raw: Any) -> str | None:
    return _text_of(raw) or None


def _anthropic_messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list):
        raise WireRequestError("messages: expected a list")
    conv = _Conversation()
    for message in raw:
        content = message.get("content") if isinstance(message, dict) else None
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise WireRequestError("messages: content must be a string or a list of blocks")
        if message.get("role") == "assistant":
            parts: list[Part] = []
            for block in blocks:
                if block.get("type") == "text":
                    parts.append(TextPart(str(block.get("text", ""))))
                elif block.get("type") == "tool_use":
                    parts.append(ToolCallPart(block["id"], block["name"], block.get("input", {})))
            conv.add("agent", parts)
            continue
        results: list[Part] = []
        user_parts: list[Part] = []
        for block in blocks:
            if block.get("type") == "tool_result":
                call_id = str(block.get("tool_use_id", ""))
                error = bool(block.get("is_error"))
                results.append(_result_part(call_id, block.get("content"), conv.names, error))
            elif block.get("type") == "text":
                user_parts.append(TextPart(str(block.get("text", ""))))
            elif block.get("type") == "image":
                source = block.get("source", {})
                url = source.get("url") or f"data:{source.get('media_type')};base64,..."
                user_parts.append(ImagePart(str(url)))
        if results:
            conv.add("tool_result", results)
        if user_parts:
            conv.add("user", user_parts)
    return conv.messages


# -- answers -----------------------------------------------------------------------------------


def _openai_usage(usage: TokenUsage) -> dict[str, Any]:
    prompt = usage.input_tokens
    cached, _ = cached_split(prompt)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def _responses_usage(usage: TokenUsage) -> dict[str, Any]:
    prompt = usage.input_tokens
    cached, _ = cached_split(prompt)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + usage.output_tokens,
    }


def _anthropic_usage(usage: TokenUsage) -> dict[str, Any]:
    read, created = cached_split(usage.input_tokens)
    return {
        "input_tokens": usage.input_tokens - read - created,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": created,
        "output_tokens": usage.output_tokens,
    }


_CHAT_FINISH = {"stop": "stop", "tool_calls": "tool_calls", "length": "length"}
_ANTHROPIC_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


def whole_answer(wire: WireFormat, model: str, answer: SimAnswer) -> dict[str, Any]:
    """A non-streaming answer body."""
    match wire:
        case "chat":
            message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
            if answer.thinking:
                message["reasoning_content"] = answer.thinking
            if answer.tool_calls:
                message["tool_calls"] = [_chat_call(call) for call in answer.tool_calls]
            return {
                "id": _new_id("chatcmpl"),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": _CHAT_FINISH.get(answer.finish_reason, "stop"),
                    }
                ],
                "usage": _openai_usage(answer.usage),
            }
        case "responses":
            return _response_object(model, answer, "completed")
        case "anthropic":
            return {
                "id": _new_id("msg"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": _anthropic_blocks(answer),
                "stop_reason": _ANTHROPIC_STOP.get(answer.finish_reason, "end_turn"),
                "stop_sequence": None,
                "usage": _anthropic_usage(answer.usage),
            }


def stream_answer(
    wire: WireFormat, model: str, answer: SimAnswer, *, include_usage: bool = True
) -> Iterator[tuple[str | None, dict[str, Any] | str]]:
    """The SSE events ``(event name or None, data)`` of a streamed answer."""
    match wire:
        case "chat":
            return _chat_stream(model, answer, include_usage)
        case "responses":
            return _responses_stream(model, answer)
        case "anthropic":
            return _anthropic_stream(model, answer)


def error_body(wire: WireFormat, status: int, message: str) -> dict[str, Any]:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "api_error" if status >= 500 else "invalid_request_error")
    if wire == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}


def _chat_call(call: ToolCallPart) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments_text(call.arguments)},
    }


def _chat_stream(
    model: str, answer: SimAnswer, include_usage: bool
) -> Iterator[tuple[str | None, dict[str, Any] | str]]:
    base = {
        "id": _new_id("chatcmpl"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield None, chunk({"role": "assistant", "content": ""})
    if answer.thinking:
        yield None, chunk({"reasoning_content": answer.thinking})
    for piece in answer.chunks:
        yield None, chunk({"content": piece})
    for index, call in enumerate(answer.tool_calls):
        arguments = arguments_text(call.arguments)
        half = len(arguments) // 2
        first = {"index": index, "id": call.id, "type": "function"}
        yield None, chunk({"tool_calls": [first | {"function": {"name": call.name}}]})
        for part in (arguments[:half], arguments[half:]):
            yield None, chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    yield None, chunk({}, _CHAT_FINISH.get(answer.finish_reason, "stop"))
    if include_usage:
        yield None, base | {"choices": [], "usage": _openai_usage(answer.usage)}
    yield None, "[DONE]"


def _response_object(model: str, answer: SimAnswer, status: str) -> dict[str, Any]:
    return {
        "id": "resp_" + uuid.uuid4().hex,
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "status": status,
        "output": _response_items(answer) if status == "completed" else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _responses_usage(answer.usage) if status == "completed" else None,
    }


def _response_items(answer: SimAnswer) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if answer.thinking:
        items.append(
            {
                "id": "rs_0",
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": answer.thinking}],
            }
        )
    if answer.text or not answer.tool_calls:
        items.append(
            {
                "id": "msg_0",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": answer.text, "annotations": []}],
            }
        )
    for index, call in enumerate(answer.tool_calls):
        items.append(
            {
                "id": f"fc_{index}",
                "type": "function_call",
                "call_id": call.id,
                "name": call.name,
                "arguments": arguments_text(call.arguments),
                "status": "completed",
            }
        )
    return items


def _responses_stream(
    model: str, answer: SimAnswer
) -> Iterator[tuple[str | None, dict[str, Any] | str]]:
    sequence = 0

    def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        nonlocal sequence
        sequence += 1
        return kind, {"type": kind, "sequence_number": sequence, **fields}

    yield event("response.created", response=_response_object(model, answer, "in_progress"))
    for index, item in enumerate(_response_items(answer)):
        item_id = item["id"]
        if item["type"] == "reasoning":
            yield event(
                "response.output_item.added", output_index=index, item=item | {"summary": []}
            )
            yield event(
                "response.reasoning_summary_text.delta",
                item_id=item_id,
                output_index=index,
                summary_index=0,
                delta=answer.thinking,
            )
        elif item["type"] == "message":
            added = item | {"status": "in_progress", "content": []}
            yield event("response.output_item.added", output_index=index, item=added)
            for piece in answer.chunks:
                yield event(
                    "response.output_text.delta",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    delta=piece,
                    logprobs=[],
                )
            yield event(
                "response.output_text.done",
                item_id=item_id,
                output_index=index,
                content_index=0,
                text=answer.text,
                logprobs=[],
            )
        else:
            added = item | {"arguments": "", "status": "in_progress"}
            yield event("response.output_item.added", output_index=index, item=added)
            yield event(
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=index,
                delta=item["arguments"],
            )
            yield event(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                arguments=item["arguments"],
            )
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=_response_object(model, answer, "completed"))


def _anthropic_blocks(answer: SimAnswer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.thinking:
        blocks.append({"type": "thinking", "thinking": answer.thinking, "signature": "sim"})
    if answer.text or not answer.tool_calls:
        blocks.append({"type": "text", "text": answer.text})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in answer.tool_calls
    )
    return blocks


def _anthropic_stream(
    model: str, answer: SimAnswer
) -> Iterator[tuple[str | None, dict[str, Any] | str]]:
    usage = _anthropic_usage(answer.usage)
    start = whole_answer("anthropic", model, answer) | {
        "content": [],
        "stop_reason": None,
        "usage": usage | {"output_tokens": 1},
    }
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(_anthropic_blocks(answer)):
        if block["type"] == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": answer.thinking},
                {"type": "signature_delta", "signature": "sim"},
            ]
        elif block["type"] == "text":
            first = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in answer.chunks]
        else:
            first = block | {"input": {}}
            arguments = arguments_text(block["input"])
            half = len(arguments) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in (arguments[:half], arguments[half:])
            ]
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": first,
            },
        )
        for delta in deltas:
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": delta,
                },
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": _ANTHROPIC_STOP.get(answer.finish_reason, "end_turn"),
                "stop_sequence": None,
            },
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
