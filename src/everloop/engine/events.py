"""Event types and pure builders for their ``data`` payloads (Everruns digest §7).

The envelope (id, sequence, ts, context) belongs to the store; here we only shape ``data``.
Builders take keyword arguments and return plain JSON dicts, so the runner can append them
inside the same transaction as the state they describe.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from everloop.domain.messages import (
    JsonObject,
    JsonValue,
    Message,
    ToolCallPart,
    ToolResultPart,
    json_text,
    message_to_json,
    part_to_json,
)
from everloop.domain.usage import TokenUsage
from everloop.llm.base import ToolSpec

EventType = Literal[
    "input.message",
    "turn.started",
    "turn.completed",
    "turn.failed",
    "turn.cancelled",
    "turn.sealed",
    "reason.started",
    "reason.completed",
    "output.message.started",
    "output.message.delta",
    "output.message.completed",
    "output.message.replaced",
    "guardrail.triggered",
    "act.started",
    "act.completed",
    "tool.started",
    "tool.completed",
    "tool.call_requested",
    "tool.questions_answered",
    "tool.approval_requested",
    "tool.approval_decided",
    "tool.loop_detected",
    "llm.generation",
    "session.started",
    "session.activated",
    "session.idled",
    "session.title.updated",
    "transcript.repaired",
    "subagent.spawned",
    "subagent.completed",
    "subagent.failed",
    "subagent.cancelled",
    "task.created",
    "task.updated",
    "budget.warning",
    "budget.paused",
    "budget.exhausted",
    "budget.resumed",
    "context.compacting",
    "context.compacted",
]

EVENT_TYPES: Final[tuple[EventType, ...]] = get_args(EventType)

INPUT_MESSAGE: Final = "input.message"
TURN_STARTED: Final = "turn.started"
TURN_COMPLETED: Final = "turn.completed"
TURN_FAILED: Final = "turn.failed"
TURN_CANCELLED: Final = "turn.cancelled"
TURN_SEALED: Final = "turn.sealed"
REASON_STARTED: Final = "reason.started"
REASON_COMPLETED: Final = "reason.completed"
OUTPUT_MESSAGE_STARTED: Final = "output.message.started"
OUTPUT_MESSAGE_DELTA: Final = "output.message.delta"
OUTPUT_MESSAGE_COMPLETED: Final = "output.message.completed"
OUTPUT_MESSAGE_REPLACED: Final = "output.message.replaced"
GUARDRAIL_TRIGGERED: Final = "guardrail.triggered"
ACT_STARTED: Final = "act.started"
ACT_COMPLETED: Final = "act.completed"
TOOL_STARTED: Final = "tool.started"
TOOL_COMPLETED: Final = "tool.completed"
TOOL_CALL_REQUESTED: Final = "tool.call_requested"
TOOL_QUESTIONS_ANSWERED: Final = "tool.questions_answered"
TOOL_APPROVAL_REQUESTED: Final = "tool.approval_requested"
TOOL_APPROVAL_DECIDED: Final = "tool.approval_decided"
TOOL_LOOP_DETECTED: Final = "tool.loop_detected"
LLM_GENERATION: Final = "llm.generation"
SESSION_STARTED: Final = "session.started"
SESSION_ACTIVATED: Final = "session.activated"
SESSION_IDLED: Final = "session.idled"
SESSION_TITLE_UPDATED: Final = "session.title.updated"  # domain.session_titles builds its data
TRANSCRIPT_REPAIRED: Final = "transcript.repaired"
SUBAGENT_SPAWNED: Final = "subagent.spawned"
SUBAGENT_COMPLETED: Final = "subagent.completed"
SUBAGENT_FAILED: Final = "subagent.failed"
SUBAGENT_CANCELLED: Final = "subagent.cancelled"
TASK_CREATED: Final = "task.created"
TASK_UPDATED: Final = "task.updated"

TERMINAL_TURN_EVENTS: Final[frozenset[EventType]] = frozenset(
    {TURN_COMPLETED, TURN_FAILED, TURN_CANCELLED, TURN_SEALED}
)

PREVIEW_CHARS: Final = 200

Phase = Literal["commentary", "final_answer"]

# Why a tool call failed, when the message alone is not enough for a client to act on:
# ``in_doubt``: it was interrupted by a crash, is not safe to repeat, and was not repeated, so
# whether it took effect is unknown. ``loop_detected``: not run, the same call was asked for too
# many times in a row (``loop_detection``). ``invalid_arguments`` / ``unknown_tool``: not run,
# answered by ``tool_call_repair``. ``guardrail_blocked``: not run, a ``guardrails`` check
# refused it.
ToolErrorKind = Literal[
    "in_doubt", "denied", "loop_detected", "invalid_arguments", "unknown_tool", "guardrail_blocked"
]


def message_phase(message: Message) -> Phase:
    """Agent messages that call tools are commentary; the rest are final answers."""
    return "commentary" if message.tool_calls else "final_answer"


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def input_message(*, message: Message) -> JsonObject:
    return {"message": message_to_json(message)}


def turn_started(*, turn_id: str, input_message_id: str, input_content: str | None) -> JsonObject:
    return {
        "turn_id": turn_id,
        "input_message_id": input_message_id,
        "input_content": input_content,
    }


def turn_sealed(
    *, turn_id: str, reason: str, detail: str, iterations: int, usage: TokenUsage
) -> JsonObject:
    return {
        "turn_id": turn_id,
        "reason": reason,
        "detail": detail,
        "iterations": iterations,
        "usage": _usage(usage),
    }


def turn_completed(
    *,
    turn_id: str,
    iterations: int,
    usage: TokenUsage,
    final_message_id: str | None,
    final_answer: str | None,
    duration_ms: int | None,
    time_to_first_token_ms: int | None,
    tool_call_count: int,
    llm_call_count: int,
) -> JsonObject:
    return {
        "turn_id": turn_id,
        "iterations": iterations,
        "duration_ms": duration_ms,
        "usage": usage.to_json(),
        "final_message_id": final_message_id,
        "final_answer_preview": None if final_answer is None else preview(final_answer),
        "time_to_first_token_ms": time_to_first_token_ms,
        "tool_call_count": tool_call_count,
        "llm_call_count": llm_call_count,
        "status": "completed",
    }


def turn_failed(
    *,
    turn_id: str,
    error: str,
    error_code: str,
    error_fields: JsonObject | None = None,
    error_disclosure: Literal["generic", "standard", "detailed"] = "standard",
) -> JsonObject:
    return {
        "turn_id": turn_id,
        "error": error,
        "error_code": error_code,
        "error_fields": error_fields,
        "error_disclosure": error_disclosure,
    }


def turn_cancelled(*, turn_id: str, reason: str | None, usage: TokenUsage | None) -> JsonObject:
    return {"turn_id": turn_id, "reason": reason, "usage": _usage(usage)}


def reason_started(
    *, model: str, harness_id: str | None = None, agent_id: str | None = None
) -> JsonObject:
    return {"harness_id": harness_id, "agent_id": agent_id, "metadata": _model_metadata(model)}


def reason_completed(
    *,
    success: bool,
    text: str | None,
    tool_call_count: int,
    usage: TokenUsage | None,
    duration_ms: int | None,
    error: str | None = None,
) -> JsonObject:
    return {
        "success": success,
        "text_preview": None if text is None else preview(text),
        "has_tool_calls": tool_call_count > 0,
        "tool_call_count": tool_call_count,
        "usage": _usage(usage),
        "duration_ms": duration_ms,
        "error": error,
    }


def output_message_started(
    *, turn_id: str, message_id: str, model: str, iteration: int
) -> JsonObject:
    return {"turn_id": turn_id, "message_id": message_id, "model": model, "iteration": iteration}


def output_message_delta(
    *, turn_id: str, message_id: str, delta: str, accumulated: str
) -> JsonObject:
    return {
        "turn_id": turn_id,
        "message_id": message_id,
        "delta": delta,
        "accumulated": accumulated,
    }


def output_message_completed(
    *,
    message: Message,
    model: str,
    usage: TokenUsage | None,
    error_code: str | None = None,
) -> JsonObject:
    """The authoritative agent message; ``phase`` is derived from its tool calls."""
    wire = message_to_json(message)
    wire["phase"] = message_phase(message)
    data: JsonObject = {
        "message": wire,
        "metadata": _model_metadata(model),
        "usage": _usage(usage),
    }
    if error_code is not None:
        data["error_code"] = error_code
    return data


def act_started(*, tool_calls: tuple[ToolCallPart, ...], headline: str | None = None) -> JsonObject:
    return {
        "tool_calls": [
            {"id": call.id, "name": call.name, "display_name": None, "narration": None}
            for call in tool_calls
        ],
        "headline": headline,
    }


def act_completed(
    *,
    results: tuple[ToolResultPart, ...],
    duration_ms: int | None,
    headline: str | None = None,
) -> JsonObject:
    errors = sum(1 for result in results if result.error is not None)
    return {
        "completed": True,
        "success_count": len(results) - errors,
        "error_count": errors,
        "duration_ms": duration_ms,
        "headline": headline,
    }


def tool_started(*, tool_call: ToolCallPart, display_name: str | None = None) -> JsonObject:
    return {
        "tool_call": {"id": tool_call.id, "name": tool_call.name, "arguments": tool_call.arguments},
        "display_name": display_name,
        "narration": None,
    }


def tool_completed(
    *,
    tool_call: ToolCallPart,
    result: ToolResultPart,
    duration_ms: int | None,
    status: Literal["success", "error", "timeout", "cancelled"] | None = None,
    error_kind: ToolErrorKind | None = None,
) -> JsonObject:
    """``result`` on the wire is a list of content parts: a JSON value travels as one text part
    (strings as-is, anything else as compact JSON). ``error_kind`` (null unless set) classifies
    an error (see ``ToolErrorKind``)."""
    succeeded = result.error is None
    content: JsonValue = None
    if succeeded:
        content = [{"type": "text", "text": json_text(result.result)}]
    return {
        "tool_call_id": tool_call.id,
        "tool_name": tool_call.name,
        "display_name": None,
        "success": succeeded,
        "status": status or ("success" if succeeded else "error"),
        "narration": None,
        "result": content,
        "error": result.error,
        "error_kind": error_kind,
        "duration_ms": duration_ms,
    }


def transcript_repaired(*, tool_call: ToolCallPart) -> JsonObject:
    """A synthetic result was settled for ``tool_call`` (Everruns ``TranscriptRepairedData``,
    action ``synthesize``): the call was interrupted and could not be run again."""
    return {"tool_call_id": tool_call.id, "tool_name": tool_call.name, "action": "synthesize"}


def tool_loop_detected(
    *, tool_call: ToolCallPart, repeats: int, max_repeats: int, action: Literal["refused", "failed"]
) -> JsonObject:
    """``loop_detection`` caught ``tool_call`` asked for ``repeats`` times in a row: it was
    refused (its result is an error the model sees) or it failed the turn."""
    return {
        "tool_call_id": tool_call.id,
        "tool_name": tool_call.name,
        "repeats": repeats,
        "max_repeats": max_repeats,
        "action": action,
    }


def tool_call_requested(*, tool_calls: tuple[ToolCallPart, ...]) -> JsonObject:
    return {"tool_calls": [part_to_json(call) for call in tool_calls]}


def questions_requested(
    *, tool_call: ToolCallPart, questions: list[JsonObject], expires_at: str
) -> JsonObject:
    """``tool.call_requested`` for an ``ask_user`` call: the call, plus ``kind: "ask_user"``
    and its ``questions`` normalized (each with an ``id`` the answers name)."""
    data = tool_call_requested(tool_calls=(tool_call,))
    data["kind"] = "ask_user"
    data["questions"] = [{"tool_call_id": tool_call.id, **q} for q in questions]
    data["expires_at"] = expires_at
    return data


def questions_answered(*, tool_call_id: str, answers: list[JsonObject]) -> JsonObject:
    return {"tool_call_id": tool_call_id, "answers": list[JsonValue](answers)}


def approval_requested(*, tool_calls: tuple[ToolCallPart, ...], expires_at: str) -> JsonObject:
    return {
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in tool_calls],
        "expires_at": expires_at,
    }


def approval_decided(
    *, tool_call: ToolCallPart, approved: bool, reason: str | None, decided_by: str
) -> JsonObject:
    """``decided_by``: ``person`` (a decision posted), ``timeout`` (none in time: a denial) or
    ``user_message`` (the user moved on: the call is cancelled)."""
    return {
        "tool_call_id": tool_call.id,
        "tool_name": tool_call.name,
        "approved": approved,
        "reason": reason,
        "decided_by": decided_by,
    }


def llm_generation(
    *,
    model: str,
    system_prompt: str | None,
    messages: tuple[Message, ...],
    tools: tuple[ToolSpec, ...],
    text: str | None,
    tool_calls: tuple[ToolCallPart, ...],
    usage: TokenUsage | None,
    success: bool,
    provider: str | None = None,
    duration_ms: int | None = None,
    time_to_first_token_ms: int | None = None,
    finish_reason: str | None = None,
    error: str | None = None,
) -> JsonObject:
    """One model call, with the full prompt (system prompt first, as a ``system`` message)."""
    prompt: list[JsonValue] = []
    if system_prompt:
        system: JsonObject = {"type": "text", "text": system_prompt}
        prompt.append({"id": "system", "role": "system", "content": [system], "created_at": None})
    prompt.extend(message_to_json(message) for message in messages)
    return {
        "messages": prompt,
        "tools": [{"name": spec.name, "description": spec.description} for spec in tools],
        "output": {
            "text": text,
            "tool_calls": [
                {"id": call.id, "name": call.name, "arguments": call.arguments}
                for call in tool_calls
            ],
        },
        "metadata": {
            "model": model,
            "provider": provider,
            "usage": _usage(usage),
            "duration_ms": duration_ms,
            "time_to_first_token_ms": time_to_first_token_ms,
            "success": success,
            "error": error,
            "finish_reasons": None if finish_reason is None else [finish_reason],
        },
    }


def session_started(
    *, harness_id: str | None, agent_id: str | None, model_id: str | None
) -> JsonObject:
    return {"harness_id": harness_id, "agent_id": agent_id, "model_id": model_id}


def session_activated(*, turn_id: str, input_message_id: str) -> JsonObject:
    return {"turn_id": turn_id, "input_message_id": input_message_id}


def session_idled(*, turn_id: str, iterations: int | None, usage: TokenUsage | None) -> JsonObject:
    """``usage`` is the session's cumulative usage, not the turn's."""
    return {"turn_id": turn_id, "iterations": iterations, "usage": _usage(usage)}


def _usage(usage: TokenUsage | None) -> JsonValue:
    return None if usage is None else usage.to_json()


def _model_metadata(model: str) -> JsonObject:
    return {"model": model, "model_id": None, "provider_id": None}


def subagent_spawned(*, child_session_id: str, name: str, task: str, task_id: str) -> JsonObject:
    return {
        "session_id": child_session_id,
        "subagent_name": name,
        "task_id": task_id,
        "task": preview(task),
    }


def subagent_ended(
    *,
    child_session_id: str,
    name: str,
    task_id: str,
    status: str,
    result: str | None,
    usage: TokenUsage | None,
    error: str | None = None,
) -> JsonObject:
    """``subagent.completed|failed|cancelled``: which child ended how, with a result preview."""
    return {
        "session_id": child_session_id,
        "subagent_name": name,
        "task_id": task_id,
        "subagent_status": status,
        "result_preview": preview(result) if result else None,
        "usage": _usage(usage),
        "error": error,
    }


def task_snapshot(*, task: JsonObject) -> JsonObject:
    """``task.created`` / ``task.updated``: the full task snapshot."""
    return {"task": task}
