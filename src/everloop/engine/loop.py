"""The turn loop: a pure, sans-IO transition function over a JSON-serialisable ``TurnState``.

A turn alternates *reason* (one model call) and *act* (the tool calls the model asked for)
until the model answers without tool calls. Each transition takes the state and what just
happened, and returns the next state plus the effects the runner must perform::

    start_turn(...)        -> CallModel(1)
    model_responded(...)   -> RunTools(calls)            if the model asked for tools
                           -> CompleteTurn(message)      otherwise
    calls_refused(...)     -> FailTurn                   a check refused the calls (loop detected)
    tools_finished(...)    -> CallModel(n + 1)           or FailTurn when n == max_iterations
    model_failed(...)      -> FailTurn (the runner has already exhausted its retries)

Nothing here reads a clock, generates random ids or does I/O, so a runner that persists the state
after each transition (a durable step) can resume from it with ``pending_effects(state)``.
Ids this module must invent (tool-result and fallback messages) are derived from the turn id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeAlias, assert_never

from everloop.domain.messages import (
    JsonObject,
    JsonValue,
    Message,
    Part,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    message_from_json,
    message_to_json,
    part_from_json,
    part_to_json,
)
from everloop.domain.usage import TokenUsage
from everloop.llm.base import ModelCallError, ModelRequest, ToolSpec

STATE_VERSION = 1
DEFAULT_MAX_ITERATIONS = 100

TurnStatus = Literal["calling_model", "running_tools", "completed", "failed"]
TURN_STATUSES: tuple[TurnStatus, ...] = ("calling_model", "running_tools", "completed", "failed")


class TurnStateError(ValueError):
    """A transition was applied to a state it does not fit, or a state failed to parse."""


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """What a turn runs with, fixed when it starts. ``client_side_tools`` names the tools the
    API caller executes (carried for now; handled by a later effect)."""

    model: str
    system_prompt: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    client_side_tools: frozenset[str] = frozenset()
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    parallel_tool_calls: bool = True
    model_settings: JsonObject = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise ValueError("max_iterations must be >= 1")

    def to_json(self) -> JsonObject:
        return {
            "model": self.model,
            "system_prompt": self.system_prompt,
            "tools": [spec.to_json() for spec in self.tools],
            "client_side_tools": [name for name in sorted(self.client_side_tools)],
            "max_iterations": self.max_iterations,
            "parallel_tool_calls": self.parallel_tool_calls,
            "model_settings": self.model_settings,
        }

    @classmethod
    def from_json(cls, data: JsonValue) -> TurnSettings:
        obj = _object(data, "settings")
        tools = []
        for i, raw in enumerate(_list(obj, "tools")):
            spec = _object(raw, f"settings.tools[{i}]")
            tools.append(
                ToolSpec(
                    name=_str(spec, "name"),
                    description=_str(spec, "description"),
                    parameters=_object(spec.get("parameters"), "parameters"),
                )
            )
        client_side = _list(obj, "client_side_tools")
        if not all(isinstance(name, str) for name in client_side):
            raise TurnStateError("settings.client_side_tools: expected strings")
        parallel = obj.get("parallel_tool_calls")
        if not isinstance(parallel, bool):
            raise TurnStateError("settings.parallel_tool_calls: expected a boolean")
        return cls(
            model=_str(obj, "model"),
            system_prompt=_opt_str(obj, "system_prompt"),
            tools=tuple(tools),
            client_side_tools=frozenset(str(name) for name in client_side),
            max_iterations=_int(obj, "max_iterations"),
            parallel_tool_calls=parallel,
            model_settings=_object(obj.get("model_settings"), "model_settings"),
        )


@dataclass(frozen=True, slots=True)
class TurnState:
    """Everything needed to continue a turn. ``messages`` is what the model sees: the session
    history, the user's message, then the turn's agent and tool-result messages;
    ``messages[history_length:]`` are the ones this turn added (user message first).

    ``basis`` is the compaction checkpoint the history is read from (None: the whole history;
    ``engine.compaction``): a state stored without its history is read back with the history
    of the same basis, so a turn compacted halfway resumes with the view it had."""

    turn_id: str
    input_message_id: str
    settings: TurnSettings
    messages: tuple[Message, ...]
    history_length: int
    status: TurnStatus
    iteration: int
    llm_call_count: int = 0
    tool_call_count: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    pending_tool_calls: tuple[ToolCallPart, ...] = ()
    final_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    basis: str | None = None

    @property
    def turn_messages(self) -> tuple[Message, ...]:
        return self.messages[self.history_length :]

    def to_json(self, *, with_history: bool = True) -> JsonObject:
        """The state as JSON. ``with_history=False`` leaves out the session history (the first
        ``history_length`` messages): a runner that records a state after every step stores
        only what the turn added, and passes the history back to ``from_json``."""
        messages = self.messages if with_history else self.turn_messages
        return {
            "version": STATE_VERSION,
            "turn_id": self.turn_id,
            "input_message_id": self.input_message_id,
            "settings": self.settings.to_json(),
            "messages": [message_to_json(message) for message in messages],
            "history_omitted": not with_history,
            "history_length": self.history_length,
            "status": self.status,
            "iteration": self.iteration,
            "llm_call_count": self.llm_call_count,
            "tool_call_count": self.tool_call_count,
            "usage": self.usage.to_json(),
            "pending_tool_calls": [part_to_json(call) for call in self.pending_tool_calls],
            "final_message_id": self.final_message_id,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "basis": self.basis,
        }

    @classmethod
    def from_json(cls, data: JsonValue, history: tuple[Message, ...] | None = None) -> TurnState:
        """Parse a state; a state saved without its history needs it as ``history``."""
        obj = _object(data, "state")
        if obj.get("version") != STATE_VERSION:
            raise TurnStateError(f"state.version: expected {STATE_VERSION}")
        status = obj.get("status")
        if status not in TURN_STATUSES:
            raise TurnStateError(f"state.status: expected one of {TURN_STATUSES}")
        try:
            messages = tuple(message_from_json(m) for m in _list(obj, "messages"))
            if obj.get("history_omitted") is True:
                if history is None or len(history) != _int(obj, "history_length"):
                    raise TurnStateError("state: saved without history; pass the history")
                messages = history + messages
            pending = tuple(part_from_json(p) for p in _list(obj, "pending_tool_calls"))
            usage = TokenUsage.from_json(obj.get("usage"))
        except ValueError as exc:
            raise TurnStateError(f"state: {exc}") from exc
        if not all(isinstance(part, ToolCallPart) for part in pending):
            raise TurnStateError("state.pending_tool_calls: expected tool_call parts")
        return cls(
            turn_id=_str(obj, "turn_id"),
            input_message_id=_str(obj, "input_message_id"),
            settings=TurnSettings.from_json(obj.get("settings")),
            messages=messages,
            history_length=_int(obj, "history_length"),
            status=status,
            iteration=_int(obj, "iteration"),
            llm_call_count=_int(obj, "llm_call_count"),
            tool_call_count=_int(obj, "tool_call_count"),
            usage=usage,
            pending_tool_calls=tuple(p for p in pending if isinstance(p, ToolCallPart)),
            final_message_id=_opt_str(obj, "final_message_id"),
            error_code=_opt_str(obj, "error_code"),
            error_message=_opt_str(obj, "error_message"),
            basis=_opt_str(obj, "basis"),
        )


@dataclass(frozen=True, slots=True)
class CallModel:
    iteration: int
    kind: Literal["call_model"] = field(default="call_model", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class RunTools:
    calls: tuple[ToolCallPart, ...]
    parallel: bool
    kind: Literal["run_tools"] = field(default="run_tools", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class CompleteTurn:
    final_message: Message
    kind: Literal["complete_turn"] = field(default="complete_turn", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class FailTurn:
    """End the turn as failed: ``message`` is for the log, ``agent_message`` for the person."""

    error_code: str
    message: str
    agent_message: Message
    kind: Literal["fail_turn"] = field(default="fail_turn", init=False, repr=False)


Effect: TypeAlias = CallModel | RunTools | CompleteTurn | FailTurn
Transition: TypeAlias = tuple[TurnState, tuple[Effect, ...]]


def start_turn(
    *,
    turn_id: str,
    history: tuple[Message, ...],
    user_message: Message,
    settings: TurnSettings,
    basis: str | None = None,
) -> Transition:
    state = TurnState(
        turn_id=turn_id,
        input_message_id=user_message.id,
        settings=settings,
        messages=(*history, user_message),
        history_length=len(history),
        status="calling_model",
        iteration=1,
        basis=basis,
    )
    return state, (CallModel(1),)


def history_replaced(state: TurnState, history: tuple[Message, ...], basis: str) -> TurnState:
    """``state`` with its session history replaced by the view of checkpoint ``basis`` (a
    compaction: ``engine.compaction``); the turn's own messages are kept as they are."""
    _expect(state, "calling_model")
    return replace(
        state,
        messages=(*history, *state.turn_messages),
        history_length=len(history),
        basis=basis,
    )


def model_request(state: TurnState, *, attempt: int = 1) -> ModelRequest:
    """The request for the model call ``state`` is waiting on (``attempt`` is 1-based)."""
    _expect(state, "calling_model")
    return ModelRequest(
        model=state.settings.model,
        system_prompt=state.settings.system_prompt,
        messages=state.messages,
        tools=state.settings.tools,
        settings={**state.settings.model_settings, "attempt": attempt},
    )


def model_responded(
    state: TurnState,
    *,
    message_id: str,
    text: str,
    tool_calls: tuple[ToolCallPart, ...],
    usage: TokenUsage,
    created_at: str | None = None,
) -> Transition:
    _expect(state, "calling_model")
    content: tuple[Part, ...] = (TextPart(text),) if text or not tool_calls else ()
    message = Message(message_id, "agent", (*content, *tool_calls), created_at)
    state = replace(
        state,
        messages=(*state.messages, message),
        llm_call_count=state.llm_call_count + 1,
        usage=state.usage + usage,
    )
    if not tool_calls:
        done = replace(state, status="completed", final_message_id=message_id)
        return done, (CompleteTurn(message),)
    acting = replace(state, status="running_tools", pending_tool_calls=tool_calls)
    return acting, (RunTools(tool_calls, parallel=state.settings.parallel_tool_calls),)


def model_failed(
    state: TurnState, error: ModelCallError, *, created_at: str | None = None
) -> Transition:
    """The model call failed for good (permanent error, or retries exhausted)."""
    _expect(state, "calling_model")
    if error.status == 429:
        code, reason = "model_rate_limited", "the model provider is rate limiting requests"
    else:
        code, reason = "model_call_failed", "the model could not be reached or returned an error"
    status = f" (HTTP {error.status})" if error.status is not None else ""
    text = f"Sorry, I could not finish this request: {reason}{status}. Please try again later."
    state = replace(state, llm_call_count=state.llm_call_count + 1)
    return _fail(state, code, error.message, text, created_at)


def calls_refused(
    state: TurnState, code: str, error: str, text: str, *, created_at: str | None = None
) -> Transition:
    """End the turn as failed instead of running the calls the model just asked for (a check
    decided against them, e.g. ``loop_detection``): ``error`` for the log, ``text`` for the
    person."""
    _expect(state, "running_tools")
    return _fail(replace(state, pending_tool_calls=()), code, error, text, created_at)


def tools_finished(
    state: TurnState, results: tuple[ToolResultPart, ...], *, created_at: str | None = None
) -> Transition:
    """Every pending call has a result (in any order); continue with the next model call."""
    _expect(state, "running_tools")
    by_id = {result.tool_call_id: result for result in results}
    expected = [call.id for call in state.pending_tool_calls]
    if sorted(by_id) != sorted(expected) or len(results) != len(expected):
        raise TurnStateError(f"tool results {sorted(by_id)} do not match the calls {expected}")
    message_id = derived_message_id(state.turn_id, f"tool_results:{state.iteration}")
    message = Message(message_id, "tool_result", tuple(by_id[i] for i in expected), created_at)
    state = replace(
        state,
        messages=(*state.messages, message),
        tool_call_count=state.tool_call_count + len(results),
        pending_tool_calls=(),
    )
    limit = state.settings.max_iterations
    if state.iteration >= limit:
        text = (
            f"I stopped because this turn reached the limit of {limit} iterations "
            "before I could finish. Send another message to let me continue."
        )
        return _fail(
            state, "max_iterations_reached", f"reached max_iterations ({limit})", text, created_at
        )
    iteration = state.iteration + 1
    return replace(state, status="calling_model", iteration=iteration), (CallModel(iteration),)


def pending_effects(state: TurnState) -> tuple[Effect, ...]:
    """The effects a state is waiting on: what a runner performs when it resumes from it."""
    match state.status:
        case "calling_model":
            return (CallModel(state.iteration),)
        case "running_tools":
            return (RunTools(state.pending_tool_calls, state.settings.parallel_tool_calls),)
        case "completed":
            return (CompleteTurn(state.messages[-1]),)
        case "failed":
            return (
                FailTurn(state.error_code or "", state.error_message or "", state.messages[-1]),
            )
        case _:
            assert_never(state.status)


def derived_message_id(turn_id: str, purpose: str) -> str:
    """A deterministic ``message_<32 hex>`` id for a message the loop itself writes."""
    return "message_" + hashlib.sha256(f"{turn_id}:{purpose}".encode()).hexdigest()[:32]


def _fail(state: TurnState, code: str, error: str, text: str, created_at: str | None) -> Transition:
    message_id = derived_message_id(state.turn_id, f"failure:{state.iteration}")
    agent_message = Message(message_id, "agent", (TextPart(text),), created_at)
    failed = replace(
        state,
        messages=(*state.messages, agent_message),
        status="failed",
        final_message_id=message_id,
        error_code=code,
        error_message=error,
    )
    return failed, (FailTurn(code, error, agent_message),)


def _expect(state: TurnState, status: TurnStatus) -> None:
    if state.status != status:
        raise TurnStateError(f"turn {state.turn_id} is {state.status!r}, expected {status!r}")


def _object(value: object, where: str) -> JsonObject:
    if not isinstance(value, Mapping):
        raise TurnStateError(f"{where}: expected an object")
    return dict(value)


def _list(obj: JsonObject, key: str) -> list[JsonValue]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise TurnStateError(f"{key}: expected a list")
    return value


def _str(obj: JsonObject, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise TurnStateError(f"{key}: expected a string")
    return value


def _opt_str(obj: JsonObject, key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise TurnStateError(f"{key}: expected a string or null")
    return value


def _int(obj: JsonObject, key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TurnStateError(f"{key}: expected an integer")
    return value
