"""The context report's token split (``services.context_tokens``) over a long history: the
newest 50 turns each have a contribution, older ones share one, and the sums still match."""

from __future__ import annotations

from everloop.capabilities.base import CapabilityRegistry
from everloop.domain.messages import Message, TextPart
from everloop.engine.assembly import Assembler
from everloop.engine.context import NextHistory
from everloop.llm.tokens import TokenCounter
from everloop.services.context_tokens import LISTED_TURNS, PromptParts, count_next_call


def _turn(number: int) -> tuple[str, int, tuple[Message, ...]]:
    question = Message(f"message_q{number}", "user", (TextPart(f"question {number} " * 3),))
    answer = Message(f"message_a{number}", "agent", (TextPart(f"answer {number} " * 9),))
    return f"turn_{number}", number, (question, answer)


def test_only_the_newest_turns_are_listed_one_by_one() -> None:
    runtime = Assembler(CapabilityRegistry()).assemble()
    parts = PromptParts(runtime, "Read AGENTS.md first.", (), has_mcp=False, additions={})
    turns = tuple(_turn(n) for n in range(1, 61))
    counter = TokenCounter()
    got = count_next_call(counter, "gpt-4o", 128_000, parts, NextHistory(None, turns))
    assert got.method == "o200k_base"
    assert [s.key for s in got.sections] == [
        "system_prompt",
        "tools",
        "compacted_summary",
        "history",
    ]
    (history,) = [s for s in got.sections if s.key == "history"]
    listed = [c for c in got.contributions if c.section_key == "history"]
    assert len(listed) == LISTED_TURNS + 1
    older = listed[0]
    assert (older.source_id, older.label) == ("older_turns", "10 older turns (20 messages)")
    assert older.tokens == sum(counter.messages("gpt-4o", t[2]) for t in turns[:10])
    assert [c.source_id for c in listed[1:]] == [f"turn_{n}" for n in range(11, 61)]
    assert listed[-1].label == "turn 60 (2 messages)"
    assert (history.items, history.tokens) == (120, sum(c.tokens for c in listed))
    (instructions,) = [c for c in got.contributions if c.section_key == "system_prompt"]
    assert instructions.source_id == "agent_instructions"
    assert got.counted == sum(s.tokens for s in got.sections) == got.estimated
    assert got.compaction.active is False and got.compaction.threshold_tokens is None
