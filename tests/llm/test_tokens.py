"""Token counting per model family (``llm.tokens``): real byte-pair encodings for OpenAI model
names, four characters a token otherwise, a per-message cache, and the calibration ratio from
what providers report."""

from __future__ import annotations

import pytest

from everloop.domain.messages import Message, TextPart
from everloop.llm.base import ToolSpec
from everloop.llm.tokens import MESSAGE_OVERHEAD, TokenCounter, encoding_name


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai/gpt-4.1", "o200k_base"),
        ("GPT-5-mini", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("claude-sonnet-4-5", None),
        ("gemini-2.5-pro", None),
        ("llmsim", None),
    ],
)
def test_openai_model_names_map_to_their_encoding(model: str, encoding: str | None) -> None:
    assert encoding_name(model) == encoding
    assert TokenCounter().method(model) == (encoding or "estimate")


def test_known_counts() -> None:
    counter = TokenCounter()
    assert counter.text("gpt-4", "hello world") == 2
    assert counter.text("gpt-4o", "hello world") == 2
    # Encodings differ: the same text is not the same number of tokens in each.
    text = "Grüße aus Kyiv: Привіт, світе! 日本語のテキスト"
    assert counter.text("gpt-4", text) != counter.text("gpt-4o", text)
    assert counter.text("gpt-4o", "") == 0
    # Without an encoding: four characters a token, rounded up.
    assert counter.text("claude-sonnet-4-5", "abcdefgh") == 2
    assert counter.text("claude-sonnet-4-5", "abcdefghi") == 3


def test_a_message_and_a_prompt_are_counted_by_part() -> None:
    counter = TokenCounter()
    message = Message("message_1", "user", (TextPart("hello world"), TextPart("hello world")))
    assert counter.message("gpt-4", message) == MESSAGE_OVERHEAD + 4
    tool = ToolSpec("add", "Add two numbers.", {"type": "object", "properties": {}})
    counted = counter.prompt("gpt-4", "You add.", (tool,), (message,))
    assert counted.system == counter.text("gpt-4", "You add.")
    assert counted.tools == counter.tools("gpt-4", (tool,)) > 0
    assert counted.messages == MESSAGE_OVERHEAD + 4
    assert counted.total == counted.system + counted.tools + counted.messages
    assert counter.tools("gpt-4", ()) == 0


def test_a_message_is_counted_once_per_encoding() -> None:
    counter = TokenCounter(cache_size=2)
    first = Message("message_a", "user", (TextPart("a" * 40),))
    assert counter.message("claude", first) == MESSAGE_OVERHEAD + 10
    # The same id is the same message (never changed once recorded): the cached count.
    changed = Message("message_a", "user", (TextPart("a" * 400),))
    assert counter.message("claude", changed) == MESSAGE_OVERHEAD + 10
    # Another model of the same method shares it; another encoding counts it afresh.
    assert counter.message("gemini-2.5-pro", changed) == MESSAGE_OVERHEAD + 10
    assert counter.message("gpt-4o", changed) != MESSAGE_OVERHEAD + 10
    # Bounded: the least recently used count goes first.
    counter.message("claude", Message("message_b", "user", (TextPart("b"),)))
    assert counter.message("claude", changed) == MESSAGE_OVERHEAD + 100


def test_the_calibration_ratio_moves_toward_reports_and_ignores_absurd_ones() -> None:
    counter = TokenCounter()
    assert counter.ratio("m") == 1.0
    assert counter.calibrated("m", 100) == 100
    counter.observe("m", 100, 150)
    assert counter.ratio("m") == pytest.approx(1.5)
    counter.observe("m", 100, 100)  # a step of 0.3 toward 1.0
    assert counter.ratio("m") == pytest.approx(1.35)
    assert counter.calibrated("m", 100) == 135
    for counted, reported in ((100, 1_000), (100, 10), (0, 50), (100, 0)):
        counter.observe("m", counted, reported)
        assert counter.ratio("m") == pytest.approx(1.35)
    # Per model.
    assert counter.ratio("other") == 1.0
    for _ in range(30):  # converges on a steady report
        counter.observe("m", 100, 80)
    assert counter.ratio("m") == pytest.approx(0.8, abs=1e-3)
