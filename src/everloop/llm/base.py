"""The model-driver protocol: one streaming call per model turn, wire formats kept in drivers.

A driver turns a ``ModelRequest`` into a stream of ``TextDelta`` events ended by exactly one
``Completed``. Provider and SDK errors are translated once, inside the driver, into
``ModelCallError`` carrying whether a retry can help; the runner owns the retry policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

from everloop.domain.messages import JsonObject, Message, ToolCallPart
from everloop.domain.usage import TokenUsage

FinishReason = Literal["stop", "tool_calls", "length", "content_filter", "other"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What the model is told about one tool: its name, purpose and JSON-schema parameters."""

    name: str
    description: str
    parameters: JsonObject

    def to_json(self) -> JsonObject:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One model call. ``settings`` holds driver options; ``settings["attempt"]`` (1-based) is
    the runner's retry attempt, which only simulators look at."""

    model: str
    system_prompt: str | None
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    settings: JsonObject = field(default_factory=dict)

    @property
    def attempt(self) -> int:
        value = self.settings.get("attempt", 1)
        return value if isinstance(value, int) and not isinstance(value, bool) else 1


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    kind: Literal["text_delta"] = field(default="text_delta", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class Completed:
    """The end of a stream: the full text (authoritative over the deltas) and any tool calls.

    ``thinking`` is the model's reasoning text (a summary for OpenAI reasoning models, Anthropic
    extended thinking, ``reasoning_content`` of OpenAI-compatible servers) when it gave any."""

    text: str
    tool_calls: tuple[ToolCallPart, ...]
    usage: TokenUsage
    finish_reason: FinishReason
    thinking: str = ""
    kind: Literal["completed"] = field(default="completed", init=False, repr=False)


ModelStreamEvent: TypeAlias = TextDelta | Completed


class ModelCallError(Exception):
    """A model call failed. ``retryable`` says whether trying again may succeed (429, 5xx,
    timeouts); ``retry_after`` is the provider's hint in seconds, when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"ModelCallError({self.message!r}, status={self.status!r}, "
            f"retryable={self.retryable!r}, retry_after={self.retry_after!r})"
        )


class ModelDriver(Protocol):
    """Streams one model call. Implementations are usually async generator functions."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelStreamEvent]: ...


async def complete(driver: ModelDriver, request: ModelRequest) -> Completed:
    """Drain a stream and return its ``Completed`` event (for callers that skip the deltas)."""
    async for event in driver.stream(request):
        if isinstance(event, Completed):
            return event
    raise ModelCallError("model stream ended without a completion", retryable=True)
