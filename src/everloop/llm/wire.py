"""Pieces every wire format needs: tool results as text, tool arguments from JSON text, data URLs.

The drivers and the HTTP simulator use these so the two sides of the wire agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from everloop.domain.messages import JsonObject, ToolResultPart, json_text
from everloop.domain.tool_arguments import parse_arguments_text
from everloop.domain.usage import TokenUsage


def tool_result_text(part: ToolResultPart) -> str:
    """What the model reads for one tool result: the result as text, or ``error: <message>``."""
    if part.error is not None:
        return f"error: {part.error}"
    return json_text(part.result)


def parse_tool_arguments(raw: str | None) -> JsonObject:
    """Tool-call arguments streamed as JSON text. Text that is not a JSON object is kept,
    bounded and marked as unparsed with the parser's error (``domain.tool_arguments``): the
    turn goes on, and the call's result tells the model what was wrong."""
    return parse_arguments_text(raw)


@dataclass(frozen=True, slots=True)
class DataUrl:
    media_type: str
    data: str  # base64


def parse_data_url(url: str) -> DataUrl | None:
    """``data:<type>;base64,<data>`` split into its parts; None for any other URL."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, data = url[len("data:") :].split(";base64,", 1)
    return DataUrl(media_type=head or "application/octet-stream", data=data)


def inclusive_prompt_usage(
    prompt_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int | None,
    cache_creation_tokens: int | None = None,
) -> TokenUsage:
    """Usage from a provider whose prompt count *includes* cached tokens (OpenAI): the cached
    part is moved out of ``input_tokens`` so the buckets are disjoint."""
    prompt = prompt_tokens or 0
    cached = min(cached_tokens or 0, prompt)
    created = min(cache_creation_tokens or 0, prompt - cached)
    return TokenUsage(
        input_tokens=prompt - cached - created,
        output_tokens=output_tokens or 0,
        cache_read_tokens=cached,
        cache_creation_tokens=created,
    )
