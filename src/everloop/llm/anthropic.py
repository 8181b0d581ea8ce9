"""Driver ``anthropic``: the Messages API, through the official ``anthropic`` SDK.

Anthropic's ``input_tokens`` already excludes cache reads and cache writes, so its three prompt
counts map one to one onto the disjoint buckets. Extended thinking (``thinking_budget_tokens``)
is collected into ``Completed.thinking``. Tool results travel in user turns as ``tool_result``
blocks; consecutive messages of one role are merged because the API wants roles to alternate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2

from everloop.domain.messages import ImagePart, Message, TextPart, ToolCallPart
from everloop.domain.usage import TokenUsage
from everloop.errors import EgressDenied
from everloop.llm.base import (
    Completed,
    FinishReason,
    ModelCallError,
    ModelRequest,
    ModelStreamEvent,
    TextDelta,
)
from everloop.llm.failures import (
    connection_error,
    egress_error,
    status_error,
    timeout_error,
    unreachable_error,
)
from everloop.llm.options import DEFAULT_ANTHROPIC_MAX_TOKENS, DriverOptions
from everloop.llm.wire import parse_data_url, parse_tool_arguments, tool_result_text

PROVIDER = "anthropic"
_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


def anthropic_call_error(
    exc: anthropic.AnthropicError | httpx2.TransportError | EgressDenied,
) -> ModelCallError:
    """The one translation of ``anthropic`` SDK exceptions (529 overloaded is a 5xx: retried),
    of ``httpx2`` transport errors raised while a stream is read, and of egress refusals."""
    if isinstance(exc, EgressDenied):
        return egress_error(PROVIDER, exc)
    if isinstance(exc, httpx2.TimeoutException):
        return timeout_error(PROVIDER)
    if isinstance(exc, httpx2.TransportError):
        return connection_error(PROVIDER, type(exc).__name__)
    if isinstance(exc, anthropic.APITimeoutError):
        return timeout_error(PROVIDER)
    if isinstance(exc, anthropic.APIConnectionError):
        return unreachable_error(PROVIDER, exc.__cause__ or exc)
    if isinstance(exc, anthropic.APIStatusError):
        return status_error(PROVIDER, exc.status_code, _detail(exc), exc.response.headers)
    if isinstance(exc, anthropic.APIError):
        return ModelCallError(f"{PROVIDER} failed mid-stream: {exc.message}", retryable=True)
    return ModelCallError(f"{PROVIDER}: {exc}", retryable=False)


@dataclass
class _Block:
    kind: str
    call_id: str = ""
    name: str = ""
    json: str = ""


class AnthropicDriver:
    """A ``ModelDriver`` over ``POST /v1/messages`` (streaming)."""

    def __init__(
        self, client: Callable[[], anthropic.AsyncAnthropic], model: str, options: DriverOptions
    ) -> None:
        self._client = client
        self._model = model
        self._options = options

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        """The keyword arguments of ``messages.create`` for ``request``."""
        options = self._options
        body: dict[str, Any] = {
            "model": self._model,
            "max_tokens": options.max_output_tokens or DEFAULT_ANTHROPIC_MAX_TOKENS,
            "messages": anthropic_messages(request.messages),
            "stream": True,
        }
        if request.system_prompt:
            body["system"] = request.system_prompt
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.thinking_budget_tokens is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": options.thinking_budget_tokens}
        if options.extra_body:
            body["extra_body"] = options.extra_body
        return body

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelStreamEvent]:
        text: list[str] = []
        thinking: list[str] = []
        blocks: dict[int, _Block] = {}
        prompt = (0, 0, 0)  # input, cache read, cache creation
        output_tokens = 0
        finish: FinishReason = "stop"
        try:
            events = await self._client().messages.create(**self.request_body(request))
            async with events:
                async for event in events:
                    match event.type:
                        case "message_start":
                            u = event.message.usage
                            prompt = (
                                u.input_tokens,
                                u.cache_read_input_tokens or 0,
                                u.cache_creation_input_tokens or 0,
                            )
                            output_tokens = u.output_tokens
                        case "content_block_start":
                            block = event.content_block
                            if block.type == "tool_use":
                                blocks[event.index] = _Block("tool_use", block.id, block.name)
                            else:
                                blocks[event.index] = _Block(block.type)
                        case "content_block_delta":
                            delta = event.delta
                            if delta.type == "text_delta":
                                text.append(delta.text)
                                yield TextDelta(delta.text)
                            elif delta.type == "input_json_delta":
                                blocks[event.index].json += delta.partial_json
                            elif delta.type == "thinking_delta":
                                thinking.append(delta.thinking)
                        case "message_delta":
                            # Counts here are cumulative; prompt counts may be restated.
                            u2 = event.usage
                            output_tokens = u2.output_tokens
                            if u2.input_tokens is not None:
                                prompt = (
                                    u2.input_tokens,
                                    u2.cache_read_input_tokens or prompt[1],
                                    u2.cache_creation_input_tokens or prompt[2],
                                )
                            if event.delta.stop_reason is not None:
                                finish = _FINISH.get(event.delta.stop_reason, "other")
                        case _:
                            pass
        except (anthropic.AnthropicError, httpx2.TransportError, EgressDenied) as exc:
            raise anthropic_call_error(exc) from exc
        tool_calls = tuple(
            ToolCallPart(id=b.call_id, name=b.name, arguments=parse_tool_arguments(b.json))
            for _, b in sorted(blocks.items())
            if b.kind == "tool_use"
        )
        if tool_calls:
            finish = "tool_calls"
        usage = TokenUsage(
            input_tokens=prompt[0],
            output_tokens=output_tokens,
            cache_read_tokens=prompt[1],
            cache_creation_tokens=prompt[2],
        )
        yield Completed(
            text="".join(text),
            tool_calls=tool_calls,
            usage=usage,
            finish_reason=finish,
            thinking="".join(thinking),
        )


def anthropic_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The conversation as alternating user/assistant turns of content blocks."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "agent" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text:  # the API rejects empty text blocks
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            data = parse_data_url(part.url)
            source: dict[str, Any] = (
                {"type": "base64", "media_type": data.media_type, "data": data.data}
                if data is not None
                else {"type": "url", "url": part.url}
            )
            blocks.append({"type": "image", "source": source})
        elif isinstance(part, ToolCallPart):
            blocks.append(
                {"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments}
            )
        else:
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": part.tool_call_id,
                    "content": tool_result_text(part),
                    "is_error": part.error is not None,
                }
            )
    return blocks


def _detail(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return exc.message
