"""The RuntimeAgent: what a turn runs, assembled from its configuration layers.

One pure function, :func:`assemble`, folds the layers in order: the harness chain (root parent
first), the agent (or the immutable version a session captured, or a blueprint instead of both),
the session, and the message's ``controls``. Field by field:

- system prompt: the harness prompts, then the agent's prompt with the session's prompt prepended,
  then each active capability's addition (once, in capability order), then the user's locale;
  parts joined by a blank line.
- capabilities: harness, agent, session; a later ``ref`` replaces an earlier one's config (keeping
  its place); declared dependencies are added before what needs them.
- tools: the active capabilities' tools, then each layer's definitions; a later layer's
  definition replaces an earlier layer's of the same name (keeping its place). Two definitions of
  one name in one layer, or a ``client_side`` definition named like an active capability's tool
  (who would run it?), are an error naming it. A ``builtin`` definition names a tool of any
  registered capability; ``client_side`` ones go to the model as specs.
- initial files by normalized path, hints (shallow), MCP servers by name: the later layer wins.
- network access: ``allowed`` lists intersect (an empty list does not restrict), ``blocked`` add up.
- model: ``controls.model_id``, then the session's, the agent's default, the harnesses' defaults
  (leaf first); resolving an id to a driver is the ``ModelService``'s job.
- locale: ``controls.locale`` else the session's. ``max_iterations``, ``parallel_tool_calls``:
  the last layer that sets them.

The capability registry reaches this module as data (:class:`CapabilityInfo`), never as an object.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from everloop.domain.files import normalize_path
from everloop.domain.mcp import MCP_REF_PREFIX
from everloop.domain.network_access import NetworkAccess, merge_network_access
from everloop.errors import InvalidInput

MAX_HARNESS_DEPTH = 8

_T = TypeVar("_T")

LayerKind = Literal["harness", "agent", "blueprint", "session"]
ToolSource = Literal["capability", "builtin", "client_side"]


class AssemblyError(InvalidInput):
    """The layers cannot be assembled: a harness cycle or chain too deep, an unknown capability or
    built-in tool, a capability dependency cycle, or two tools of one name."""

    code = "invalid_configuration"


@dataclass(frozen=True, slots=True)
class ToolInfo:
    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CapabilityInfo:
    """What assembly needs to know of a registered capability."""

    id: str
    dependencies: tuple[str, ...] = ()
    system_prompt_addition: str | None = None
    tools: tuple[ToolInfo, ...] = ()
    features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer in its wire form (JSON values as stored). ``parent_id`` is a harness's
    ``parent_harness_id``; ``model_id`` is a harness's or agent's default model, or the
    session's model."""

    kind: LayerKind
    id: str | None = None
    parent_id: str | None = None
    system_prompt: str | None = None
    capabilities: Sequence[Mapping[str, Any]] = ()
    tools: Sequence[Mapping[str, Any]] = ()
    initial_files: Sequence[Mapping[str, Any]] = ()
    hints: Mapping[str, Any] | None = None
    network_access: Mapping[str, Any] | None = None
    mcp_servers: Mapping[str, Any] | None = None
    model_id: str | None = None
    max_iterations: int | None = None
    parallel_tool_calls: bool | None = None
    locale: str | None = None
    # A subagent narrowed to these capabilities (with their dependencies): the other layers'
    # capabilities outside it are not active. None: no narrowing.
    allowed_capabilities: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class Controls:
    """Per-message overrides (``controls`` of ``POST .../messages``)."""

    model_id: str | None = None
    locale: str | None = None
    hints: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Controls:
        if not value:
            return NO_CONTROLS
        hints = value.get("hints")
        return cls(
            model_id=value.get("model_id"),
            locale=value.get("locale"),
            hints=hints if isinstance(hints, Mapping) else None,
        )


NO_CONTROLS = Controls()


@dataclass(frozen=True, slots=True)
class Layers:
    """Everything a RuntimeAgent is built from. ``harnesses`` runs root parent first; ``agent``
    is the agent, its captured version or a blueprint."""

    harnesses: Sequence[Layer] = ()
    agent: Layer | None = None
    session: Layer | None = None
    controls: Controls = NO_CONTROLS
    catalog: Mapping[str, CapabilityInfo] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActiveCapability:
    ref: str
    config: Mapping[str, Any] | None
    implicit: bool = False  # added as another capability's dependency


@dataclass(frozen=True, slots=True)
class RuntimeTool:
    name: str
    description: str
    parameters: Mapping[str, Any]
    source: ToolSource
    capability_id: str | None = None
    timeout_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class RuntimeAgent:
    system_prompt: str | None
    capabilities: tuple[ActiveCapability, ...]
    tools: tuple[RuntimeTool, ...]
    initial_files: tuple[Mapping[str, Any], ...]
    hints: Mapping[str, Any]
    network_access: NetworkAccess
    locale: str | None
    mcp_servers: Mapping[str, Any]
    model_candidates: tuple[str | None, ...]
    max_iterations: int | None
    parallel_tool_calls: bool | None
    features: tuple[str, ...]
    prompt_tokens_estimate: int

    @property
    def model_id(self) -> str | None:
        return next((m for m in self.model_candidates if m), None)

    @property
    def client_side_tools(self) -> tuple[RuntimeTool, ...]:
        return tuple(t for t in self.tools if t.source == "client_side")

    @property
    def server_tool_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tools if t.source != "client_side")


def assemble(layers: Layers) -> RuntimeAgent:
    """Fold ``layers`` into the RuntimeAgent; :class:`AssemblyError` when they do not fit."""
    check_harness_chain(layers.harnesses)
    ordered = [*layers.harnesses, *((layers.agent,) if layers.agent else ())]
    if layers.session is not None:
        ordered.append(layers.session)
    controls = layers.controls
    capabilities = resolve_capabilities(ordered, layers.catalog)
    tools = _tools(ordered, capabilities, layers.catalog)
    locale = controls.locale or (layers.session.locale if layers.session else None)
    prompt = _system_prompt(layers, capabilities, locale)
    hints: dict[str, Any] = {}
    for layer in ordered:
        hints.update(layer.hints or {})
    hints.update(controls.hints or {})
    mcp: dict[str, Any] = {}
    for layer in ordered:
        mcp.update(layer.mcp_servers or {})
    # controls, then session, agent, harnesses leaf first: the nearest layer that names one.
    candidates = [controls.model_id, *(layer.model_id for layer in reversed(ordered))]
    features = sorted(
        {f for c in capabilities if c.ref in layers.catalog for f in layers.catalog[c.ref].features}
    )
    return RuntimeAgent(
        system_prompt=prompt,
        capabilities=capabilities,
        tools=tools,
        initial_files=_initial_files(ordered),
        hints=hints,
        network_access=merge_network_access(*(layer.network_access for layer in ordered)),
        locale=locale,
        mcp_servers=mcp,
        model_candidates=tuple(dict.fromkeys(m for m in candidates if m)),
        max_iterations=_last_set(layer.max_iterations for layer in ordered),
        parallel_tool_calls=_last_set(layer.parallel_tool_calls for layer in ordered),
        features=tuple(features),
        prompt_tokens_estimate=estimate_tokens(prompt, tools),
    )


def check_harness_chain(chain: Sequence[Layer]) -> None:
    """``chain`` (root first) is one parent line: each harness's parent is the one before it,
    no harness twice, at most :data:`MAX_HARNESS_DEPTH` deep."""
    seen: set[str | None] = set()
    for layer in chain:
        if layer.id in seen:
            raise AssemblyError(
                f"harness parent cycle through '{layer.id}'", field="parent_harness_id"
            )
        seen.add(layer.id)
    if len(chain) > MAX_HARNESS_DEPTH:
        raise AssemblyError(
            f"the harness chain is {len(chain)} deep; at most {MAX_HARNESS_DEPTH} is allowed",
            field="parent_harness_id",
        )
    for index, layer in enumerate(chain):
        expected = chain[index - 1].id if index else None
        if layer.parent_id != expected:
            raise AssemblyError(
                f"harness '{layer.id}' has parent '{layer.parent_id}', not '{expected}'",
                field="parent_harness_id",
            )


def harness_chain(leaf_id: str, harnesses: Mapping[str, Layer]) -> tuple[Layer, ...]:
    """The chain of ``leaf_id`` and its parents, root first, from harness layers by id; a cycle,
    a missing parent or a chain deeper than :data:`MAX_HARNESS_DEPTH` is an AssemblyError."""
    chain: list[Layer] = []
    current: str | None = leaf_id
    while current is not None:
        if any(layer.id == current for layer in chain):
            trail = " -> ".join([*(str(layer.id) for layer in chain), current])
            raise AssemblyError(f"harness parent cycle: {trail}", field="parent_harness_id")
        if len(chain) == MAX_HARNESS_DEPTH:
            raise AssemblyError(
                f"the harness chain of '{leaf_id}' is deeper than {MAX_HARNESS_DEPTH}",
                field="parent_harness_id",
            )
        layer = harnesses.get(current)
        if layer is None:
            raise AssemblyError(f"harness '{current}' not found", field="parent_harness_id")
        chain.append(layer)
        current = layer.parent_id
    return tuple(reversed(chain))


def resolve_capabilities(
    layers: Iterable[Layer], catalog: Mapping[str, CapabilityInfo]
) -> tuple[ActiveCapability, ...]:
    """The active capabilities in order: each ``ref`` once (a later layer's config replaces an
    earlier one's), dependencies before what needs them."""
    configured: dict[str, Mapping[str, Any] | None] = {}
    allowed: set[str] | None = None
    for layer in layers:
        for entry in layer.capabilities:
            configured[str(entry["ref"])] = entry.get("config")
        if layer.allowed_capabilities is not None:
            allowed = set(layer.allowed_capabilities)
    if allowed is not None:
        configured = {ref: config for ref, config in configured.items() if ref in allowed}
    resolved: dict[str, ActiveCapability] = {}

    def visit(ref: str, trail: tuple[str, ...]) -> None:
        if ref in trail:
            cycle = " -> ".join((*trail, ref))
            raise AssemblyError(f"capability dependency cycle: {cycle}", field="capabilities")
        if ref in resolved:
            return
        info = catalog.get(ref)
        if info is None and ref.startswith(MCP_REF_PREFIX):
            # A registered MCP server: its tools are discovered per turn (capabilities.mcp);
            # services check that the server exists when a layer names it.
            resolved[ref] = ActiveCapability(ref, configured.get(ref), implicit=False)
            return
        if info is None:
            raise AssemblyError(
                f"unknown capability '{ref}'", code="unknown_capability", field="capabilities"
            )
        for dependency in info.dependencies:
            visit(dependency, (*trail, ref))
        resolved[ref] = ActiveCapability(ref, configured.get(ref), implicit=ref not in configured)

    for ref in configured:
        visit(ref, ())
    return tuple(resolved.values())


class ToolDefinitionLike(Protocol):
    """What a model sees of a tool (a ``RuntimeTool``, an MCP tool...)."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]: ...


def estimate_tokens(system_prompt: str | None, tools: Iterable[ToolDefinitionLike]) -> int:
    """About four characters a token: the prompt plus the tool specs as the model sees them."""
    specs = [
        {"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools
    ]
    chars = len(system_prompt or "") + (len(json.dumps(specs)) if specs else 0)
    return math.ceil(chars / 4)


def locale_instruction(locale: str) -> str:
    return (
        f"The user's locale is {locale}. Answer in its language and format dates, times, "
        "numbers and currencies as is usual there."
    )


def _system_prompt(
    layers: Layers, capabilities: Sequence[ActiveCapability], locale: str | None
) -> str | None:
    parts = [layer.system_prompt for layer in layers.harnesses if layer.system_prompt]
    own = [
        layers.session.system_prompt if layers.session else None,
        layers.agent.system_prompt if layers.agent else None,
    ]
    if any(own):
        parts.append("\n\n".join(p for p in own if p))
    seen: set[str] = set()
    for capability in capabilities:
        info = layers.catalog.get(capability.ref)
        addition = info.system_prompt_addition if info else None
        if addition and addition not in seen:
            seen.add(addition)
            parts.append(addition)
    if locale:
        parts.append(locale_instruction(locale))
    return "\n\n".join(parts) or None


def _tools(
    layers: Sequence[Layer],
    capabilities: Sequence[ActiveCapability],
    catalog: Mapping[str, CapabilityInfo],
) -> tuple[RuntimeTool, ...]:
    found: dict[str, RuntimeTool] = {}
    for capability in capabilities:
        info = catalog.get(capability.ref)
        if info is None:  # an ``mcp:{id}`` ref: no tools known at assembly
            continue
        for t in info.tools:
            other = found.get(t.name)
            if other is not None:
                raise _clash(t.name, _origin(other), f"capability '{info.id}'")
            found[t.name] = RuntimeTool(t.name, t.description, t.parameters, "capability", info.id)
    builtin = {t.name: (info.id, t) for info in catalog.values() for t in info.tools}
    for layer in layers:
        where = f"the {layer.kind}'s tools"
        own: set[str] = set()
        for definition in layer.tools:
            tool = _defined_tool(definition, builtin)
            if tool.name in own:
                raise AssemblyError(
                    f"tool '{tool.name}' is defined twice in {where}",
                    code="tool_name_clash",
                    field="tools",
                )
            own.add(tool.name)
            existing = found.get(tool.name)
            if existing is not None and existing.source == "capability":
                if tool.source == "builtin" and tool.capability_id == existing.capability_id:
                    continue  # the same tool, already there through its capability
                raise _clash(tool.name, _origin(existing), where)
            found[tool.name] = tool  # an earlier layer's definition: the later one wins
    return tuple(found.values())


def _defined_tool(
    definition: Mapping[str, Any], builtin: Mapping[str, tuple[str, ToolInfo]]
) -> RuntimeTool:
    name = str(definition["name"])
    if definition.get("type", "client_side") == "builtin":
        if name not in builtin:
            raise AssemblyError(
                f"unknown built-in tool '{name}'", code="unknown_tool", field="tools"
            )
        owner, t = builtin[name]
        return RuntimeTool(name, t.description, t.parameters, "builtin", owner)
    timeout = definition.get("timeout_seconds")
    return RuntimeTool(
        name,
        str(definition.get("description") or ""),
        definition.get("parameters") or {"type": "object", "properties": {}},
        "client_side",
        timeout_seconds=float(timeout) if timeout else None,
    )


def _clash(name: str, first: str, second: str) -> AssemblyError:
    return AssemblyError(
        f"tool '{name}' is defined twice ({first} and {second})",
        code="tool_name_clash",
        field="tools",
    )


def _origin(tool: RuntimeTool) -> str:
    if tool.source == "capability":
        return f"capability '{tool.capability_id}'"
    return f"a {tool.source} tool"


def _initial_files(layers: Sequence[Layer]) -> tuple[Mapping[str, Any], ...]:
    files: dict[str, Mapping[str, Any]] = {}
    for layer in layers:
        for index, entry in enumerate(layer.initial_files):
            path = normalize_path(str(entry["path"]), field=f"initial_files.{index}.path")
            files.pop(path, None)  # a replaced file moves to where the later layer put it
            files[path] = {**entry, "path": path}
    return tuple(files.values())


def _last_set(values: Iterable[_T | None]) -> _T | None:
    last: _T | None = None
    for value in values:
        if value is not None:
            last = value
    return last


def runtime_agent_to_json(agent: RuntimeAgent) -> dict[str, Any]:
    """The RuntimeAgent as JSON (agent versions' ``resolved_config``, previews)."""
    access = agent.network_access
    return {
        "system_prompt": agent.system_prompt,
        "capabilities": [
            {"ref": c.ref, "config": dict(c.config) if c.config is not None else None}
            for c in agent.capabilities
        ],
        "tools": [
            {
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters),
                "source": t.source,
                "capability_id": t.capability_id,
            }
            for t in agent.tools
        ],
        "initial_files": [
            {"path": f["path"], "is_readonly": bool(f.get("is_readonly", False))}
            for f in agent.initial_files
        ],
        "hints": dict(agent.hints),
        "network_access": {
            "allowed": list(access.allowed) if access.allowed is not None else None,
            "blocked": list(access.blocked),
        },
        "locale": agent.locale,
        "mcp_servers": dict(agent.mcp_servers),
        "model_id": agent.model_id,
        "max_iterations": agent.max_iterations,
        "parallel_tool_calls": agent.parallel_tool_calls,
        "features": list(agent.features),
        "prompt_tokens_estimate": agent.prompt_tokens_estimate,
    }
