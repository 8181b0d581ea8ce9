"""Where the ``guardrails`` capability's checks run in a turn (``capabilities.guardrails`` parses
and matches; this module decides when, and what is recorded).

``output``: the model's answer is checked as it streams. :class:`OutputGuard` sits after the
secret redactor (``domain.secret_refs.StreamRedactor``) and, like it, holds back a tail of the
text it has been given, so a match split across two deltas is found before any of it is sent:

- a blocklist can match at most its longest word, so that many characters are held back;
- a regex has no such bound in general: ``REGEX_HOLD_CHARS`` are held back, and a match up to
  that long is found before any of it is sent. A longer match (``a.*b`` spanning paragraphs) is
  still found, when it ends: the rest of the answer is withheld and the stored message replaced,
  but the start of that match may have been streamed already.

A match that ends exactly where the text received so far ends is not decided yet (``darn`` may
be the start of ``darned``): its characters stay held until the next delta (or the end) shows.
Only the checks that *block* are streamed; once one matches, nothing more is sent. When the
answer is complete, every ``output`` check is evaluated once on the whole text, which gives the
hits to record (``log`` ones included) and catches what a stream did not show (a driver that
did not stream). The guard scans when the caller takes text to send (``release``, at most every
``DELTA_FLUSH_SECONDS``), not at every delta: the text is scanned once either way, and a fast
stream costs a few scans, not one per delta.

``tool_use``: a blocked call is refused before it runs (``engine.loop_guard.refusals``);
``tool_output``: a blocked result is replaced by the capability's ``result_filter``. The events
of their hits are built here (:func:`call_hit_events`), written with the call's record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from everloop.capabilities.guardrails import (
    DEFAULT_REPLACEMENT,
    EXCERPT_CHARS,
    GUARDRAILS,
    GuardrailCheck,
    GuardrailHit,
    GuardrailPolicy,
    arguments_text,
    evaluate,
    first_block,
    policy_of,
)
from everloop.domain.messages import JsonObject, ToolCallPart, ToolResultPart, json_text
from everloop.domain.runtime_agent import RuntimeAgent
from everloop.engine import events as ev

# How many characters a blocking regex holds back while the answer streams (see above).
REGEX_HOLD_CHARS = 256


def policy_for(runtime: RuntimeAgent | None) -> GuardrailPolicy | None:
    """The session's guardrails (None when the capability is not active or has no checks)."""
    if runtime is None:
        return None
    for active in runtime.capabilities:
        if active.ref == GUARDRAILS:
            return policy_of(active.config)
    return None


@dataclass(frozen=True, slots=True)
class BlockedOutput:
    """An answer a check blocked: the hit, and the text stored and shown instead."""

    hit: GuardrailHit

    @property
    def replacement(self) -> str:
        return self.hit.check.replacement or DEFAULT_REPLACEMENT


class OutputGuard:
    """The blocking ``output`` checks over a streamed answer: ``feed`` what arrives, ``release``
    what may be sent now, ``finish`` at the end; ``blocked`` once a check matched (nothing is
    released after that). Without blocking checks it passes text through untouched."""

    def __init__(self, policy: GuardrailPolicy | None) -> None:
        checks = policy.for_stage("output") if policy is not None else ()
        self._policy = policy
        self._blocking = tuple(c for c in checks if policy and policy.action_of(c) == "block")
        self._hold = max((_hold_of(c) for c in self._blocking), default=0)
        self._parts: list[str] = []  # fed, not scanned yet
        # Takes a piece of the answer, looked at when text is next taken (``release``). Once
        # per delta, so it is the list's own append: no Python frame (see the benchmark).
        self.feed: Callable[[str], None] = self._parts.append
        self._held = ""  # scanned, held back
        self._context = ""  # the released tail a match crossing into new text may start in
        self._emitted: list[str] = []
        self.blocked: BlockedOutput | None = None

    @property
    def emitted(self) -> str:
        """Everything released so far."""
        return "".join(self._emitted)

    def release(self) -> str:
        """The text that is safe to send now (maybe empty)."""
        return self._scan(finished=False)

    def finish(self) -> str:
        """The rest of the text (the stream ended: nothing can grow any more)."""
        return self._scan(finished=True)

    def _scan(self, *, finished: bool) -> str:
        new = "".join(self._parts)
        self._parts.clear()
        if self.blocked is not None or not (new or self._held):
            return ""
        if not self._blocking:
            self._emitted.append(new)
            return new
        window = self._context + self._held + new
        base = len(self._context)
        stop = len(window) if finished else len(window) - self._hold
        start = 1 if self._context else 0  # the first context character only serves \b
        for check in self._blocking:
            assert check.regex is not None
            match = check.regex.search(window, start)
            if match is None:
                continue
            if finished or match.end() < len(window):
                excerpt = match.group()[:EXCERPT_CHARS]
                hit = GuardrailHit(check, "output", "block", excerpt)
                self.blocked = BlockedOutput(hit)
                self._held = ""
                return ""
            stop = min(stop, match.start())  # undecided: held until the next delta shows
        stop = max(stop, base)
        out = window[base:stop]
        self._held = window[stop:]
        self._context = (self._context + out)[-(self._hold + 1) :]
        if out:
            self._emitted.append(out)
        return out

    def outcome(self, text: str) -> tuple[list[GuardrailHit], BlockedOutput | None]:
        """Every ``output`` hit in the complete answer ``text``, and what blocks it (the
        stream's block, else the first blocking hit of the whole text)."""
        if self._policy is None:
            return [], None
        policy = self._policy
        if self.blocked is None and self._blocking and self.emitted == text:
            # The stream ran the blocking checks over this very text: only the rest are left.
            policy = replace(
                policy, checks=tuple(c for c in policy.checks if c not in self._blocking)
            )
        hits = evaluate(policy, "output", text)
        blocked = self.blocked
        if blocked is not None and blocked.hit.check.index not in {h.check.index for h in hits}:
            hits.append(blocked.hit)
        if blocked is None:
            hit = first_block(hits)
            blocked = BlockedOutput(hit) if hit is not None else None
        return hits, blocked


def _hold_of(check: GuardrailCheck) -> int:
    return check.longest if check.longest is not None else REGEX_HOLD_CHARS


def triggered(
    hit: GuardrailHit, *, message_id: str | None = None, call: ToolCallPart | None = None
) -> JsonObject:
    """``guardrail.triggered``: one check's hit, with a bounded excerpt of what it matched. A
    blocked excerpt is masked past its first two characters: the log (and the SSE stream that
    replays it) must not hold what was blocked (a credential, a card number), yet an operator
    can tell which word or pattern it was. A logged hit's text went through anyway: shown."""
    excerpt = hit.excerpt if hit.action == "log" else mask(hit.excerpt)
    data: JsonObject = {
        "stage": hit.stage,
        "guardrail_capability_id": GUARDRAILS,
        "guardrail_id": hit.check.check_id,
        "check_index": hit.check.index,
        "rule_type": hit.check.rule_type,
        "action": hit.action,
        "reason_code": hit.check.reason_code,
        "excerpt": excerpt,
    }
    if message_id is not None:
        data["message_id"] = message_id
    if call is not None:
        data["tool_call_id"] = call.id
        data["tool_name"] = call.name
    return data


def mask(excerpt: str) -> str:
    """``excerpt`` with all but its first two characters as ``*``."""
    return excerpt[:2] + "*" * max(len(excerpt) - 2, 0)


def replaced(*, turn_id: str, message_id: str, blocked: BlockedOutput) -> JsonObject:
    """``output.message.replaced`` (Everruns ``OutputMessageReplacedData``): discard what was
    streamed for the turn and show ``replacement``."""
    return {
        "turn_id": turn_id,
        "message_id": message_id,
        "guardrail_capability_id": GUARDRAILS,
        "guardrail_id": blocked.hit.check.check_id,
        "reason_code": blocked.hit.check.reason_code,
        "replacement": blocked.replacement,
    }


def output_events(
    hits: list[GuardrailHit], blocked: BlockedOutput | None, *, turn_id: str, message_id: str
) -> list[tuple[ev.EventType, JsonObject]]:
    """The events of a checked answer: each hit, then the replacement if one blocked it."""
    found: list[tuple[ev.EventType, JsonObject]] = [
        (ev.GUARDRAIL_TRIGGERED, triggered(h, message_id=message_id)) for h in hits
    ]
    if blocked is not None:
        data = replaced(turn_id=turn_id, message_id=message_id, blocked=blocked)
        found.append((ev.OUTPUT_MESSAGE_REPLACED, data))
    return found


def call_hit_events(
    policy: GuardrailPolicy | None, call: ToolCallPart, result: ToolResultPart | None
) -> list[tuple[ev.EventType, JsonObject]]:
    """The ``guardrail.triggered`` events of a call: its ``tool_use`` hits, and for a call that
    ran and succeeded (``result``, as the tool returned it), its ``tool_output`` hits."""
    if policy is None:
        return []
    hits = evaluate(policy, "tool_use", arguments_text(call.arguments), call.name)
    if result is not None and result.error is None:
        hits += evaluate(policy, "tool_output", json_text(result.result))
    return [(ev.GUARDRAIL_TRIGGERED, triggered(h, call=call)) for h in hits]
