"""Capability ``session_schedule``: an agent schedules messages to its own session.

``create_schedule`` posts ``message`` into this session later, once at ``scheduled_at`` or on a
cron expression in a timezone; each fire is a new turn. The tools are transactional: what they
write commits with their step, exactly once. The storage lives below them, behind
``SchedulePort`` (``services.schedules`` implements it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError, object_schema
from everloop.domain.messages import JsonObject, JsonValue

CAPABILITY_ID = "session_schedule"


@dataclass(frozen=True, slots=True)
class ScheduleRequest:
    name: str
    message: str
    cron_expression: str | None = None
    scheduled_at: str | None = None
    timezone: str | None = None
    description: str | None = None
    catch_up_missed: bool = True


class SchedulePort(Protocol):
    """What the schedule tools need; each runs inside the step transaction (``conn``). A
    refusal (bad time, a limit) is a ``ToolError`` that says what to do instead."""

    async def create_for_session(
        self, conn: AsyncConnection, context: ToolContext, request: ScheduleRequest
    ) -> JsonValue: ...

    async def list_for_session(self, conn: AsyncConnection, context: ToolContext) -> JsonValue: ...

    async def cancel_for_session(
        self, conn: AsyncConnection, context: ToolContext, ref: str
    ) -> JsonValue: ...


def _connection(context: ToolContext) -> AsyncConnection:
    if context.connection is None:
        raise ToolError("schedules are only available inside a turn")
    return context.connection


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class CreateSchedule:
    port: SchedulePort
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL
    name: str = "create_schedule"
    description: str = (
        "Schedule a message to this session: at `scheduled_at` (once; RFC 3339 with an offset, "
        "e.g. 2026-12-24T09:00:00Z) or on `cron_expression` (5 fields: minute hour "
        "day-of-month month day-of-week, read in `timezone`, an IANA name; default the "
        "session's identity's, else UTC). Each time it fires, `message` arrives as a new user "
        "turn, and you act on it then. Give exactly one of `scheduled_at` and `cron_expression`."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "description": "Unique among this session's schedules.",
                },
                "message": {"type": "string", "minLength": 1, "maxLength": 100_000},
                "cron_expression": {"type": "string", "minLength": 1, "maxLength": 200},
                "scheduled_at": {"type": "string", "minLength": 1, "maxLength": 64},
                "timezone": {"type": "string", "minLength": 1, "maxLength": 64},
                "description": {"type": "string", "maxLength": 2000},
                "catch_up_missed": {
                    "type": "boolean",
                    "description": "Fire once for times missed while the server was down "
                    "(default true).",
                },
            },
            ["name", "message"],
        )
    )

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        request = ScheduleRequest(
            name=str(arguments["name"]),
            message=str(arguments["message"]),
            cron_expression=_text(arguments.get("cron_expression")),
            scheduled_at=_text(arguments.get("scheduled_at")),
            timezone=_text(arguments.get("timezone")),
            description=_text(arguments.get("description")),
            catch_up_missed=arguments.get("catch_up_missed") is not False,
        )
        return await self.port.create_for_session(_connection(context), context, request)


@dataclass(frozen=True, slots=True)
class ListSchedules:
    port: SchedulePort
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL
    name: str = "list_schedules"
    description: str = "This session's schedules: when each fires next, and what it posts."
    parameters: JsonObject = field(default_factory=lambda: object_schema({}, []))

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        return await self.port.list_for_session(_connection(context), context)


@dataclass(frozen=True, slots=True)
class CancelSchedule:
    port: SchedulePort
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL
    name: str = "cancel_schedule"
    description: str = "Cancel one of this session's schedules, by its schedule_id or name."
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {"schedule": {"type": "string", "minLength": 1, "maxLength": 200}}, ["schedule"]
        )
    )

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        return await self.port.cancel_for_session(
            _connection(context), context, str(arguments["schedule"])
        )


def build_schedules_capability(port: SchedulePort) -> Capability:
    return Capability(
        id=CAPABILITY_ID,
        name="Session schedules",
        description=(
            "Schedule messages to this session, once or on a cron expression: work that "
            "continues when nobody is watching."
        ),
        category="automation",
        features=("schedules",),
        system_prompt_addition=(
            "You can schedule work for later with create_schedule: the message you schedule "
            "comes back to you as a new turn when it fires. Write it as an instruction to "
            "yourself that stands on its own."
        ),
        tools=(CreateSchedule(port), ListSchedules(port), CancelSchedule(port)),
    )
