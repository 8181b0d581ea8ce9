"""Capabilities and tools: the contract every built-in capability module implements.

A ``Capability`` bundles tools and a system-prompt addition under a snake_case id. Capabilities
are registered explicitly (in ``bootstrap``) into a ``CapabilityRegistry``; nothing registers
itself on import. A tool failure is a value: ``ToolError`` raised by a tool, arguments that do
not match its schema, or an unknown tool name all become a ``ToolResultPart`` with ``error`` set,
which the loop feeds back to the model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import jsonschema
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.messages import JsonObject, JsonValue, ToolCallPart, ToolResultPart
from everloop.domain.network_access import OPEN_NETWORK, NetworkAccess
from everloop.llm.base import ToolSpec


class ToolError(Exception):
    """Raised by a tool to report a failure the model should see (``str(error)`` is shown)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StaleWrite(Exception):
    """Raised by a ``Prepared.commit``: what the tool computed from changed meanwhile, and
    nothing was written. The runner rolls the step back and prepares the call again."""


class CapabilityError(ValueError):
    """A capability set cannot be resolved: unknown id, duplicate id, cycle or tool clash."""


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Where a tool call runs; passed to every ``Tool.call``.

    ``connection`` is set for *transactional* tools (a tool class with ``transactional = True``:
    one that only touches everloop's own database). Such a tool runs inside the runner's step
    transaction, so its writes commit atomically with its ``tool.completed`` event: exactly once,
    even across crashes. A tool error rolls its writes back (a savepoint).

    ``network_access`` is the session's effective access list (harness, agent and session
    merged); tools that make outbound requests pass it to the egress guard.
    """

    session_id: str
    org_id: str
    turn_id: str
    tool_call_id: str
    connection: AsyncConnection | None = None
    network_access: NetworkAccess = OPEN_NETWORK


class Tool(Protocol):
    """A server-side tool. ``parameters`` is a JSON schema; arguments are validated against it
    before ``call`` runs. ``call`` returns a JSON value or raises ``ToolError``."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> JsonObject: ...

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue: ...


Commit = Callable[[AsyncConnection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a *prepared* tool returns: ``result``, computed outside any transaction, and
    ``commit``, the write that makes it true (None if there is nothing to write).

    A prepared tool (one with ``prepare(arguments, context) -> Prepared``) does slow or
    untrusted work where nothing is locked, e.g. an agent's SQL in a killable worker process;
    the runner then calls ``commit`` inside the step transaction, so the write and the call's
    ``tool.completed`` commit together, exactly once. ``commit`` raises ``StaleWrite`` if the
    state ``result`` was computed from is no longer current.
    """

    result: JsonValue
    commit: Commit | None = None


RiskLevel = Literal["low", "medium", "high"]
CapabilityStatus = Literal["available", "coming_soon", "deprecated", "retired"]


@dataclass(frozen=True, slots=True)
class Capability:
    id: str
    name: str
    description: str
    category: str = "general"
    features: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    system_prompt_addition: str | None = None
    tools: tuple[Tool, ...] = ()
    risk_level: RiskLevel = "low"
    status: CapabilityStatus = "available"
    config_schema: JsonObject | None = None


def tool_spec(tool: Tool) -> ToolSpec:
    """What the model is told about ``tool``."""
    return ToolSpec(name=tool.name, description=tool.description, parameters=tool.parameters)


def validate_arguments(tool: Tool, arguments: JsonObject) -> None:
    """Raise ``ToolError`` naming the problem if ``arguments`` do not match the tool's schema."""
    validator = jsonschema.Draft202012Validator(tool.parameters)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is not None:
        where = "/".join(str(step) for step in error.absolute_path)
        at = f" at '{where}'" if where else ""
        raise ToolError(f"invalid arguments for {tool.name}{at}: {error.message}")


async def execute_tool_call(
    tool: Tool | None, call: ToolCallPart, context: ToolContext
) -> ToolResultPart:
    """Run one call and return its result part. Expected failures (unknown tool, bad arguments,
    ``ToolError``) become error results; any other exception propagates to the runner."""
    if tool is None:
        return ToolResultPart(call.id, name=call.name, error=f"unknown tool: {call.name}")
    try:
        validate_arguments(tool, call.arguments)
        result = await tool.call(call.arguments, context)
    except ToolError as exc:
        return ToolResultPart(call.id, name=call.name, error=exc.message)
    return ToolResultPart(call.id, name=call.name, result=result)


async def prepare_tool_call(
    tool: Tool | None, call: ToolCallPart, context: ToolContext
) -> tuple[ToolResultPart, Commit | None]:
    """``execute_tool_call`` for a tool that runs before the step transaction: a prepared tool's
    result and its commit (see ``Prepared``), or any other tool's result and None."""
    prepare = getattr(tool, "prepare", None)
    if tool is None or prepare is None:
        return await execute_tool_call(tool, call, context), None
    try:
        validate_arguments(tool, call.arguments)
        prepared: Prepared = await prepare(call.arguments, context)
    except ToolError as exc:
        return ToolResultPart(call.id, name=call.name, error=exc.message), None
    return ToolResultPart(call.id, name=call.name, result=prepared.result), prepared.commit


def is_transactional(tool: Tool | None) -> bool:
    return bool(getattr(tool, "transactional", False))


def is_at_most_once(tool: Tool | None) -> bool:
    """Whether ``tool`` (one with ``at_most_once = True``, e.g. a remote tool not declared
    idempotent) must never run twice for one call: the runner records that the call started
    before making it, and a call found started but unrecorded after a crash is reported with
    an unknown outcome instead of being repeated."""
    return bool(getattr(tool, "at_most_once", False))


class CapabilityRegistry:
    """The capabilities this process knows, by id. Built and filled in ``bootstrap``."""

    def __init__(self, capabilities: Iterable[Capability] = ()) -> None:
        self._capabilities: dict[str, Capability] = {}
        for capability in capabilities:
            self.register(capability)

    def register(self, capability: Capability) -> None:
        if capability.id in self._capabilities:
            raise CapabilityError(f"capability {capability.id!r} is already registered")
        self._capabilities[capability.id] = capability

    def get(self, capability_id: str) -> Capability:
        try:
            return self._capabilities[capability_id]
        except KeyError:
            raise CapabilityError(f"unknown capability {capability_id!r}") from None

    def __contains__(self, capability_id: object) -> bool:
        return capability_id in self._capabilities

    def all(self) -> list[Capability]:
        return list(self._capabilities.values())

    def resolve(self, capability_ids: Iterable[str]) -> list[Capability]:
        """The capabilities named plus their dependencies, dependencies first, each once."""
        resolved: dict[str, Capability] = {}

        def visit(capability_id: str, trail: tuple[str, ...]) -> None:
            if capability_id in trail:
                cycle = " -> ".join((*trail, capability_id))
                raise CapabilityError(f"capability dependency cycle: {cycle}")
            if capability_id in resolved:
                return
            capability = self.get(capability_id)
            for dependency in capability.dependencies:
                visit(dependency, (*trail, capability_id))
            resolved[capability_id] = capability

        for capability_id in capability_ids:
            visit(capability_id, ())
        return list(resolved.values())

    def tools_for(self, capability_ids: Iterable[str]) -> list[Tool]:
        """The tools of the resolved capabilities; two tools of one name are an error."""
        tools: dict[str, tuple[str, Tool]] = {}
        for capability in self.resolve(capability_ids):
            for tool in capability.tools:
                if tool.name in tools:
                    other = tools[tool.name][0]
                    raise CapabilityError(
                        f"tool {tool.name!r} is provided by both {other!r} and {capability.id!r}"
                    )
                tools[tool.name] = (capability.id, tool)
        return [tool for _, tool in tools.values()]

    def system_prompt_additions(self, capability_ids: Iterable[str]) -> list[str]:
        return [
            capability.system_prompt_addition
            for capability in self.resolve(capability_ids)
            if capability.system_prompt_addition
        ]


def tools_by_name(tools: Iterable[Tool]) -> Mapping[str, Tool]:
    return {tool.name: tool for tool in tools}


def reveal_result(tool: Tool | None, part: ToolResultPart, session_id: str) -> ToolResultPart:
    """``part`` as the model reads it. A tool result is persisted (its event, the step record,
    the turn state), so a tool that must hand the model a secret returns it sealed and defines
    ``reveal(result, session_id, tool_call_id) -> JsonValue`` to open it; the runner calls this
    only while building a model request, so the plaintext is never stored, evented or logged."""
    reveal = getattr(tool, "reveal", None)
    if reveal is None or part.result is None:
        return part
    opened: JsonValue = reveal(part.result, session_id, part.tool_call_id)
    return ToolResultPart(part.tool_call_id, part.name, opened, part.error)
