"""Built-in advisory checks of an agent's shape (``POST /v1/agents/analyze``).

They read the assembled RuntimeAgent (the harness chain, the agent and its capabilities applied)
beside the prompt the author wrote, and say what looks wrong. Advisory only: nothing here stops
an agent from being saved or run, so there is no ``error`` severity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from everloop.domain.runtime_agent import RuntimeAgent

Severity = Literal["warning", "info", "suggestion"]
Category = Literal["structure", "completeness", "effectiveness", "safety", "cost"]

LARGE_PROMPT_TOKENS = 8_000
"""Above this many estimated tokens (prompt and tool definitions), every call costs notably."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding: ``field`` (and a byte span within it, when known) says where."""

    rule_id: str
    severity: Severity
    category: Category
    message: str
    field: str | None = None
    start: int | None = None
    end: int | None = None


def check_agent(
    system_prompt: str, runtime: RuntimeAgent, *, model_error: str | None
) -> list[Finding]:
    """Every built-in rule's findings for an agent whose authored prompt is ``system_prompt``
    and whose assembled shape is ``runtime``; ``model_error`` says why no model resolves."""
    return [
        *_empty_prompt(system_prompt),
        *_duplicate_paragraphs(system_prompt),
        *_tools_without_description(runtime),
        *_large_prompt(runtime),
        *_no_model(model_error),
    ]


def _empty_prompt(system_prompt: str) -> list[Finding]:
    if system_prompt.strip():
        return []
    return [
        Finding(
            "prompt.empty",
            "warning",
            "completeness",
            "the system prompt is empty: say what the agent is for and how it should answer",
            field="system_prompt",
        )
    ]


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def _duplicate_paragraphs(system_prompt: str) -> list[Finding]:
    found: list[Finding] = []
    seen: set[str] = set()
    offset = 0
    for part in _PARAGRAPH_BREAK.split(system_prompt):
        start = system_prompt.index(part, offset)
        offset = start + len(part)
        paragraph = " ".join(part.split())
        if not paragraph:
            continue
        if paragraph in seen:
            byte_start = len(system_prompt[:start].encode())
            found.append(
                Finding(
                    "prompt.duplicate_paragraphs",
                    "suggestion",
                    "structure",
                    "this paragraph repeats an earlier one: the repeat costs tokens and adds "
                    "nothing",
                    field="system_prompt",
                    start=byte_start,
                    end=byte_start + len(part.encode()),
                )
            )
        seen.add(paragraph)
    return found


def _tools_without_description(runtime: RuntimeAgent) -> list[Finding]:
    return [
        Finding(
            "tools.missing_description",
            "warning",
            "effectiveness",
            f"tool '{tool.name}' has no description: the model cannot tell when to call it",
            field="tools",
        )
        for tool in runtime.tools
        if not tool.description.strip()
    ]


def _large_prompt(runtime: RuntimeAgent) -> list[Finding]:
    if runtime.prompt_tokens_estimate <= LARGE_PROMPT_TOKENS:
        return []
    return [
        Finding(
            "cost.large_prompt",
            "info",
            "cost",
            f"the prompt and tool definitions come to about {runtime.prompt_tokens_estimate} "
            f"tokens, sent with every model call",
            field="system_prompt",
        )
    ]


def _no_model(model_error: str | None) -> list[Finding]:
    if model_error is None:
        return []
    return [
        Finding(
            "model.unavailable",
            "warning",
            "completeness",
            f"no model would run this agent: {model_error}",
            field="default_model_id",
        )
    ]
