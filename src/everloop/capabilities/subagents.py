"""Capability ``subagents``: an agent delegates work to child sessions and collects results.

Each subagent is a child session with its own turn loop (``parent_session_id`` = the calling
session), tracked by the parent as a session task of kind ``subagent``. What a call does with
the database lives below this module, behind ``SubagentPort`` (``services.subagents``
implements it); the waiting is the engine's (``engine.subagent_wait``): a ``spawn_subagent``,
``send_to_subagent`` or ``wait_subagent`` call that waits returns a ``Delegation`` and the turn
waits durably for the child, across restarts, up to a deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import (
    Capability,
    Delegation,
    SideEffect,
    ToolContext,
    ToolError,
    object_schema,
)
from everloop.domain.messages import JsonObject, JsonValue

CAPABILITY_ID = "subagents"

_NAME: JsonObject = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "description": "The subagent's name, unique among this session's subagents.",
}


@dataclass(frozen=True, slots=True)
class SpawnRequest:
    name: str
    task: str
    agent: str | None = None
    blueprint_id: str | None = None
    blueprint_config: dict[str, Any] | None = None
    capabilities: tuple[str, ...] | None = None
    wait: bool = True


class SubagentPort(Protocol):
    """What the subagent tools need from the system. The methods taking ``conn`` run inside
    the parent's step transaction; a refusal (a limit, a name clash, an unknown agent) is a
    ``ToolError`` that names what to do instead."""

    async def spawn(
        self, conn: AsyncConnection, context: ToolContext, request: SpawnRequest
    ) -> Delegation: ...

    async def send(
        self, conn: AsyncConnection, context: ToolContext, name: str, message: str, wait: bool
    ) -> Delegation: ...

    async def wait(
        self, conn: AsyncConnection, context: ToolContext, name: str, timeout: float | None
    ) -> Delegation | JsonValue: ...

    async def describe(self, context: ToolContext, name: str) -> JsonValue: ...

    async def list_subagents(self, context: ToolContext) -> JsonValue: ...

    async def cancel(self, context: ToolContext, name: str) -> JsonValue: ...

    async def start_turn(self, session_id: str, turn_id: str) -> None: ...


def _connection(context: ToolContext) -> AsyncConnection:
    if context.connection is None:
        raise ToolError("subagents are only available inside a turn")
    return context.connection


@dataclass(frozen=True, slots=True)
class _Delegating:
    """A tool that may hand its answer to a child session (``Delegation``)."""

    port: SubagentPort
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        raise ToolError("this tool runs through the turn engine")

    async def start_turn(self, session_id: str, turn_id: str) -> None:
        await self.port.start_turn(session_id, turn_id)


@dataclass(frozen=True, slots=True)
class SpawnSubagent(_Delegating):
    name: str = "spawn_subagent"
    description: str = (
        "Delegate a task to a new subagent: a child session with its own history that works on "
        "`task` and answers with its result. By default it runs with this agent's harness and "
        "model; `agent` (a name or id) or `blueprint_id` picks another, `capabilities` narrows "
        "what it may use. With `wait` (default true) this call returns the subagent's result; "
        "with `wait: false` it returns at once, and `wait_subagent` collects the result later. "
        "Several spawn calls in one response run in parallel."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {
                "name": _NAME,
                "task": {"type": "string", "minLength": 1, "maxLength": 100_000},
                "agent": {"type": "string", "minLength": 1, "maxLength": 200},
                "blueprint_id": {"type": "string", "minLength": 1, "maxLength": 200},
                "blueprint_config": {"type": "object"},
                "capabilities": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1, "maxLength": 100},
                    "maxItems": 64,
                },
                "wait": {"type": "boolean"},
            },
            ["name", "task"],
        )
    )

    async def begin(self, arguments: JsonObject, context: ToolContext) -> Delegation:
        capabilities = arguments.get("capabilities")
        request = SpawnRequest(
            name=str(arguments["name"]),
            task=str(arguments["task"]),
            agent=_opt_str(arguments.get("agent")),
            blueprint_id=_opt_str(arguments.get("blueprint_id")),
            blueprint_config=_opt_dict(arguments.get("blueprint_config")),
            capabilities=(
                tuple(str(c) for c in capabilities) if isinstance(capabilities, list) else None
            ),
            wait=arguments.get("wait") is not False,
        )
        return await self.port.spawn(_connection(context), context, request)


@dataclass(frozen=True, slots=True)
class SendToSubagent(_Delegating):
    name: str = "send_to_subagent"
    description: str = (
        "Send a follow-up message to a subagent that has finished its work (or is idle); it "
        "continues with its history. With `wait` (default true) this returns its new result."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {
                "name": _NAME,
                "message": {"type": "string", "minLength": 1, "maxLength": 100_000},
                "wait": {"type": "boolean"},
            },
            ["name", "message"],
        )
    )

    async def begin(self, arguments: JsonObject, context: ToolContext) -> Delegation:
        return await self.port.send(
            _connection(context),
            context,
            str(arguments["name"]),
            str(arguments["message"]),
            arguments.get("wait") is not False,
        )


@dataclass(frozen=True, slots=True)
class WaitSubagent(_Delegating):
    name: str = "wait_subagent"
    description: str = (
        "Wait until a subagent finishes and return its result (at once if it already has). "
        "`timeout` is in seconds; when it passes, this returns a timeout error and the "
        "subagent keeps running."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {"name": _NAME, "timeout": {"type": "number", "exclusiveMinimum": 0}}, ["name"]
        )
    )

    async def begin(self, arguments: JsonObject, context: ToolContext) -> Delegation | JsonValue:
        timeout = arguments.get("timeout")
        return await self.port.wait(
            _connection(context),
            context,
            str(arguments["name"]),
            float(timeout) if isinstance(timeout, int | float) else None,
        )


@dataclass(frozen=True, slots=True)
class GetSubagent:
    port: SubagentPort
    side_effect: ClassVar[SideEffect] = SideEffect.PURE
    name: str = "get_subagent"
    description: str = "A subagent's status, and its result once it has finished."
    parameters: JsonObject = field(default_factory=lambda: object_schema({"name": _NAME}, ["name"]))

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        return await self.port.describe(context, str(arguments["name"]))


@dataclass(frozen=True, slots=True)
class ListSubagents:
    port: SubagentPort
    side_effect: ClassVar[SideEffect] = SideEffect.PURE
    name: str = "list_subagents"
    description: str = "This session's subagents with their status."
    parameters: JsonObject = field(default_factory=lambda: object_schema({}, []))

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        return await self.port.list_subagents(context)


@dataclass(frozen=True, slots=True)
class CancelSubagent:
    port: SubagentPort
    side_effect: ClassVar[SideEffect] = SideEffect.IDEMPOTENT
    name: str = "cancel_subagent"
    description: str = (
        "Cancel a subagent that is still working (and the subagents it started). Cancelling "
        "one that has finished changes nothing."
    )
    parameters: JsonObject = field(default_factory=lambda: object_schema({"name": _NAME}, ["name"]))

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        return await self.port.cancel(context, str(arguments["name"]))


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_dict(value: object) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


def build_subagents_capability(port: SubagentPort) -> Capability:
    return Capability(
        id=CAPABILITY_ID,
        name="Subagents",
        description=(
            "Delegate tasks to subagents: child sessions with their own turn loop, run in "
            "parallel, whose results come back to this session."
        ),
        category="orchestration",
        features=("subagents",),
        system_prompt_addition=(
            "You can delegate self-contained tasks to subagents with spawn_subagent. Give each "
            "a clear, complete task: it does not see this conversation. Spawn several in one "
            "response to run them in parallel."
        ),
        tools=(
            SpawnSubagent(port),
            WaitSubagent(port),
            GetSubagent(port),
            ListSubagents(port),
            SendToSubagent(port),
            CancelSubagent(port),
        ),
        risk_level="medium",
    )
