"""Driver ``openai_completions``: the Chat Completions API, through the official ``openai`` SDK.

With a provider ``base_url`` it speaks to any OpenAI-compatible server (Ollama, vLLM, LM Studio,
OpenRouter). Streams with ``stream_options.include_usage`` so the last chunk carries usage;
``prompt_tokens`` includes cached tokens, which are moved to ``cache_read_tokens``. Reasoning
text is read from the ``reasoning_content`` / ``reasoning`` delta fields that compatible servers
(DeepSeek, vLLM, OpenRouter) send.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

from everloop.domain.messages import ImagePart, Message, TextPart, ToolCallPart
from everloop.domain.usage import TokenUsage
from everloop.errors import EgressDenied
from everloop.llm.base import (
    Completed,
    FinishReason,
    ModelRequest,
    ModelStreamEvent,
    TextDelta,
)
from everloop.llm.openai_errors import openai_call_error
from everloop.llm.options import DriverOptions
from everloop.llm.wire import inclusive_prompt_usage, parse_tool_arguments, tool_result_text

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
    "content_filter": "content_filter",
}


@dataclass
class _PendingCall:
    call_id: str = ""
    name: str = ""
    arguments: str = ""


class OpenAIChatDriver:
    """A ``ModelDriver`` over ``POST /chat/completions`` (streaming)."""

    def __init__(
        self,
        client: Callable[[], openai.AsyncOpenAI],
        model: str,
        options: DriverOptions,
        provider: str = "openai_completions",
    ) -> None:
        self._client = client
        self._model = model
        self._options = options
        self._provider = provider

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for ``request``."""
        body: dict[str, Any] = {
            "model": self._model,
            "messages": chat_messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
                for tool in request.tools
            ]
        options = self._options
        if options.max_output_tokens is not None:
            body["max_completion_tokens"] = options.max_output_tokens
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.reasoning_effort is not None:
            body["reasoning_effort"] = options.reasoning_effort
        if options.extra_body:
            body["extra_body"] = options.extra_body
        return body

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelStreamEvent]:
        text: list[str] = []
        thinking: list[str] = []
        calls: dict[int, _PendingCall] = {}
        usage = TokenUsage()
        finish: FinishReason = "stop"
        try:
            chunks = await self._client().chat.completions.create(**self.request_body(request))
            async with chunks:
                async for chunk in chunks:
                    if chunk.usage is not None:
                        details = chunk.usage.prompt_tokens_details
                        usage = inclusive_prompt_usage(
                            chunk.usage.prompt_tokens,
                            chunk.usage.completion_tokens,
                            details.cached_tokens if details is not None else None,
                        )
                    for choice in chunk.choices:
                        delta = choice.delta
                        extra = delta.model_extra or {}
                        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
                        if isinstance(reasoning, str):
                            thinking.append(reasoning)
                        if delta.content:
                            text.append(delta.content)
                            yield TextDelta(delta.content)
                        for call in delta.tool_calls or ():
                            pending = calls.setdefault(call.index, _PendingCall())
                            pending.call_id = call.id or pending.call_id
                            if call.function is not None:
                                pending.name += call.function.name or ""
                                pending.arguments += call.function.arguments or ""
                        if choice.finish_reason is not None:
                            finish = _FINISH.get(choice.finish_reason, "other")
        except (openai.OpenAIError, httpx2.TransportError, EgressDenied) as exc:
            raise openai_call_error(exc, self._provider) from exc
        tool_calls = tuple(
            ToolCallPart(id=p.call_id, name=p.name, arguments=parse_tool_arguments(p.arguments))
            for _, p in sorted(calls.items())
        )
        if tool_calls:
            finish = "tool_calls"
        yield Completed(
            text="".join(text),
            tool_calls=tool_calls,
            usage=usage,
            finish_reason=finish,
            thinking="".join(thinking),
        )


def chat_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """The conversation in Chat Completions form (system prompt first)."""
    out: list[dict[str, Any]] = []
    if request.system_prompt:
        out.append({"role": "system", "content": request.system_prompt})
    for message in request.messages:
        out.extend(_chat_message(message))
    return out


def _chat_message(message: Message) -> list[dict[str, Any]]:
    match message.role:
        case "user":
            parts = [p for p in message.content if isinstance(p, TextPart | ImagePart)]
            if all(isinstance(p, TextPart) for p in parts):
                return [{"role": "user", "content": message.text}]
            content: list[dict[str, Any]] = []
            for part in parts:
                if isinstance(part, TextPart):
                    content.append({"type": "text", "text": part.text})
                else:
                    content.append({"type": "image_url", "image_url": {"url": part.url}})
            return [{"role": "user", "content": content}]
        case "agent":
            reply: dict[str, Any] = {"role": "assistant", "content": message.text or None}
            if message.tool_calls:
                reply["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                    }
                    for call in message.tool_calls
                ]
            return [reply]
        case "tool_result":
            return [
                {
                    "role": "tool",
                    "tool_call_id": result.tool_call_id,
                    "content": tool_result_text(result),
                }
                for result in message.tool_results
            ]
