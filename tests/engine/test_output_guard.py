"""``engine.guardrails.OutputGuard``: what a streamed answer releases, delta by delta, under
blocking ``output`` checks. Pure: the guard is fed the pieces a model stream would give."""

from __future__ import annotations

from everloop.capabilities.guardrails import EXCERPT_CHARS, parse_policy
from everloop.domain.messages import ToolCallPart, ToolResultPart
from everloop.engine.guardrails import (
    REGEX_HOLD_CHARS,
    OutputGuard,
    call_hit_events,
    output_events,
)

WORDS = parse_policy({"checks": [{"id": "w", "type": "blocklist", "words": ["darn", "heck"]}]})


def stream(guard: OutputGuard, pieces: list[str]) -> list[str]:
    """Release after every piece (the slowest model: each delta is its own flush)."""
    out = []
    for piece in pieces:
        guard.feed(piece)
        out.append(guard.release())
    out.append(guard.finish())
    return out


def test_a_word_split_across_every_boundary_is_never_released() -> None:
    text = "first some words, then darn it, then more words after it"
    for size in range(1, 8):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        guard = OutputGuard(WORDS)
        released = "".join(stream(guard, pieces))
        assert guard.blocked is not None and guard.blocked.hit.excerpt == "darn", size
        assert "dar" not in released and text.startswith(released), (size, released)


def test_a_blocklist_holds_back_at_most_its_longest_word() -> None:
    guard = OutputGuard(WORDS)
    guard.feed("x" * 50)
    assert guard.release() == "x" * 46


def test_a_longer_word_that_only_starts_like_a_blocked_one_passes() -> None:
    guard = OutputGuard(WORDS)
    assert "".join(stream(guard, ["I da", "rned my socks, he", "ckled"])) == (
        "I darned my socks, heckled"
    )
    assert guard.blocked is None


def test_a_regex_match_within_the_window_is_caught_before_any_of_it_is_sent() -> None:
    policy = parse_policy({"checks": [{"type": "regex", "pattern": r"\d{4}-\d{4}-\d{4}"}]})
    guard = OutputGuard(policy)
    lead = "y" * (3 * REGEX_HOLD_CHARS)
    out = stream(guard, [lead, " 1234-", "5678-", "9012 trailing"])
    released = "".join(out)
    assert guard.blocked is not None
    assert released == lead[: len(released)] and "1234" not in released


def test_log_checks_and_no_policy_pass_text_through_at_once() -> None:
    logged = parse_policy({"checks": [{"type": "blocklist", "words": ["darn"], "action": "log"}]})
    for guard in (OutputGuard(logged), OutputGuard(None)):
        assert stream(guard, ["oh da", "rn"]) == ["oh da", "rn", ""]
        _, blocked = guard.outcome("oh darn")
        assert blocked is None
    assert [h.action for h in OutputGuard(logged).outcome("darn")[0]] == ["log"]


def test_every_hit_event_carries_a_bounded_excerpt() -> None:
    """A match of 1,000 characters in each stage: its ``guardrail.triggered`` holds at most
    ``EXCERPT_CHARS`` of it (a logged hit as matched, a blocking one masked)."""
    long = "x" * 1000
    policy = parse_policy(
        {
            "checks": [
                {"id": "logged", "type": "regex", "pattern": "x+", "action": "log"},
                {"id": "blocking", "type": "regex", "pattern": "x{300,}"},
                {"id": "call", "type": "tool_pattern", "tools": ["run"], "pattern": "x+"},
                {"id": "result", "type": "regex", "pattern": "x+", "stages": ["tool_output"]},
            ]
        }
    )
    hits, blocked = OutputGuard(policy).outcome(long)
    found = output_events(hits, blocked, turn_id="turn_1", message_id="message_1")
    call = ToolCallPart("call_1", "run", {"cmd": long})
    found += call_hit_events(policy, call, ToolResultPart("call_1", "run", {"out": long}))
    excerpts = {
        (d["guardrail_id"], d["stage"]): d["excerpt"]
        for t, d in found
        if t == "guardrail.triggered"
    }
    masked = "xx" + "*" * (EXCERPT_CHARS - 2)
    assert excerpts == {
        ("logged", "output"): "x" * EXCERPT_CHARS,
        ("blocking", "output"): masked,
        ("call", "tool_use"): masked,
        ("result", "tool_output"): masked,
    }
