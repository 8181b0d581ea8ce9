"""Endpoint and options of the SDK-based drivers; options come from provider and model ``settings``.

A model's settings override its provider's. Every key is optional::

    {
      "timeout_seconds": 120,         # per HTTP request (provider or model)
      "max_output_tokens": 4096,      # else the model profile's max_output_tokens
      "temperature": 0.2,
      "reasoning_effort": "low",      # openai, openai_completions: ask for reasoning
      "thinking_budget_tokens": 2048, # anthropic: extended thinking with this budget
      "extra_body": {...}             # merged into the request body as is
    }

Other keys (``llmsim``, ``default``) belong to other parts and are ignored here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from everloop.domain.messages import JsonObject

SdkDriverKind = Literal["openai", "openai_completions", "anthropic"]
DEFAULT_TIMEOUT_SECONDS = 120.0
DEFAULT_ANTHROPIC_MAX_TOKENS = 4096


class DriverOptionError(ValueError):
    """A driver option is malformed; ``path`` names it (``temperature``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a provider is and how to authenticate; the key never appears in ``repr``."""

    base_url: str | None
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DriverOptions:
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_output_tokens: int | None = None
    temperature: float | None = None
    reasoning_effort: str | None = None
    thinking_budget_tokens: int | None = None
    extra_body: JsonObject | None = None


def parse_driver_options(
    *settings: Mapping[str, Any], max_output_tokens: int | None = None
) -> DriverOptions:
    """Merge ``settings`` (later ones win) into options; raises ``DriverOptionError``."""
    merged: dict[str, Any] = {}
    for layer in settings:
        merged.update({k: v for k, v in layer.items() if v is not None})
    timeout = merged.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if not _is_number(timeout) or timeout <= 0:
        raise DriverOptionError("timeout_seconds", "expected a positive number")
    max_tokens = merged.get("max_output_tokens", max_output_tokens)
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        raise DriverOptionError("max_output_tokens", "expected a positive integer")
    temperature = merged.get("temperature")
    if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 2):
        raise DriverOptionError("temperature", "expected a number from 0 to 2")
    effort = merged.get("reasoning_effort")
    if effort is not None and (not isinstance(effort, str) or not effort):
        raise DriverOptionError("reasoning_effort", "expected a string such as 'low'")
    budget = merged.get("thinking_budget_tokens")
    if budget is not None and (not _is_int(budget) or budget < 1024):
        raise DriverOptionError("thinking_budget_tokens", "expected an integer >= 1024")
    extra = merged.get("extra_body")
    if extra is not None and not isinstance(extra, dict):
        raise DriverOptionError("extra_body", "expected an object")
    return DriverOptions(
        timeout_seconds=float(timeout),
        max_output_tokens=max_tokens,
        temperature=None if temperature is None else float(temperature),
        reasoning_effort=effort,
        thinking_budget_tokens=budget,
        extra_body=extra,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
