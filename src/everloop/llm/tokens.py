"""Counting prompt tokens before a model call, per model family.

OpenAI models are counted with their real byte-pair encoding (``o200k_base`` for the GPT-4o,
GPT-4.1, GPT-5 and o-series families, ``cl100k_base`` for GPT-4 and GPT-3.5) from the
``bpe-openai`` package, whose encodings are compiled into it: ``tiktoken`` fetches its encoding
files over the network on first use, which everloop never does. Other models (Anthropic,
Gemini, llmsim...) publish no offline tokenizer: they are estimated at four characters a token.

Either way the count is of the text the model is given, not of the provider's framing (role
markers, tool-schema wrapping), so every count is corrected by what the provider reports: after
each call ``observe`` compares the estimate of that prompt with the ``input_tokens`` the
provider billed, and ``calibrated`` scales later estimates for that model by the running ratio.

A message is counted once: counts are kept by message id (a message never changes once
recorded), so counting a long session's prompt before each call costs the new messages only.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from everloop.domain.messages import Message, TextPart, part_to_json
from everloop.llm.base import ToolSpec

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4  # role and separators, per message (OpenAI's documented chat framing)
_CACHE_SIZE = 65_536
_SMOOTHING = 0.3  # weight of the newest observation in the running ratio
_RATIO_BOUNDS = (0.25, 4.0)  # a report outside this is a different prompt, not a correction

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def encoding_name(model: str) -> str | None:
    """The byte-pair encoding of an OpenAI ``model`` (its wire name, with or without a
    ``provider/`` prefix); None for a model without an offline tokenizer."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None


@cache
def _encoding(name: str) -> _Encoding:
    # bpe-openai reads its compiled-in data with ``importlib.resources.open_binary``, which
    # warns (DeprecationWarning) on Python 3.11+: its concern, not a caller's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai  # type: ignore[import-untyped]  # loaded on first use: ~70 ms, and only OpenAI models need it

        encoding: _Encoding = bpe_openai.get_encoding(name)
    return encoding


@dataclass(frozen=True, slots=True)
class PromptCount:
    """A prompt's tokens by part, as counted (before calibration)."""

    system: int
    tools: int
    messages: int

    @property
    def total(self) -> int:
        return self.system + self.tools + self.messages


class TokenCounter:
    """Counts (see the module docstring). One per process; safe to share across turns."""

    def __init__(self, cache_size: int = _CACHE_SIZE) -> None:
        self._cache: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._cache_size = cache_size
        self._ratios: dict[str, float] = {}

    def method(self, model: str) -> str:
        """How ``model`` is counted: its encoding's name, or ``estimate``."""
        return encoding_name(model) or "estimate"

    def text(self, model: str, text: str) -> int:
        if not text:
            return 0
        encoding = encoding_name(model)
        if encoding is None:
            return math.ceil(len(text) / CHARS_PER_TOKEN)
        return len(_encoding(encoding).encode_ordinary(text))

    def message(self, model: str, message: Message) -> int:
        """One message's tokens: its text parts as text, other parts as their wire JSON."""
        key = (self.method(model), message.id)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        count = MESSAGE_OVERHEAD + sum(
            self.text(
                model,
                part.text
                if isinstance(part, TextPart)
                else json.dumps(part_to_json(part), separators=(",", ":")),
            )
            for part in message.content
        )
        self._cache[key] = count
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return count

    def messages(self, model: str, messages: Iterable[Message]) -> int:
        return sum(self.message(model, m) for m in messages)

    def tools(self, model: str, tools: Sequence[ToolSpec]) -> int:
        if not tools:
            return 0
        return self.text(model, json.dumps([t.to_json() for t in tools], separators=(",", ":")))

    def prompt(
        self,
        model: str,
        system_prompt: str | None,
        tools: Sequence[ToolSpec],
        messages: Sequence[Message],
    ) -> PromptCount:
        return PromptCount(
            system=self.text(model, system_prompt or ""),
            tools=self.tools(model, tools),
            messages=self.messages(model, messages),
        )

    def observe(self, model: str, counted: int, reported: int) -> None:
        """The provider billed ``reported`` input tokens for a prompt counted as ``counted``."""
        if counted <= 0 or reported <= 0:
            return
        ratio = reported / counted
        low, high = _RATIO_BOUNDS
        if not low <= ratio <= high:
            return
        previous = self._ratios.get(model)
        self._ratios[model] = (
            ratio if previous is None else previous + _SMOOTHING * (ratio - previous)
        )

    def ratio(self, model: str) -> float:
        """The running reported/counted ratio for ``model`` (1.0 before any report)."""
        return self._ratios.get(model, 1.0)

    def calibrated(self, model: str, counted: int) -> int:
        """``counted`` corrected by what the provider has reported for ``model`` so far."""
        return math.ceil(counted * self.ratio(model))
