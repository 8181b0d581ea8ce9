"""Capability ``current_time``: tells the model the current date and time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError
from everloop.domain.messages import JsonObject, JsonValue

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class GetCurrentTime:
    """Tool ``get_current_time``: ``{"iso", "timezone", "unix"}`` in an optional IANA zone."""

    clock: Clock = field(default=_utc_now, repr=False)
    name: str = "get_current_time"
    side_effect: ClassVar[SideEffect] = SideEffect.PURE
    description: str = (
        "Get the current date and time. Optionally pass an IANA timezone name such as "
        "'Europe/Paris'; the default is UTC."
    )
    parameters: JsonObject = field(
        default_factory=lambda: {
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "IANA timezone name, e.g. 'America/New_York'. Default UTC.",
                }
            },
            "additionalProperties": False,
        }
    )

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        zone_name = arguments.get("timezone") or "UTC"
        assert isinstance(zone_name, str)  # guaranteed by the schema
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"unknown timezone: {zone_name!r}") from None
        now = self.clock().astimezone(zone)
        return {"iso": now.isoformat(), "timezone": zone_name, "unix": int(now.timestamp())}


def build_current_time_capability(clock: Clock = _utc_now) -> Capability:
    return Capability(
        id="current_time",
        name="Current time",
        description="Lets the agent look up the current date and time in any timezone.",
        category="utilities",
        tools=(GetCurrentTime(clock=clock),),
    )
