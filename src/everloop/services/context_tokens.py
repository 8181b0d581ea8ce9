"""The token split of a session's next model call, for the context report.

Counted as the compaction step counts a prompt (``llm.tokens.TokenCounter``, by the session's
resolved model: its real encoding for OpenAI models, four characters a token otherwise), so the
report and compaction agree on how full the window is. Sections are counted as is; the total
is also scaled by what the provider reported for that model in this process
(``TokenCounter.calibrated``), which is what compaction compares with its threshold.

The history is the one a new turn would start with (``engine.context.next_history``): the
newest compaction checkpoint's summary, then the turns after it verbatim. The user message
that will start that turn is not known yet and is not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from everloop.capabilities.mcp import McpTool
from everloop.domain.runtime_agent import RuntimeAgent
from everloop.engine.compaction import COMPACTION_CAPABILITY, CompactionConfig
from everloop.engine.context import NextHistory
from everloop.llm.base import ToolSpec
from everloop.llm.tokens import TokenCounter

LISTED_TURNS = 50  # newest turns with a contribution each; older ones share one


@dataclass(frozen=True, slots=True)
class TokenSection:
    """One part of the prompt: ``items`` things (messages, tools) of ``tokens`` in all."""

    key: str
    label: str
    tokens: int
    items: int


@dataclass(frozen=True, slots=True)
class TokenContribution:
    """What one source (a tool, a capability's prompt addition, a turn) adds to a section."""

    section_key: str
    source_id: str
    label: str
    tokens: int


@dataclass(frozen=True, slots=True)
class CompactionStatus:
    """Whether the session compacts, from what prompt size, and its newest checkpoint."""

    active: bool
    threshold_tokens: int | None  # None: not active, or the model's window is unknown
    last_checkpoint_id: str | None
    last_checkpoint_at: str | None = None


@dataclass(frozen=True, slots=True)
class TokenReport:
    """The next call's tokens: ``counted`` is the sections' sum, ``estimated`` that sum
    calibrated by ``ratio`` (1.0: no provider report for the model in this process)."""

    method: str  # the encoding's name, or ``estimate``
    ratio: float
    sections: tuple[TokenSection, ...]
    contributions: tuple[TokenContribution, ...]
    counted: int
    estimated: int
    context_window: int | None
    compaction: CompactionStatus


@dataclass(frozen=True, slots=True)
class PromptParts:
    """What the next call carries besides its history."""

    runtime: RuntimeAgent
    instructions: str | None  # the session's AGENTS.md part of the system prompt
    mcp_tools: Sequence[McpTool]
    has_mcp: bool  # the session reaches MCP servers (the ``mcp_tools`` section is shown)
    # Each capability's system prompt addition, by capability id (``CapabilityInfo``).
    additions: Mapping[str, str | None]


def count_next_call(
    counter: TokenCounter,
    model: str,
    context_window: int | None,
    parts: PromptParts,
    history: NextHistory,
    last_checkpoint_at: str | None = None,
) -> TokenReport:
    """The token split of the session's next model call (see the module docstring)."""
    sections: list[TokenSection] = []
    contributions: list[TokenContribution] = []

    def add(section: TokenSection, found: Iterable[TokenContribution]) -> None:
        sections.append(section)
        contributions.extend(found)

    runtime = parts.runtime
    prompt = "\n\n".join(p for p in (runtime.system_prompt, parts.instructions) if p)
    add(
        TokenSection("system_prompt", "System prompt", counter.text(model, prompt), 1),
        _prompt_contributions(counter, model, parts),
    )
    specs = [ToolSpec(t.name, t.description, dict(t.parameters)) for t in runtime.tools]
    add(*_tool_section(counter, model, "tools", "Tool definitions", specs))
    if parts.has_mcp:
        mcp = [ToolSpec(t.name, t.description, dict(t.parameters)) for t in parts.mcp_tools]
        add(*_tool_section(counter, model, "mcp_tools", "MCP tool definitions", mcp))
    add(*_summary_section(counter, model, history))
    add(*_history_section(counter, model, history))
    counted = sum(s.tokens for s in sections)
    return TokenReport(
        method=counter.method(model),
        ratio=counter.ratio(model),
        sections=tuple(sections),
        contributions=tuple(contributions),
        counted=counted,
        estimated=counter.calibrated(model, counted),
        context_window=context_window,
        compaction=_compaction(runtime, context_window, history, last_checkpoint_at),
    )


def _prompt_contributions(
    counter: TokenCounter, model: str, parts: PromptParts
) -> list[TokenContribution]:
    found: list[TokenContribution] = []
    seen: set[str] = set()
    for capability in parts.runtime.capabilities:
        # As the assembly adds them: one addition once, under the first capability giving it.
        addition = parts.additions.get(capability.ref)
        if addition and addition not in seen:
            seen.add(addition)
            found.append(
                TokenContribution(
                    "system_prompt",
                    capability.ref,
                    f"{capability.ref} instructions",
                    counter.text(model, addition),
                )
            )
    if parts.instructions:
        tokens = counter.text(model, parts.instructions)
        found.append(TokenContribution("system_prompt", "agent_instructions", "AGENTS.md", tokens))
    return found


def _tool_section(
    counter: TokenCounter, model: str, key: str, label: str, specs: Sequence[ToolSpec]
) -> tuple[TokenSection, list[TokenContribution]]:
    found = [TokenContribution(key, s.name, s.name, counter.tools(model, (s,))) for s in specs]
    return TokenSection(key, label, counter.tools(model, specs), len(specs)), found


def _summary_section(
    counter: TokenCounter, model: str, history: NextHistory
) -> tuple[TokenSection, list[TokenContribution]]:
    checkpoint = history.checkpoint
    if checkpoint is None:
        return TokenSection("compacted_summary", "Compacted summary", 0, 0), []
    tokens = counter.message(model, checkpoint.summary)
    found = TokenContribution("compacted_summary", checkpoint.id, "Compaction summary", tokens)
    return TokenSection("compacted_summary", "Compacted summary", tokens, 1), [found]


def _history_section(
    counter: TokenCounter, model: str, history: NextHistory
) -> tuple[TokenSection, list[TokenContribution]]:
    per_turn = [
        (turn_id, number, len(messages), counter.messages(model, messages))
        for turn_id, number, messages in history.turns
    ]
    older, listed = per_turn[:-LISTED_TURNS], per_turn[-LISTED_TURNS:]
    found: list[TokenContribution] = []
    if older:
        count = sum(n for _, _, n, _ in older)
        found.append(
            TokenContribution(
                "history",
                "older_turns",
                f"{len(older)} older turns ({count} messages)",
                sum(t for _, _, _, t in older),
            )
        )
    found += [
        TokenContribution("history", turn_id, f"turn {number} ({_messages(n)})", tokens)
        for turn_id, number, n, tokens in listed
    ]
    section = TokenSection(
        "history",
        "Conversation history",
        sum(t for _, _, _, t in per_turn),
        sum(n for _, _, n, _ in per_turn),
    )
    return section, found


def _messages(count: int) -> str:
    return f"{count} message" if count == 1 else f"{count} messages"


def _compaction(
    runtime: RuntimeAgent,
    context_window: int | None,
    history: NextHistory,
    last_checkpoint_at: str | None,
) -> CompactionStatus:
    config = next(
        (
            CompactionConfig.from_config(c.config or {})
            for c in runtime.capabilities
            if c.ref == COMPACTION_CAPABILITY
        ),
        None,
    )
    threshold = (
        int(config.threshold * context_window)
        if config is not None and context_window is not None
        else None
    )
    checkpoint = history.checkpoint
    return CompactionStatus(
        active=config is not None,
        threshold_tokens=threshold,
        last_checkpoint_id=checkpoint.id if checkpoint is not None else None,
        last_checkpoint_at=last_checkpoint_at if checkpoint is not None else None,
    )
