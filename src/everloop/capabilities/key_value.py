"""Capability ``key_value``: a small string key-value store per session (database only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError, object_schema
from everloop.domain.messages import JsonObject, JsonValue
from everloop.errors import EverloopError
from everloop.store import session_storage as storage
from everloop.store import session_storage_rules as session_storage

MAX_LISTED = 1000

_KEY: JsonObject = {"type": "string", "minLength": 1, "maxLength": 256}


@dataclass(frozen=True, slots=True)
class _KvTool:
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        if context.connection is None:
            raise ToolError("the key-value store is only available inside a turn")
        try:
            return await self.run(context.connection, context.session_id, arguments)
        except EverloopError as exc:
            raise ToolError(exc.message) from None

    async def run(self, conn: AsyncConnection, session_id: str, arguments: Any) -> JsonValue:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class KvSet(_KvTool):
    name: str = "kv_set"
    description: str = "Store a string value under a key (replaces any value already there)."
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {"key": _KEY, "value": {"type": "string"}}, ["key", "value"]
        )
    )

    async def run(self, conn: AsyncConnection, session_id: str, arguments: Any) -> JsonValue:
        created = await session_storage.set_value(
            conn, session_id, arguments["key"], arguments["value"]
        )
        return {"key": arguments["key"], "created": created}


@dataclass(frozen=True, slots=True)
class KvGet(_KvTool):
    name: str = "kv_get"
    description: str = "Read the value stored under a key (`found: false` when there is none)."
    parameters: JsonObject = field(default_factory=lambda: object_schema({"key": _KEY}, ["key"]))

    async def run(self, conn: AsyncConnection, session_id: str, arguments: Any) -> JsonValue:
        found = await storage.get_value(conn, session_id, arguments["key"])
        if found is None:
            return {"key": arguments["key"], "found": False, "value": None}
        return {"key": found.key, "found": True, "value": found.value}


@dataclass(frozen=True, slots=True)
class KvDelete(_KvTool):
    name: str = "kv_delete"
    description: str = "Delete a key and its value."
    parameters: JsonObject = field(default_factory=lambda: object_schema({"key": _KEY}, ["key"]))

    async def run(self, conn: AsyncConnection, session_id: str, arguments: Any) -> JsonValue:
        deleted = await storage.delete_value(conn, session_id, arguments["key"])
        return {"key": arguments["key"], "deleted": deleted}


@dataclass(frozen=True, slots=True)
class KvList(_KvTool):
    name: str = "kv_list"
    description: str = "List the stored keys, optionally only those starting with `prefix`."
    parameters: JsonObject = field(
        default_factory=lambda: object_schema({"prefix": {"type": "string", "maxLength": 256}}, [])
    )

    async def run(self, conn: AsyncConnection, session_id: str, arguments: Any) -> JsonValue:
        found = await storage.list_values(
            conn, session_id, arguments.get("prefix", ""), limit=MAX_LISTED + 1
        )
        return {"keys": [kv.key for kv in found[:MAX_LISTED]], "truncated": len(found) > MAX_LISTED}


def build_key_value_capability() -> Capability:
    return Capability(
        id="key_value",
        name="Key-value store",
        description="A per-session key-value store: kv_set, kv_get, kv_delete, kv_list.",
        category="storage",
        features=("key_value",),
        tools=(KvSet(), KvGet(), KvDelete(), KvList()),
    )
