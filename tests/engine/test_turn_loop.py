"""The turn loop, driven end to end by the real llmsim and real capabilities."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from everloop.capabilities.base import (
    CapabilityRegistry,
    ToolContext,
    execute_tool_call,
    tool_spec,
    tools_by_name,
)
from everloop.capabilities.current_time import build_current_time_capability
from everloop.capabilities.test_math import build_test_math_capability
from everloop.domain.messages import (
    ImagePart,
    JsonValue,
    Message,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from everloop.domain.usage import TokenUsage
from everloop.engine.loop import (
    CallModel,
    CompleteTurn,
    Effect,
    FailTurn,
    RunTools,
    TurnSettings,
    TurnState,
    TurnStateError,
    model_failed,
    model_request,
    model_responded,
    pending_effects,
    start_turn,
    tools_finished,
)
from everloop.llm.base import ModelCallError, ToolSpec, complete
from everloop.llm.llmsim import LlmSim

FIXED_NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
MATH_RULES: JsonValue = [
    {"when": "sum", "name": "add", "arguments": {"a": 2, "b": 3}},
    {"when": "sum", "name": "multiply", "arguments": {"a": 4, "b": 5}},
]


def _registry() -> CapabilityRegistry:
    return CapabilityRegistry(
        [build_current_time_capability(lambda: FIXED_NOW), build_test_math_capability()]
    )


@dataclass
class Run:
    state: TurnState
    effects: list[Effect] = field(default_factory=list)


async def _run_turn(
    script: JsonValue,
    user_text: str,
    *,
    max_iterations: int = 100,
    parallel: bool = True,
    history: tuple[Message, ...] = (),
) -> Run:
    """A minimal runner: performs each effect and feeds the outcome back into the loop."""
    registry = _registry()
    tools = registry.tools_for(["current_time", "test_math"])
    settings = TurnSettings(
        model="llmsim",
        system_prompt="You are a test.",
        tools=tuple(tool_spec(tool) for tool in tools),
        max_iterations=max_iterations,
        parallel_tool_calls=parallel,
    )
    driver = LlmSim(script)
    user = Message("message_user", "user", (TextPart(user_text),))
    state, effects = start_turn(
        turn_id="turn_1", history=history, user_message=user, settings=settings
    )
    run = Run(state)
    while effects:
        (effect,) = effects
        run.effects.append(effect)
        match effect:
            case CallModel(iteration=iteration):
                try:
                    done = await complete(driver, model_request(state))
                except ModelCallError as error:
                    state, effects = model_failed(state, error)
                    continue
                state, effects = model_responded(
                    state,
                    message_id=f"message_agent_{iteration}",
                    text=done.text,
                    tool_calls=done.tool_calls,
                    usage=done.usage,
                )
            case RunTools(calls=calls, parallel=is_parallel):
                by_name = tools_by_name(tools)

                def context(call: ToolCallPart) -> ToolContext:
                    return ToolContext("session_1", "org_1", "turn_1", call.id)

                if is_parallel:
                    results = await asyncio.gather(
                        *(execute_tool_call(by_name.get(c.name), c, context(c)) for c in calls)
                    )
                else:
                    results = [
                        await execute_tool_call(by_name.get(c.name), c, context(c)) for c in calls
                    ]
                state, effects = tools_finished(state, tuple(results))
            case CompleteTurn() | FailTurn():
                effects = ()
        # Every intermediate state survives a JSON round trip (what a durable runner stores).
        assert TurnState.from_json(json.loads(json.dumps(state.to_json()))) == state
    run.state = state
    return run


@dataclass(frozen=True)
class Case:
    name: str
    script: JsonValue
    user_text: str
    effect_kinds: tuple[str, ...]
    status: str
    final_text: str
    iterations: int
    tool_calls: int
    max_iterations: int = 100
    parallel: bool = True


CASES = [
    Case(
        "plain answer",
        {"response": {"type": "fixed", "text": "Hello there"}},
        "hi",
        ("call_model", "complete_turn"),
        "completed",
        "Hello there",
        iterations=1,
        tool_calls=0,
    ),
    Case(
        "one tool call",
        None,
        "What time is it?",
        ("call_model", "run_tools", "call_model", "complete_turn"),
        "completed",
        "Echo: What time is it?\nget_current_time: "
        + json.dumps({"iso": "2026-01-02T03:04:05+00:00", "timezone": "UTC", "unix": 1767323045}),
        iterations=2,
        tool_calls=1,
    ),
    Case(
        "parallel calls",
        {"tool_calls": MATH_RULES},
        "sum please",
        ("call_model", "run_tools", "call_model", "complete_turn"),
        "completed",
        'Echo: sum please\nadd: {"result": 5}\nmultiply: {"result": 20}',
        iterations=2,
        tool_calls=2,
    ),
    Case(
        "serial calls",
        {"tool_calls": MATH_RULES},
        "sum please",
        ("call_model", "run_tools", "call_model", "complete_turn"),
        "completed",
        'Echo: sum please\nadd: {"result": 5}\nmultiply: {"result": 20}',
        iterations=2,
        tool_calls=2,
        parallel=False,
    ),
    Case(
        "max iterations reached",
        None,
        "what time is it",
        ("call_model", "run_tools", "fail_turn"),
        "failed",
        "I stopped because this turn reached the limit of 1 iterations before I could finish. "
        "Send another message to let me continue.",
        iterations=1,
        tool_calls=1,
        max_iterations=1,
    ),
    Case(
        "permanent model failure",
        {"response": {"type": "error", "status": 400, "message": "bad request"}},
        "hi",
        ("call_model", "fail_turn"),
        "failed",
        "Sorry, I could not finish this request: the model could not be reached or returned "
        "an error (HTTP 400). Please try again later.",
        iterations=1,
        tool_calls=0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_turn(case: Case) -> None:
    run = await _run_turn(
        case.script, case.user_text, max_iterations=case.max_iterations, parallel=case.parallel
    )
    assert tuple(effect.kind for effect in run.effects) == case.effect_kinds
    state = run.state
    assert state.status == case.status
    assert state.iteration == case.iterations
    assert state.tool_call_count == case.tool_calls
    final = state.messages[-1]
    assert final.role == "agent"
    assert final.text == case.final_text
    assert state.final_message_id == final.id
    run_tools = [effect for effect in run.effects if isinstance(effect, RunTools)]
    for effect in run_tools:
        assert effect.parallel is case.parallel
    # The model was called once per iteration (a failed call counts too).
    assert state.llm_call_count == sum(1 for e in run.effects if isinstance(e, CallModel))
    assert state.pending_tool_calls == ()


async def test_tool_calls_and_results_are_in_the_transcript() -> None:
    run = await _run_turn({"tool_calls": MATH_RULES}, "sum")
    roles = [message.role for message in run.state.turn_messages]
    assert roles == ["user", "agent", "tool_result", "agent"]
    calls = run.state.turn_messages[1].tool_calls
    results = run.state.turn_messages[2].tool_results
    assert [r.tool_call_id for r in results] == [c.id for c in calls]
    assert [r.result for r in results] == [{"result": 5}, {"result": 20}]


async def test_usage_accumulates_over_model_calls() -> None:
    run = await _run_turn(None, "time?")
    assert run.state.llm_call_count == 2
    assert run.state.usage.input_tokens > 0
    assert run.state.usage.output_tokens > 0


async def test_history_is_sent_to_the_model() -> None:
    history = (
        Message("message_h1", "user", (TextPart("earlier"),)),
        Message("message_h2", "agent", (TextPart("reply"),)),
    )
    run = await _run_turn(
        {"response": {"type": "sequence", "texts": ["a", "b"]}}, "x", history=history
    )
    assert run.state.history_length == 2
    assert run.state.messages[:2] == history
    assert run.state.messages[-1].text == "b"  # one agent message already in the history


def _settings(max_iterations: int = 3) -> TurnSettings:
    spec = ToolSpec("add", "Add", {"type": "object"})
    return TurnSettings(model="m", tools=(spec,), max_iterations=max_iterations)


def _loop_of_tool_calls(max_iterations: int) -> list[Effect]:
    user = Message("message_u", "user", (TextPart("go"),))
    state, effects = start_turn(
        turn_id="turn_x", history=(), user_message=user, settings=_settings(max_iterations)
    )
    seen = list(effects)
    while isinstance(effects[0], CallModel):
        n = effects[0].iteration
        call = ToolCallPart(f"call_{n}", "add", {"a": 1, "b": 1})
        state, effects = model_responded(
            state, message_id=f"message_a{n}", text="", tool_calls=(call,), usage=TokenUsage()
        )
        seen.extend(effects)
        state, effects = tools_finished(state, (ToolResultPart(call.id, "add", {"result": 2}),))
        seen.extend(effects)
    return seen


@pytest.mark.parametrize("max_iterations", [1, 2, 5])
def test_max_iterations_stops_before_the_extra_model_call(max_iterations: int) -> None:
    effects = _loop_of_tool_calls(max_iterations)
    calls = [e.iteration for e in effects if isinstance(e, CallModel)]
    assert calls == list(range(1, max_iterations + 1))
    last = effects[-1]
    assert isinstance(last, FailTurn)
    assert last.error_code == "max_iterations_reached"
    assert f"limit of {max_iterations} iterations" in last.agent_message.text


def test_rate_limit_failure_has_its_own_code() -> None:
    user = Message("message_u", "user", (TextPart("go"),))
    state, _ = start_turn(turn_id="t", history=(), user_message=user, settings=_settings())
    error = ModelCallError("slow down", status=429, retryable=True)
    failed, (effect,) = model_failed(state, error)
    assert isinstance(effect, FailTurn)
    assert effect.error_code == "model_rate_limited"
    assert effect.message == "slow down"
    assert "slow down" not in effect.agent_message.text  # provider text is not shown to people
    assert pending_effects(failed) == (effect,)


def test_transitions_refuse_the_wrong_state() -> None:
    user = Message("message_u", "user", (TextPart("go"),))
    state, _ = start_turn(turn_id="t", history=(), user_message=user, settings=_settings())
    with pytest.raises(TurnStateError):
        tools_finished(state, ())
    acting, _ = model_responded(
        state,
        message_id="m",
        text="",
        tool_calls=(ToolCallPart("c1", "add", {}),),
        usage=TokenUsage(),
    )
    with pytest.raises(TurnStateError):
        model_request(acting)
    with pytest.raises(TurnStateError, match="do not match"):
        tools_finished(acting, (ToolResultPart("other"),))


def test_results_are_ordered_like_the_calls() -> None:
    user = Message("message_u", "user", (TextPart("go"),))
    state, _ = start_turn(turn_id="t", history=(), user_message=user, settings=_settings())
    calls = (ToolCallPart("c1", "add", {}), ToolCallPart("c2", "add", {}))
    state, _ = model_responded(
        state, message_id="m", text="thinking", tool_calls=calls, usage=TokenUsage()
    )
    assert pending_effects(state) == (RunTools(calls, parallel=True),)
    assert state.messages[-1].text == "thinking"
    state, effects = tools_finished(state, (ToolResultPart("c2", result=2), ToolResultPart("c1")))
    assert [r.tool_call_id for r in state.messages[-1].tool_results] == ["c1", "c2"]
    assert effects == (CallModel(2),)
    assert pending_effects(state) == effects
    request = model_request(state, attempt=3)
    assert request.attempt == 3
    assert request.messages == state.messages


def test_max_iterations_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_iterations"):
        TurnSettings(model="m", max_iterations=0)


# --- JSON round trip --------------------------------------------------------------------------

_text = st.text(max_size=20)
_json: st.SearchStrategy[JsonValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_args = st.dictionaries(_text, _json, max_size=3)
_call = st.builds(ToolCallPart, id=_text, name=_text, arguments=_args)
_part = st.one_of(
    st.builds(TextPart, text=_text),
    st.builds(ImagePart, url=_text, media_type=st.none() | _text),
    _call,
    st.builds(
        ToolResultPart,
        tool_call_id=_text,
        name=st.none() | _text,
        result=_json,
        error=st.none() | _text,
    ),
)
_message = st.builds(
    Message,
    id=_text,
    role=st.sampled_from(["user", "agent", "tool_result"]),
    content=st.lists(_part, max_size=3).map(tuple),
    created_at=st.none() | _text,
)
_count = st.integers(min_value=0, max_value=10**9)
_usage = st.builds(TokenUsage, _count, _count, _count, _count)
_settings_strategy = st.builds(
    TurnSettings,
    model=_text,
    system_prompt=st.none() | _text,
    tools=st.lists(st.builds(ToolSpec, name=_text, description=_text, parameters=_args)).map(tuple),
    client_side_tools=st.frozensets(_text, max_size=3),
    max_iterations=st.integers(min_value=1, max_value=1000),
    parallel_tool_calls=st.booleans(),
    model_settings=_args,
)
_state = st.builds(
    TurnState,
    turn_id=_text,
    input_message_id=_text,
    settings=_settings_strategy,
    messages=st.lists(_message, max_size=4).map(tuple),
    history_length=_count,
    status=st.sampled_from(["calling_model", "running_tools", "completed", "failed"]),
    iteration=_count,
    llm_call_count=_count,
    tool_call_count=_count,
    usage=_usage,
    pending_tool_calls=st.lists(_call, max_size=3).map(tuple),
    final_message_id=st.none() | _text,
    error_code=st.none() | _text,
    error_message=st.none() | _text,
)


@given(_state)
def test_state_json_round_trip(state: TurnState) -> None:
    wire = json.loads(json.dumps(state.to_json()))
    assert TurnState.from_json(wire) == state
    assert TurnState.from_json(wire).to_json() == state.to_json()


def test_state_from_json_rejects_other_versions() -> None:
    user = Message("message_u", "user", (TextPart("go"),))
    state, _ = start_turn(turn_id="t", history=(), user_message=user, settings=_settings())
    wire = state.to_json()
    wire["version"] = 99
    with pytest.raises(TurnStateError, match="version"):
        TurnState.from_json(wire)
