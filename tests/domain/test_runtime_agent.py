"""RuntimeAgent assembly, one table per field: each row is layers in, that field out."""

from __future__ import annotations

from typing import Any

import pytest

from everloop.domain.runtime_agent import (
    AssemblyError,
    CapabilityInfo,
    Controls,
    Layer,
    Layers,
    ToolInfo,
    assemble,
    harness_chain,
    locale_instruction,
)

OBJ = {"type": "object", "properties": {}}
CATALOG = {
    "current_time": CapabilityInfo(
        "current_time",
        system_prompt_addition="You can tell the time.",
        tools=(ToolInfo("get_time", "", OBJ),),
    ),
    "math": CapabilityInfo("math", tools=(ToolInfo("add", "", OBJ),)),
    "file_system": CapabilityInfo(
        "file_system", features=("file_system",), tools=(ToolInfo("read_file", "", OBJ),)
    ),
    "notes": CapabilityInfo(
        "notes",
        dependencies=("file_system",),
        system_prompt_addition="Keep notes.",
        features=("key_value",),
    ),
    "plain": CapabilityInfo("plain", system_prompt_addition="Keep notes."),
    "loop_a": CapabilityInfo("loop_a", dependencies=("loop_b",)),
    "loop_b": CapabilityInfo("loop_b", dependencies=("loop_a",)),
    "needs_missing": CapabilityInfo("needs_missing", dependencies=("nowhere",)),
}


def harness(hid: str, parent: str | None = None, **fields: Any) -> Layer:
    return Layer(kind="harness", id=hid, parent_id=parent, **fields)


def agent(**fields: Any) -> Layer:
    return Layer(kind="agent", id="agent_1", **fields)


def session(**fields: Any) -> Layer:
    return Layer(kind="session", id="session_1", **fields)


def build(
    harnesses: tuple[Layer, ...] = (),
    a: Layer | None = None,
    s: Layer | None = None,
    controls: Controls = Controls(),
) -> Any:
    return assemble(Layers(harnesses, a, s, controls, CATALOG))


def caps(*refs: str, config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [{"ref": r, "config": config} for r in refs]


# -- system prompt ---------------------------------------------------------------------------

PROMPTS = [
    ("nothing", (), None, None, None),
    ("harness only", (harness("h", system_prompt="H"),), None, None, "H"),
    (
        "chain root first, then agent with the session prepended",
        (harness("root", system_prompt="R"), harness("leaf", "root", system_prompt="L")),
        agent(system_prompt="A"),
        session(system_prompt="S"),
        "R\n\nL\n\nS\n\nA",
    ),
    ("empty parts skipped", (harness("h", system_prompt=""),), agent(system_prompt="A"), None, "A"),
    (
        "capability additions once, after the prompts",
        (harness("h", system_prompt="H", capabilities=caps("current_time")),),
        agent(system_prompt="A", capabilities=caps("current_time")),
        session(capabilities=caps("current_time")),
        "H\n\nA\n\nYou can tell the time.",
    ),
    (
        "the same addition text from two capabilities is included once",
        (),
        agent(capabilities=caps("notes", "plain")),
        None,
        "Keep notes.",
    ),
    (
        "the session's locale is told to the model",
        (),
        agent(system_prompt="A"),
        session(locale="uk-UA"),
        "A\n\n" + locale_instruction("uk-UA"),
    ),
]


@pytest.mark.parametrize(("case", "harnesses", "a", "s", "expected"), PROMPTS)
def test_system_prompt(
    case: str, harnesses: tuple[Layer, ...], a: Layer | None, s: Layer | None, expected: str | None
) -> None:
    assert build(harnesses, a, s).system_prompt == expected, case


# -- capabilities ----------------------------------------------------------------------------

CAPABILITIES = [
    ("none", (), None, None, []),
    (
        "harness, then agent, then session",
        (harness("h", capabilities=caps("math")),),
        agent(capabilities=caps("current_time")),
        session(capabilities=caps("file_system")),
        [("math", None), ("current_time", None), ("file_system", None)],
    ),
    (
        "a later layer replaces the config of the same ref, keeping its place",
        (harness("h", capabilities=caps("math", config={"x": 1}) + caps("current_time")),),
        agent(capabilities=caps("math", config={"x": 2})),
        None,
        [("math", {"x": 2}), ("current_time", None)],
    ),
    (
        "dependencies come before what needs them",
        (),
        agent(capabilities=caps("notes")),
        None,
        [("file_system", None), ("notes", None)],
    ),
    (
        "an explicit dependency keeps its config",
        (),
        agent(capabilities=caps("notes") + caps("file_system", config={"root": "/"})),
        None,
        [("file_system", {"root": "/"}), ("notes", None)],
    ),
]


@pytest.mark.parametrize(("case", "harnesses", "a", "s", "expected"), CAPABILITIES)
def test_capabilities(
    case: str, harnesses: tuple[Layer, ...], a: Layer | None, s: Layer | None, expected: list[Any]
) -> None:
    got = [(c.ref, c.config) for c in build(harnesses, a, s).capabilities]
    assert got == expected, case


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        (["loop_a"], "capability dependency cycle: loop_a -> loop_b -> loop_a"),
        (["nope"], "unknown capability 'nope'"),
        (["needs_missing"], "unknown capability 'nowhere'"),
    ],
)
def test_capability_errors(refs: list[str], message: str) -> None:
    with pytest.raises(AssemblyError, match=message):
        build(a=agent(capabilities=caps(*refs)))


def test_features_are_the_sorted_union_including_dependencies() -> None:
    assert build(a=agent(capabilities=caps("notes"))).features == ("file_system", "key_value")


# -- tools -----------------------------------------------------------------------------------


def client(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "client_side", "name": name, "parameters": OBJ, **extra}


TOOLS = [
    ("none", None, None, []),
    (
        "capability tools, then client tools of agent and session",
        agent(capabilities=caps("math"), tools=[client("ask")]),
        session(tools=[client("pick")]),
        [("add", "capability"), ("ask", "client_side"), ("pick", "client_side")],
    ),
    (
        "a builtin definition names a registered tool of an inactive capability",
        agent(tools=[{"type": "builtin", "name": "get_time"}]),
        None,
        [("get_time", "builtin")],
    ),
    (
        "a builtin naming an active capability's tool is that tool, not a clash",
        agent(capabilities=caps("math"), tools=[{"type": "builtin", "name": "add"}]),
        None,
        [("add", "capability")],
    ),
]


@pytest.mark.parametrize(("case", "a", "s", "expected"), TOOLS)
def test_tools(case: str, a: Layer | None, s: Layer | None, expected: list[Any]) -> None:
    assert [(t.name, t.source) for t in build((), a, s).tools] == expected, case


MERGES = [
    (
        "the session repeats the agent's tool: one tool, the session's, in the agent's place",
        (),
        agent(tools=[client("ask", description="agent's"), client("pick")]),
        session(tools=[client("ask", description="session's")]),
        [("ask", "client_side", "session's"), ("pick", "client_side", "")],
    ),
    (
        "the agent repeats a harness tool, the session repeats it again: the session wins",
        (harness("h", tools=[client("ask", description="harness's")]),),
        agent(tools=[client("ask", description="agent's")]),
        session(tools=[client("ask", description="session's")]),
        [("ask", "client_side", "session's")],
    ),
    (
        "the agent repeats a harness tool: the agent wins",
        (harness("h", tools=[client("ask", description="harness's")]),),
        agent(tools=[client("ask", description="agent's")]),
        None,
        [("ask", "client_side", "agent's")],
    ),
    (
        "a session's client tool replaces the agent's builtin of an inactive capability",
        (),
        agent(tools=[{"type": "builtin", "name": "get_time"}]),
        session(tools=[client("get_time", description="mine")]),
        [("get_time", "client_side", "mine")],
    ),
]


@pytest.mark.parametrize(("case", "harnesses", "a", "s", "expected"), MERGES)
def test_a_later_layer_replaces_an_earlier_layers_tool_of_the_same_name(
    case: str, harnesses: tuple[Layer, ...], a: Layer, s: Layer | None, expected: list[Any]
) -> None:
    got = [(t.name, t.source, t.description) for t in build(harnesses, a, s).tools]
    assert got == expected, case


@pytest.mark.parametrize(
    ("a", "s", "message"),
    [
        (
            agent(tools=[client("ask"), client("ask")]),
            None,
            "tool 'ask' is defined twice in the agent's tools",
        ),
        (
            agent(tools=[client("ask")]),
            session(tools=[client("pick"), client("pick")]),
            "tool 'pick' is defined twice in the session's tools",
        ),
        (
            agent(capabilities=caps("math")),
            session(tools=[client("add")]),
            "tool 'add'.*capability 'math'.*the session's tools",
        ),
        (
            agent(capabilities=caps("math"), tools=[client("add")]),
            None,
            "tool 'add'.*capability 'math'",
        ),
        (
            agent(tools=[{"type": "builtin", "name": "rm_rf"}]),
            None,
            "unknown built-in tool 'rm_rf'",
        ),
    ],
)
def test_tool_errors(a: Layer, s: Layer | None, message: str) -> None:
    with pytest.raises(AssemblyError, match=message):
        build((), a, s)


def test_client_tool_timeout_is_kept() -> None:
    (tool,) = build(a=agent(tools=[client("ask", timeout_seconds=5)])).client_side_tools
    assert tool.timeout_seconds == 5.0


# -- initial files ---------------------------------------------------------------------------


def file(path: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"path": path, "content": content, **extra}


FILES = [
    ("none", (), None, None, []),
    (
        "/workspace/a.txt, a.txt and /a.txt are one path; the later layer wins",
        (harness("h", initial_files=[file("/workspace/a.txt", "h")]),),
        agent(initial_files=[file("a.txt", "a")]),
        session(initial_files=[file("/a.txt", "s")]),
        [("/a.txt", "s")],
    ),
    (
        "new paths are added",
        (harness("h", initial_files=[file("x", "h")]),),
        agent(initial_files=[file("dir/./y", "a")]),
        None,
        [("/x", "h"), ("/dir/y", "a")],
    ),
    (
        "readonly travels with the winning file",
        (),
        agent(initial_files=[file("r", "a", is_readonly=True)]),
        session(initial_files=[file("/workspace/r", "s", is_readonly=False)]),
        [("/r", "s")],
    ),
]


@pytest.mark.parametrize(("case", "harnesses", "a", "s", "expected"), FILES)
def test_initial_files(
    case: str, harnesses: tuple[Layer, ...], a: Layer | None, s: Layer | None, expected: list[Any]
) -> None:
    got = build(harnesses, a, s).initial_files
    assert [(f["path"], f["content"]) for f in got] == expected, case


def test_a_replaced_readonly_flag_follows_the_later_layer() -> None:
    got = build(
        a=agent(initial_files=[file("r", "a", is_readonly=True)]),
        s=session(initial_files=[file("/r", "s")]),
    ).initial_files
    assert "is_readonly" not in got[0]


# -- hints -----------------------------------------------------------------------------------

HINTS = [
    ("none", None, None, Controls(), {}),
    ("session hints", agent(), session(hints={"a": 1}), Controls(), {"a": 1}),
    (
        "shallow merge, controls win per key",
        agent(hints={"a": 0, "z": 0}),
        session(hints={"a": 1, "b": {"deep": 1}}),
        Controls(hints={"b": {"other": 2}, "c": 3}),
        {"a": 1, "z": 0, "b": {"other": 2}, "c": 3},
    ),
]


@pytest.mark.parametrize(("case", "a", "s", "controls", "expected"), HINTS)
def test_hints(
    case: str, a: Layer | None, s: Layer | None, controls: Controls, expected: dict[str, Any]
) -> None:
    assert dict(build((), a, s, controls).hints) == expected, case


# -- network access --------------------------------------------------------------------------

NETWORK = [
    ("no layer restricts: open", None, None, None, None, ()),
    (
        "empty allowed lists do not restrict",
        {"allowed": [], "blocked": []},
        {"allowed": ["a.com"]},
        {"allowed": []},
        ("a.com",),
        (),
    ),
    (
        "allowed lists intersect",
        {"allowed": ["a.com", "b.com"]},
        {"allowed": ["b.com", "c.com"]},
        None,
        ("b.com",),
        (),
    ),
    (
        "disjoint allowed lists allow nothing",
        {"allowed": ["a.com"]},
        None,
        {"allowed": ["c.com"]},
        (),
        (),
    ),
    (
        "blocked lists add up",
        {"blocked": ["x.com"]},
        {"blocked": ["y.com"]},
        {"blocked": ["x.com"]},
        None,
        ("x.com", "y.com"),
    ),
]


@pytest.mark.parametrize(("case", "h", "a", "s", "allowed", "blocked"), NETWORK)
def test_network_access(
    case: str,
    h: dict[str, Any] | None,
    a: dict[str, Any] | None,
    s: dict[str, Any] | None,
    allowed: tuple[str, ...] | None,
    blocked: tuple[str, ...],
) -> None:
    access = build(
        (harness("h", network_access=h),), agent(network_access=a), session(network_access=s)
    ).network_access
    assert (access.allowed, access.blocked) == (allowed, blocked), case


def test_blocked_wins_over_allowed() -> None:
    access = build(
        (harness("h", network_access={"allowed": ["a.com"]}),),
        s=session(network_access={"blocked": ["a.com"]}),
    ).network_access
    assert access.verdict("https://a.com/") == "blocked"


# -- locale ----------------------------------------------------------------------------------

LOCALES = [
    ("none", None, Controls(), None),
    ("the session's", "uk-UA", Controls(), "uk-UA"),
    ("controls win", "uk-UA", Controls(locale="de-DE"), "de-DE"),
    ("controls alone", None, Controls(locale="fr"), "fr"),
]


@pytest.mark.parametrize(("case", "locale", "controls", "expected"), LOCALES)
def test_locale(case: str, locale: str | None, controls: Controls, expected: str | None) -> None:
    runtime = build((), agent(system_prompt="A"), session(locale=locale), controls)
    assert runtime.locale == expected, case
    if expected:
        assert runtime.system_prompt is not None
        assert runtime.system_prompt.endswith(locale_instruction(expected))


# -- MCP servers -----------------------------------------------------------------------------

MCP = [
    ("none", None, None, {}),
    (
        "merged by name, later wins",
        {"docs": {"url": "https://h"}, "git": {"url": "https://g"}},
        {"docs": {"url": "https://s"}},
        {"docs": {"url": "https://s"}, "git": {"url": "https://g"}},
    ),
]


@pytest.mark.parametrize(("case", "h", "s", "expected"), MCP)
def test_mcp_servers(
    case: str, h: dict[str, Any] | None, s: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    runtime = build((harness("h", mcp_servers=h),), None, session(mcp_servers=s))
    assert dict(runtime.mcp_servers) == expected, case


# -- model -----------------------------------------------------------------------------------

MODELS = [
    ("none: the org default", None, None, None, None, Controls(), None),
    ("harness default", "m_root", "m_leaf", None, None, Controls(), "m_leaf"),
    (
        "root harness default when the leaf has none",
        "m_root",
        None,
        None,
        None,
        Controls(),
        "m_root",
    ),
    ("agent default over harness", "m_root", None, "m_agent", None, Controls(), "m_agent"),
    ("session over agent", None, None, "m_agent", "m_session", Controls(), "m_session"),
    ("controls over all", "m_root", None, "m_agent", "m_session", Controls(model_id="m_c"), "m_c"),
]


@pytest.mark.parametrize(("case", "root", "leaf", "a", "s", "controls", "expected"), MODELS)
def test_model(
    case: str,
    root: str | None,
    leaf: str | None,
    a: str | None,
    s: str | None,
    controls: Controls,
    expected: str | None,
) -> None:
    chain = (harness("root", model_id=root), harness("leaf", "root", model_id=leaf))
    runtime = build(chain, agent(model_id=a), session(model_id=s), controls)
    assert runtime.model_id == expected, case
    assert runtime.model_candidates[:1] == ((expected,) if expected else ())


# -- max_iterations and parallel_tool_calls --------------------------------------------------

LIMITS = [
    ("unset", None, None, None, None, None, None),
    ("harness sets parallel", False, None, None, None, None, False),
    ("agent overrides harness", False, True, 5, None, 5, True),
    ("session overrides agent", False, True, 5, 7, 7, True),
    ("an unset later layer does not clear", True, None, 5, None, 5, True),
]


@pytest.mark.parametrize(
    ("case", "h_parallel", "a_parallel", "a_iter", "s_iter", "iterations", "parallel"), LIMITS
)
def test_limits(
    case: str,
    h_parallel: bool | None,
    a_parallel: bool | None,
    a_iter: int | None,
    s_iter: int | None,
    iterations: int | None,
    parallel: bool | None,
) -> None:
    runtime = build(
        (harness("h", parallel_tool_calls=h_parallel),),
        agent(parallel_tool_calls=a_parallel, max_iterations=a_iter),
        session(max_iterations=s_iter),
    )
    assert (runtime.max_iterations, runtime.parallel_tool_calls) == (iterations, parallel), case


# -- harness chain ---------------------------------------------------------------------------


def chain_of(*links: tuple[str, str | None]) -> dict[str, Layer]:
    return {hid: harness(hid, parent) for hid, parent in links}


CHAINS = [
    ("a single harness", "h", chain_of(("h", None)), ["h"]),
    ("root first", "c", chain_of(("c", "b"), ("b", "a"), ("a", None)), ["a", "b", "c"]),
    (
        "eight deep is allowed",
        "h8",
        chain_of(*((f"h{i}", f"h{i - 1}" if i > 1 else None) for i in range(1, 9))),
        [f"h{i}" for i in range(1, 9)],
    ),
]


@pytest.mark.parametrize(("case", "leaf", "harnesses", "expected"), CHAINS)
def test_harness_chain(
    case: str, leaf: str, harnesses: dict[str, Layer], expected: list[str]
) -> None:
    chain = harness_chain(leaf, harnesses)
    assert [layer.id for layer in chain] == expected, case
    build(chain)  # a valid chain assembles


@pytest.mark.parametrize(
    ("leaf", "harnesses", "message"),
    [
        ("a", chain_of(("a", "a")), "cycle: a -> a"),
        ("a", chain_of(("a", "b"), ("b", "a")), "cycle: a -> b -> a"),
        (
            "h9",
            chain_of(*((f"h{i}", f"h{i - 1}" if i > 1 else None) for i in range(1, 10))),
            "deeper than 8",
        ),
        ("a", chain_of(("a", "ghost")), "harness 'ghost' not found"),
    ],
)
def test_harness_chain_errors(leaf: str, harnesses: dict[str, Layer], message: str) -> None:
    with pytest.raises(AssemblyError, match=message):
        harness_chain(leaf, harnesses)


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        ((harness("a", "b"), harness("b", "a"), harness("a", "b")), "cycle through 'a'"),
        (tuple(harness(f"h{i}", f"h{i - 1}" if i else None) for i in range(9)), "9 deep"),
        ((harness("a"), harness("b", "x")), "has parent 'x', not 'a'"),
    ],
)
def test_assemble_refuses_a_bad_chain(chain: tuple[Layer, ...], message: str) -> None:
    with pytest.raises(AssemblyError, match=message):
        build(chain)


# -- prompt-token estimate -------------------------------------------------------------------


def test_prompt_token_estimate_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert build(a=agent(system_prompt="x" * 9)).prompt_tokens_estimate == 3
    assert build().prompt_tokens_estimate == 0
    with_tools = build(a=agent(system_prompt="x" * 8, capabilities=caps("math")))
    assert with_tools.prompt_tokens_estimate > 2
