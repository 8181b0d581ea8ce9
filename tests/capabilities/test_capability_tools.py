"""Built-in capabilities and the tool contract (schema validation, errors as values)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from everloop.capabilities.base import (
    Capability,
    CapabilityError,
    CapabilityRegistry,
    SideEffect,
    Tool,
    ToolContext,
    ToolError,
    execute_tool_call,
    side_effect_of,
    tool_spec,
    tools_by_name,
    validate_arguments,
)
from everloop.capabilities.current_time import GetCurrentTime, build_current_time_capability
from everloop.capabilities.test_math import build_test_math_capability
from everloop.domain.messages import JsonObject, JsonValue, ToolCallPart, ToolResultPart

NOW = datetime(2026, 3, 4, 12, 30, 0, tzinfo=UTC)
CONTEXT = ToolContext(session_id="session_1", org_id="org_1", turn_id="turn_1", tool_call_id="c")


def _math() -> dict[str, Tool]:
    return dict(tools_by_name(build_test_math_capability().tools))


async def _run(tool: Tool | None, name: str, arguments: JsonObject) -> ToolResultPart:
    return await execute_tool_call(tool, ToolCallPart("call_1", name, arguments), CONTEXT)


@pytest.mark.parametrize(
    ("name", "a", "b", "expected"),
    [
        ("add", 2, 3, 5),
        ("add", 0.5, 0.25, 0.75),
        ("subtract", 2, 5, -3),
        ("multiply", -4, 2.5, -10.0),
        ("divide", 9, 3, 3.0),
        ("divide", 1, 4, 0.25),
    ],
)
async def test_math_tools(name: str, a: float, b: float, expected: float) -> None:
    result = await _run(_math()[name], name, {"a": a, "b": b})
    assert result == ToolResultPart("call_1", name=name, result={"result": expected})


async def test_division_by_zero_is_an_error_result() -> None:
    result = await _run(_math()["divide"], "divide", {"a": 1, "b": 0})
    assert result.error == "division by zero"
    assert result.result is None
    with pytest.raises(ToolError, match="division by zero"):
        await _math()["divide"].call({"a": 1, "b": 0}, CONTEXT)


async def test_overflow_is_an_error_result() -> None:
    result = await _run(_math()["multiply"], "multiply", {"a": 1e308, "b": 10})
    assert result.error == "result is not a finite number"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"a": 1}, "'b' is a required property"),
        ({"a": "1", "b": 2}, "at 'a': '1' is not of type 'number'"),
        ({"a": 1, "b": 2, "c": 3}, "Additional properties are not allowed"),
    ],
)
async def test_invalid_arguments_are_error_results(arguments: JsonObject, problem: str) -> None:
    result = await _run(_math()["add"], "add", arguments)
    assert result.error is not None
    assert result.error.startswith("invalid arguments for add")
    assert problem in result.error
    with pytest.raises(ToolError):
        validate_arguments(_math()["add"], arguments)


async def test_unknown_tool_is_an_error_result() -> None:
    result = await _run(None, "nope", {})
    assert result.error == "unknown tool: nope"


@pytest.mark.parametrize(
    ("arguments", "iso", "zone"),
    [
        ({}, "2026-03-04T12:30:00+00:00", "UTC"),
        ({"timezone": "Europe/Paris"}, "2026-03-04T13:30:00+01:00", "Europe/Paris"),
        ({"timezone": "America/New_York"}, "2026-03-04T07:30:00-05:00", "America/New_York"),
    ],
)
async def test_get_current_time(arguments: JsonObject, iso: str, zone: str) -> None:
    tool = GetCurrentTime(clock=lambda: NOW)
    result = await _run(tool, "get_current_time", arguments)
    expected: JsonValue = {"iso": iso, "timezone": zone, "unix": int(NOW.timestamp())}
    assert result.result == expected


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", ""])
async def test_get_current_time_bad_timezone(zone: str) -> None:
    tool = GetCurrentTime(clock=lambda: NOW)
    result = await _run(tool, "get_current_time", {"timezone": zone})
    if zone == "":
        assert result.error is None  # empty means the default zone
    else:
        assert result.error == f"unknown timezone: {zone!r}"


async def test_get_current_time_uses_the_real_clock_by_default() -> None:
    (tool,) = build_current_time_capability().tools
    before = int(datetime.now(UTC).timestamp())
    value = await tool.call({}, CONTEXT)
    assert isinstance(value, dict)
    assert isinstance(value["unix"], int)
    assert value["unix"] >= before


def test_tool_specs() -> None:
    specs = {t.name: tool_spec(t) for t in build_test_math_capability().tools}
    assert sorted(specs) == ["add", "divide", "multiply", "subtract"]
    assert specs["add"].parameters["required"] == ["a", "b"]
    time_spec = tool_spec(build_current_time_capability().tools[0])
    assert time_spec.name == "get_current_time"


class _Echo:
    """A tool defined as a plain class, to show the protocol needs no base class."""

    name = "echo"
    description = "Echo the arguments."
    parameters: JsonObject = {"type": "object"}

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        return {"arguments": arguments, "tool_call_id": context.tool_call_id}


def test_side_effect_classes_of_no_tool_and_of_a_tool_that_declares_none() -> None:
    assert side_effect_of(None) is SideEffect.PURE  # an unknown tool name: nothing runs
    assert side_effect_of(_Echo()) is SideEffect.AT_MOST_ONCE  # never repeated after a crash
    assert side_effect_of(GetCurrentTime(clock=lambda: NOW)) is SideEffect.PURE


def _cap(capability_id: str, *deps: str, tools: tuple[Tool, ...] = ()) -> Capability:
    return Capability(capability_id, capability_id, "", dependencies=deps, tools=tools)


def test_registry_register_get_all() -> None:
    registry = CapabilityRegistry()
    time_cap = build_current_time_capability()
    registry.register(time_cap)
    registry.register(build_test_math_capability())
    assert registry.get("current_time") is time_cap
    assert "test_math" in registry
    assert [c.id for c in registry.all()] == ["current_time", "test_math"]
    with pytest.raises(CapabilityError, match="already registered"):
        registry.register(time_cap)
    with pytest.raises(CapabilityError, match="unknown capability 'nope'"):
        registry.get("nope")


def test_registry_resolves_dependencies_first_and_once() -> None:
    echo = _Echo()
    registry = CapabilityRegistry(
        [_cap("base", tools=(echo,)), _cap("mid", "base"), _cap("top", "mid", "base")]
    )
    assert [c.id for c in registry.resolve(["top", "base"])] == ["base", "mid", "top"]
    assert registry.tools_for(["top"]) == [echo]


def test_registry_rejects_cycles_and_tool_clashes() -> None:
    registry = CapabilityRegistry([_cap("a", "b"), _cap("b", "a")])
    with pytest.raises(CapabilityError, match="cycle: a -> b -> a"):
        registry.resolve(["a"])
    clash = CapabilityRegistry([_cap("x", tools=(_Echo(),)), _cap("y", tools=(_Echo(),))])
    with pytest.raises(CapabilityError, match="'echo' is provided by both 'x' and 'y'"):
        clash.tools_for(["x", "y"])


def test_registry_system_prompt_additions() -> None:
    with_prompt = Capability("p", "P", "", system_prompt_addition="Be brief.")
    registry = CapabilityRegistry([with_prompt, _cap("q")])
    assert registry.system_prompt_additions(["p", "q"]) == ["Be brief."]


async def test_tool_receives_its_context() -> None:
    result = await _run(_Echo(), "echo", {"x": 1})
    assert result.result == {"arguments": {"x": 1}, "tool_call_id": "c"}


class _Patterned(_Echo):
    """A tool whose schema (as a tenant's MCP server may send it) has regexes that
    backtrack catastrophically in Python's ``re`` on 40 characters (hours)."""

    parameters: JsonObject = {
        "type": "object",
        "properties": {"word": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(x+)+$": {"type": "integer"}},
    }


HOSTILE_WORD = "a" * 40 + "!"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"word": HOSTILE_WORD}, "does not match '^(a+)+$'"),
        ({"xxxx": "not a number"}, "at 'xxxx': 'not a number' is not of type 'integer'"),
        ({"word": "aaaa"}, None),
        ({"x" * 40 + "!": "not a number"}, None),  # the key does not match: not checked
    ],
)
async def test_schema_patterns_are_checked_in_linear_time(
    arguments: JsonObject, problem: str | None
) -> None:
    result = await _run(_Patterned(), "echo", arguments)
    if problem is None:
        assert result.error is None and result.result is not None
    else:
        assert result.error is not None and problem in result.error


@pytest.mark.parametrize("keyword", ["pattern", "patternProperties"])
async def test_a_schema_regex_re2_cannot_run_refuses_the_call(keyword: str) -> None:
    tool = _Echo()
    lookahead = "(?=a)a"
    if keyword == "pattern":
        tool.parameters = {"type": "object", "properties": {"w": {"pattern": lookahead}}}
    else:
        tool.parameters = {"type": "object", "patternProperties": {lookahead: {}}}
    result = await _run(tool, "echo", {"w": "a"})
    assert result.error is not None and result.result is None
    assert result.error.startswith(f"the schema of echo has a {keyword} that cannot be checked")
