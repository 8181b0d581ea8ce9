"""Capability ``leased_resources``: named leases with a time to live, held by the session.

A lease is released when its holder releases it, when it expires (expired leases are dropped
whenever the session's leases are read and by a periodic sweep) or when the session is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError
from everloop.domain.messages import JsonObject, JsonValue
from everloop.errors import EverloopError
from everloop.store import session_storage as storage
from everloop.store import session_storage_rules as session_storage

_NAME: JsonObject = {"type": "string", "minLength": 1, "maxLength": 200}


@dataclass(frozen=True, slots=True)
class AcquireLease:
    name: str = "acquire_lease"
    description: str = (
        "Acquire (or renew) a named lease for ttl_seconds. Renewing moves its expiry; it is "
        "released by release_lease or when it expires."
    )
    parameters: JsonObject = field(
        default_factory=lambda: {
            "type": "object",
            "properties": {
                "name": _NAME,
                "ttl_seconds": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": session_storage.MAX_LEASE_SECONDS,
                },
                "metadata": {"type": "object"},
            },
            "required": ["name", "ttl_seconds"],
            "additionalProperties": False,
        }
    )
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        if context.connection is None:
            raise ToolError("leases are only available inside a turn")
        name, ttl = arguments["name"], arguments["ttl_seconds"]
        assert isinstance(name, str) and isinstance(ttl, int)  # schema-checked
        try:
            lease, created = await session_storage.acquire_lease(
                context.connection,
                context.session_id,
                name,
                ttl,
                metadata=arguments.get("metadata"),
            )
        except EverloopError as exc:
            raise ToolError(exc.message) from None
        return {"name": lease.name, "expires_at": lease.expires_at, "renewed": not created}


@dataclass(frozen=True, slots=True)
class ReleaseLease:
    name: str = "release_lease"
    description: str = "Release a named lease held by this session."
    parameters: JsonObject = field(
        default_factory=lambda: {
            "type": "object",
            "properties": {"name": _NAME},
            "required": ["name"],
            "additionalProperties": False,
        }
    )
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        if context.connection is None:
            raise ToolError("leases are only available inside a turn")
        name = arguments["name"]
        assert isinstance(name, str)
        released = await storage.delete_lease(context.connection, context.session_id, name)
        return {"name": name, "released": released}


def build_leased_resources_capability() -> Capability:
    return Capability(
        id="leased_resources",
        name="Leased resources",
        description="Named leases with a time to live, listed in the session's resources.",
        category="resources",
        features=("leased_resources",),
        tools=(AcquireLease(), ReleaseLease()),
    )
