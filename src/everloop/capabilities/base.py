"""Capabilities and tools: the contract every built-in capability module implements.

A ``Capability`` bundles tools and a system-prompt addition under a snake_case id. Capabilities
are registered explicitly (in ``bootstrap``) into a ``CapabilityRegistry``; nothing registers
itself on import. A tool failure is a value: ``ToolError`` raised by a tool, arguments that do
not match its schema, or an unknown tool name all become a ``ToolResultPart`` with ``error`` set,
which the loop feeds back to the model.

Every tool declares its :class:`SideEffect` class, which decides what a re-run of its step after
a crash may do (``engine.act``; the per-tool table is in docs/architecture.md, "Tool calls after
a crash").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

import jsonschema
from jsonschema.exceptions import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.messages import JsonObject, JsonValue, ToolCallPart, ToolResultPart
from everloop.domain.network_access import OPEN_NETWORK, NetworkAccess
from everloop.domain.secret_refs import referenced_names
from everloop.errors import InvalidInput
from everloop.llm.base import ToolSpec
from everloop.patterns import compile_untrusted


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


class SideEffect(StrEnum):
    """What running a tool call does outside the call itself, hence how often it may run.

    A turn's step may run again after a crash (``engine.steps``); a call recorded before is
    never run again. For a call that was running when the process died:

    - ``PURE``: no effect at all (a clock, arithmetic, demo data): it simply runs again.
    - ``TRANSACTIONAL``: only everloop's own database. The call runs inside the step
      transaction that records it, so its writes and its record commit together or not at all:
      exactly once.
    - ``IDEMPOTENT``: an outside effect that is safe to repeat (an HTTP GET, an MCP tool that
      declares ``readOnlyHint`` or ``idempotentHint``): it runs again, and is recorded once.
    - ``AT_MOST_ONCE``: an outside effect that is not safe to repeat (an MCP tool without those
      hints). The runner commits a start marker before the call; a call found started but not
      recorded is never repeated: it is settled as ``in_doubt`` (outcome unknown) instead.

    Like Everruns's ``SideEffectClass``, a tool that declares nothing is ``AT_MOST_ONCE``.
    """

    PURE = "pure"
    TRANSACTIONAL = "transactional"
    IDEMPOTENT = "idempotent"
    AT_MOST_ONCE = "at_most_once"


SecretResolver = Callable[[JsonValue], JsonValue]


def no_secrets(value: JsonValue) -> JsonValue:
    """The resolver where no secrets are available: a placeholder is an error."""
    if names := referenced_names(value):
        raise ToolError(f"secrets are not available here: {', '.join(sorted(names))}")
    return value


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Where a tool call runs; passed to every ``Tool.call``.

    ``connection`` is set for ``SideEffect.TRANSACTIONAL`` tools (ones that only touch
    everloop's own database). Such a tool runs inside the runner's step transaction, so its
    writes commit atomically with its ``tool.completed`` event: exactly once, even across
    crashes. A tool error rolls its writes back (a savepoint).

    ``network_access`` is the session's effective access list (harness, agent and session
    merged); tools that make outbound requests pass it to the egress guard.

    ``resolve_secrets`` replaces the ``{{secret:NAME}}`` placeholders of a value with the
    session's secrets (``ToolError`` for an unknown name). Only a tool making an outbound call
    uses it, on what it sends and at the moment it sends it: the arguments it was called with,
    which are stored, keep the placeholders (``domain.secret_refs``).

    ``agent_id`` is the session's agent (None without one); ``capability_configs`` the active
    capabilities' configs by ref (an entry only for a capability that has one).
    """

    session_id: str
    org_id: str
    turn_id: str
    tool_call_id: str
    connection: AsyncConnection | None = None
    network_access: NetworkAccess = OPEN_NETWORK
    resolve_secrets: SecretResolver = no_secrets
    agent_id: str | None = None
    capability_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class Tool(Protocol):
    """A server-side tool. ``parameters`` is a JSON schema; arguments are validated against it
    before ``call`` runs. ``call`` returns a JSON value or raises ``ToolError``. ``side_effect``
    says whether a call may run again after a crash (see :class:`SideEffect`)."""

    @property
    def name(self) -> str: ...

    @property
    def side_effect(self) -> SideEffect: ...

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


@dataclass(frozen=True, slots=True)
class Delegation:
    """What a *delegating* tool's call hands to another session (a subagent): the session task
    it tracks, the child turn to start once the step commits (``start_turn_id``), and either the
    answer now (``deadline`` None: ``result``) or the moment the turn stops waiting for the
    task to end (``deadline``, an RFC 3339 timestamp).

    A delegating tool (one with ``begin(arguments, context) -> Delegation | JsonValue`` and
    ``start_turn(session_id, turn_id)``) begins inside the step transaction (its writes commit
    with the record of what it began, exactly once); the runner starts the turn after the
    commit (again after a crash: starting a turn is idempotent), then waits durably for the
    task, re-checking whenever the parent's or the child's log moves.
    """

    task_id: str
    name: str
    child_session_id: str
    start_turn_id: str | None = None
    deadline: str | None = None
    result: JsonValue = None


class ResultFilter(Protocol):
    """A capability's rewrite of a successful server-side tool result, run inside the step
    transaction that records the call (``context.connection`` is that transaction): what it
    writes commits together with the call's ``tool.completed``, exactly once, and a re-run of
    the step after a crash runs it again from scratch (so its writes must be upserts).
    ``config`` is the capability's config on the session (``{}`` without one). It returns the
    result the model is to see (``result`` itself when it leaves it alone)."""

    async def __call__(
        self, result: ToolResultPart, config: Mapping[str, Any], context: ToolContext
    ) -> ToolResultPart: ...


ConfigCheck = Callable[[Mapping[str, Any]], None]
"""A capability's check of a config its ``config_schema`` accepted, for what a schema cannot
say (a regex RE2 cannot run, a field another field requires): raises ``InvalidInput`` with
``field`` relative to the config (``checks.2.pattern``); the caller prefixes where the config is."""

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
    # Rewrites the results of the session's server-side calls while it is active (see above).
    result_filter: ResultFilter | None = None
    # Checks a config the schema accepted, on write (see ``ConfigCheck``).
    config_check: ConfigCheck | None = None


def object_schema(properties: JsonObject, required: list[str]) -> JsonObject:
    """A tool's parameters: an object of ``properties``, ``required`` ones, nothing else."""
    return {
        "type": "object",
        "properties": properties,
        "required": list[JsonValue](required),
        "additionalProperties": False,
    }


def tool_spec(tool: Tool) -> ToolSpec:
    """What the model is told about ``tool``."""
    return ToolSpec(name=tool.name, description=tool.description, parameters=tool.parameters)


def _pattern(
    validator: Any, pattern: str, instance: Any, _schema: Any
) -> Iterator[ValidationError]:
    regex = compile_untrusted(pattern, field="pattern")
    if validator.is_type(instance, "string") and not regex.search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, properties: Mapping[str, Any], instance: Any, _schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in properties.items():
        regex = compile_untrusted(pattern, field="patternProperties")
        for key, value in instance.items():
            if regex.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


# A tool's schema may come from an MCP server (a tenant's) and the arguments from the model:
# its ``pattern`` and ``patternProperties`` run on RE2, as every untrusted regex does.
_ArgumentsValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties},
)


def argument_error(parameters: JsonObject, arguments: JsonObject) -> ValidationError | None:
    """The most relevant way ``arguments`` break the schema ``parameters`` (None if they fit);
    ``InvalidInput`` if the schema has a regex RE2 cannot run."""
    validator = _ArgumentsValidator(parameters)
    error: ValidationError | None = jsonschema.exceptions.best_match(
        validator.iter_errors(arguments)
    )
    return error


def validate_arguments(tool: Tool, arguments: JsonObject) -> None:
    """Raise ``ToolError`` naming the problem if ``arguments`` do not match the tool's schema
    (or the schema has a regex RE2 cannot run: the call is refused rather than left unchecked)."""
    try:
        error = argument_error(tool.parameters, arguments)
    except InvalidInput as exc:
        problem = f"a {exc.field} that cannot be checked: {exc.message}"
        raise ToolError(f"the schema of {tool.name} has {problem}") from None
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


def side_effect_of(tool: Tool | None) -> SideEffect:
    """``tool``'s side-effect class. No tool (an unknown name) runs nothing: ``PURE``. A tool
    object that does not declare one (the type checker requires it of ours) is treated
    conservatively as ``AT_MOST_ONCE``."""
    if tool is None:
        return SideEffect.PURE
    declared = getattr(tool, "side_effect", None)
    return declared if isinstance(declared, SideEffect) else SideEffect.AT_MOST_ONCE


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


def is_delegating(tool: Tool | None) -> bool:
    """Whether ``tool`` is a delegating tool (``Delegation``)."""
    return callable(getattr(tool, "begin", None))


async def begin_tool_call(
    tool: Tool, call: ToolCallPart, context: ToolContext
) -> ToolResultPart | Delegation:
    """A delegating tool's call: what it began, or its answer (an error: ``ToolError`` or bad
    arguments)."""
    try:
        validate_arguments(tool, call.arguments)
        begun: Delegation | JsonValue = await tool.begin(  # type: ignore[attr-defined]
            call.arguments, context
        )
    except ToolError as exc:
        return ToolResultPart(call.id, name=call.name, error=exc.message)
    if isinstance(begun, Delegation):
        return begun
    return ToolResultPart(call.id, name=call.name, result=begun)


def is_prepared(tool: Tool | None) -> bool:
    """Whether ``tool`` is a prepared tool (``Prepared``): computed before the step
    transaction, its write committed inside it."""
    return callable(getattr(tool, "prepare", None))


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
