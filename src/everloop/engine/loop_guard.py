"""Checks on the calls a model asked for, before any runs: ``loop_detection`` and
``tool_call_repair`` (``capabilities.loop_detection``, ``capabilities.tool_call_repair``).

Pure functions of the turn's state and its active capabilities, so a step re-run after a crash
decides exactly as the first run did:

- :func:`loop_failure`, in the reason phase: a call repeated past the refusals
  ``loop_detection`` allows fails the turn (``loop_detected``) instead of an act phase.
- :func:`refusals`, in the act phase: the calls that get an error result instead of running,
  a call a ``guardrails`` ``tool_use`` check blocks, a repeat past ``max_repeats`` or a
  malformed call ``tool_call_repair`` answers.

"In a row" is over the turn's own tool calls in the order the model asked for them (the calls
of one answer count in their order): a different call in between starts the count again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from everloop.capabilities.guardrails import (
    GUARDRAILS,
    GuardrailPolicy,
    arguments_text,
    evaluate,
    first_block,
    policy_of,
    refusal_message,
)
from everloop.capabilities.loop_detection import LOOP_DETECTION, LoopLimits
from everloop.capabilities.tool_call_repair import TOOL_CALL_REPAIR, repair_error
from everloop.domain.messages import JsonObject, Message, ToolCallPart, ToolResultPart
from everloop.domain.runtime_agent import RuntimeAgent
from everloop.engine import events as ev
from everloop.engine import loop

LOOP_DETECTED: Final = "loop_detected"
RefusalKind = Literal["loop_detected", "invalid_arguments", "unknown_tool", "guardrail_blocked"]


@dataclass(frozen=True, slots=True)
class CallChecks:
    """What the turn's capabilities check: ``loop`` (None: ``loop_detection`` is not active),
    ``repair`` (``tool_call_repair`` is active) and ``guardrails`` (their ``tool_use`` checks;
    None: not active)."""

    loop: LoopLimits | None = None
    repair: bool = False
    guardrails: GuardrailPolicy | None = None

    @classmethod
    def of(cls, runtime: RuntimeAgent | None) -> CallChecks:
        refs = {c.ref: c.config for c in runtime.capabilities} if runtime else {}
        limits = LoopLimits.from_config(refs[LOOP_DETECTION]) if LOOP_DETECTION in refs else None
        guardrails = policy_of(refs[GUARDRAILS]) if GUARDRAILS in refs else None
        return cls(loop=limits, repair=TOOL_CALL_REPAIR in refs, guardrails=guardrails)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A call answered with ``error`` instead of running; for a repeat, ``repeats`` counts it
    in its row."""

    call: ToolCallPart
    error: str
    kind: RefusalKind
    repeats: int = 1
    max_repeats: int | None = None  # set for a repeat


@dataclass(frozen=True, slots=True)
class LoopFailure:
    """The turn fails: ``call`` was asked for ``repeats`` times in a row."""

    call: ToolCallPart
    repeats: int
    max_repeats: int

    @property
    def message(self) -> str:
        return (
            f"loop detected: {self.call.name} was called with the same arguments "
            f"{self.repeats} times in a row (max_repeats {self.max_repeats})"
        )

    @property
    def text(self) -> str:
        """What the person reads as the turn's last message."""
        return (
            f"I stopped because I kept calling {self.call.name} with the same arguments "
            f"({self.repeats} times in a row) without making progress. Send another message "
            "to let me try a different approach."
        )


def call_key(call: ToolCallPart) -> str:
    """A call's identity for counting: its tool and its arguments as canonical JSON."""
    arguments = json.dumps(call.arguments, sort_keys=True, separators=(",", ":"))
    return f"{call.name}\n{arguments}"


def repeats_in_a_row(turn_messages: Sequence[Message]) -> dict[str, int]:
    """For each tool call of the turn, by id, how many times in a row (itself included) the
    model asked for that same call."""
    counts: dict[str, int] = {}
    previous, streak = "", 0
    for message in turn_messages:
        for call in message.tool_calls:
            key = call_key(call)
            streak = streak + 1 if key == previous else 1
            previous = key
            counts[call.id] = streak
    return counts


def loop_failure(state: loop.TurnState, checks: CallChecks) -> LoopFailure | None:
    """The first of the pending calls repeated past ``max_repeats`` plus the refusals allowed;
    None when there is none (or ``loop_detection`` is not active)."""
    limits = checks.loop
    if limits is None:
        return None
    counts = repeats_in_a_row(state.turn_messages)
    for call in state.pending_tool_calls:
        repeats = counts.get(call.id, 1)
        if repeats > limits.max_repeats + limits.warnings:
            return LoopFailure(call, repeats, limits.max_repeats)
    return None


def refusals(
    state: loop.TurnState, checks: CallChecks, calls: Sequence[ToolCallPart]
) -> dict[str, Refusal]:
    """The calls of ``calls`` (server-side ones of the pending act phase) that get an error
    result instead of running, by call id."""
    found: dict[str, Refusal] = {}
    limits = checks.loop
    counts = repeats_in_a_row(state.turn_messages) if limits is not None else {}
    specs = {spec.name: spec for spec in state.settings.tools}
    for call in calls:
        repeats = counts.get(call.id, 1)
        blocked = _guardrail_block(checks.guardrails, call)
        if blocked is not None:
            found[call.id] = Refusal(call, blocked, "guardrail_blocked")
        elif limits is not None and repeats > limits.max_repeats:
            warning = _loop_warning(call, repeats, limits)
            found[call.id] = Refusal(call, warning, LOOP_DETECTED, repeats, limits.max_repeats)
        elif checks.repair:
            spec = specs.get(call.name)
            error = repair_error(call, spec, sorted(specs))
            if error is not None:
                kind: RefusalKind = "unknown_tool" if spec is None else "invalid_arguments"
                found[call.id] = Refusal(call, error, kind)
    return found


def _guardrail_block(policy: GuardrailPolicy | None, call: ToolCallPart) -> str | None:
    """The error a blocked call gets instead of its result, if a ``tool_use`` check blocks it."""
    if policy is None or not policy.for_stage("tool_use"):
        return None
    hit = first_block(evaluate(policy, "tool_use", arguments_text(call.arguments), call.name))
    return refusal_message(hit, call.name) if hit is not None else None


def _loop_warning(call: ToolCallPart, repeats: int, limits: LoopLimits) -> str:
    left = limits.max_repeats + limits.warnings - repeats
    after = "again" if left == 0 else f"{left + 1} more times"
    return (
        f"not run: you have called {call.name} with the same arguments {repeats} times in a "
        "row, and it will not give a different result. Change approach: use what the earlier "
        "calls returned, call it with different arguments, use another tool, or answer the "
        f"user. Calling it {after} with the same arguments fails the turn."
    )


def stop_looping(
    transition: loop.Transition, checks: CallChecks, *, created_at: str | None
) -> tuple[loop.Transition, LoopFailure | None]:
    """``transition`` (a model answer) turned into the turn's failure when one of the calls it
    asks for is repeated past what ``loop_detection`` allows; as it was otherwise."""
    state, effects = transition
    if not isinstance(effects[0], loop.RunTools):
        return transition, None
    failure = loop_failure(state, checks)
    if failure is None:
        return transition, None
    stopped = loop.calls_refused(
        state, LOOP_DETECTED, failure.message, failure.text, created_at=created_at
    )
    return stopped, failure


def failure_events(
    failure: LoopFailure, calls: Sequence[ToolCallPart]
) -> list[tuple[ev.EventType, JsonObject]]:
    """The events of a turn stopped by ``failure``: ``tool.loop_detected``, then a
    ``tool.completed`` error for each call it did not run (so the session's transcript shows
    why, as it does a refused call's)."""
    found: list[tuple[ev.EventType, JsonObject]] = [
        (
            ev.TOOL_LOOP_DETECTED,
            ev.tool_loop_detected(
                tool_call=failure.call,
                repeats=failure.repeats,
                max_repeats=failure.max_repeats,
                action="failed",
            ),
        )
    ]
    error = f"not run: the turn stopped ({failure.message})"
    for call in calls:
        result = ToolResultPart(call.id, call.name, None, error)
        data = ev.tool_completed(
            tool_call=call, result=result, duration_ms=0, error_kind=LOOP_DETECTED
        )
        found.append((ev.TOOL_COMPLETED, data))
    return found
