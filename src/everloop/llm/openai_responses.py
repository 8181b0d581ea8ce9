"""Driver ``openai``: the Responses API, through the official ``openai`` SDK.

The whole conversation is sent each call (``store`` is off: the event log is the history).
Function calls arrive as ``function_call`` output items; their ``arguments`` in
``response.output_item.done`` are authoritative over the streamed deltas. Reasoning summaries
(requested with ``reasoning_effort``) are collected into ``Completed.thinking``. Usage comes with
``response.completed``: ``input_tokens`` includes ``input_tokens_details.cached_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import openai

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
from everloop.llm.openai_errors import openai_call_error
from everloop.llm.options import DriverOptions
from everloop.llm.wire import inclusive_prompt_usage, parse_tool_arguments, tool_result_text


class OpenAIResponsesDriver:
    """A ``ModelDriver`` over ``POST /responses`` (streaming)."""

    def __init__(
        self,
        client: Callable[[], openai.AsyncOpenAI],
        model: str,
        options: DriverOptions,
        provider: str = "openai",
    ) -> None:
        self._client = client
        self._model = model
        self._options = options
        self._provider = provider

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        """The keyword arguments of ``responses.create`` for ``request``."""
        body: dict[str, Any] = {
            "model": self._model,
            "input": response_input(request.messages),
            "stream": True,
            "store": False,
        }
        if request.system_prompt:
            body["instructions"] = request.system_prompt
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                    "strict": False,
                }
                for tool in request.tools
            ]
        options = self._options
        if options.max_output_tokens is not None:
            body["max_output_tokens"] = options.max_output_tokens
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.reasoning_effort is not None:
            body["reasoning"] = {"effort": options.reasoning_effort, "summary": "auto"}
        if options.extra_body:
            body["extra_body"] = options.extra_body
        return body

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelStreamEvent]:
        text: list[str] = []
        thinking: list[str] = []
        calls: dict[str, ToolCallPart] = {}  # by output item id, in arrival order
        usage = TokenUsage()
        finish: FinishReason = "stop"
        try:
            events = await self._client().responses.create(**self.request_body(request))
            async with events:
                async for event in events:
                    match event.type:
                        case "response.output_text.delta":
                            text.append(event.delta)
                            yield TextDelta(event.delta)
                        case "response.reasoning_summary_text.delta" | (
                            "response.reasoning_text.delta"
                        ):
                            thinking.append(event.delta)
                        case "response.output_item.done" if event.item.type == "function_call":
                            item = event.item
                            calls[item.id or item.call_id] = ToolCallPart(
                                id=item.call_id,
                                name=item.name,
                                arguments=parse_tool_arguments(item.arguments),
                            )
                        case "response.completed" | "response.incomplete":
                            response = event.response
                            if response.usage is not None:
                                usage = inclusive_prompt_usage(
                                    response.usage.input_tokens,
                                    response.usage.output_tokens,
                                    response.usage.input_tokens_details.cached_tokens,
                                )
                            if event.type == "response.incomplete":
                                details = response.incomplete_details
                                reason = details.reason if details is not None else None
                                finish = (
                                    "content_filter" if reason == "content_filter" else "length"
                                )
                        case "response.failed":
                            error = event.response.error
                            detail = error.message if error is not None else "unknown error"
                            raise ModelCallError(
                                f"{self._provider} failed: {detail}", retryable=True
                            )
                        case "error":
                            raise ModelCallError(
                                f"{self._provider} failed: {event.message}", retryable=True
                            )
                        case _:
                            pass
        except (openai.OpenAIError, httpx2.TransportError, EgressDenied) as exc:
            raise openai_call_error(exc, self._provider) from exc
        tool_calls = tuple(calls.values())
        if tool_calls:
            finish = "tool_calls"
        yield Completed(
            text="".join(text),
            tool_calls=tool_calls,
            usage=usage,
            finish_reason=finish,
            thinking="".join(thinking),
        )


def response_input(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The conversation as Responses API input items."""
    items: list[dict[str, Any]] = []
    for message in messages:
        match message.role:
            case "user":
                content: list[dict[str, Any]] = []
                for part in message.content:
                    if isinstance(part, TextPart):
                        content.append({"type": "input_text", "text": part.text})
                    elif isinstance(part, ImagePart):
                        content.append(
                            {"type": "input_image", "image_url": part.url, "detail": "auto"}
                        )
                items.append({"role": "user", "content": content})
            case "agent":
                if message.text:
                    items.append({"role": "assistant", "content": message.text})
                items.extend(
                    {
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.name,
                        "arguments": json.dumps(call.arguments),
                    }
                    for call in message.tool_calls
                )
            case "tool_result":
                items.extend(
                    {
                        "type": "function_call_output",
                        "call_id": result.tool_call_id,
                        "output": tool_result_text(result),
                    }
                    for result in message.tool_results
                )
    return items
