"""Capability ``memory``: notes that outlive a conversation (``remember``, ``recall``,
``forget``), kept in the organization's memories (``/v1/memories``).

Config: ``{"memories": [{"name": "team-notes", "mode": "read_write"}, {"id": "mem_...",
"mode": "read_only"}]}`` names the memories the agent uses (``mode`` defaults to
``read_write``; a memory with a git source is read-only whatever the mode). Without a list, the
agent gets one implicit memory named after its agent id (``agent_<hex>``), created by its first
``remember``; a session without an agent then has no memory (a readable tool error).

``remember`` writes into the first writable memory (or the one named), ``recall`` searches all
of them (every word of the query, case-insensitive; ranked by how many words match, then by
recency), ``forget`` deletes a note. The tools only touch everloop's database and run inside the
step transaction that records them: exactly once, even across crashes (``SideEffect``).

``resolve_memory_path`` maps a ``/memory/<name>/...`` path of the file tools to the memory and
the path inside it, with the mount's mode, for the file system capability to call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError, object_schema
from everloop.domain.files import normalize_path
from everloop.domain.memories import Memory
from everloop.domain.messages import JsonObject, JsonValue
from everloop.errors import EverloopError
from everloop.store import memories as memory_store
from everloop.store.memory_files import MemoryFiles, MemoryLimits

CAPABILITY_ID = "memory"
MOUNT_ROOT = "/memory"
MAX_NOTE_BYTES = 64 * 1024
MAX_RECALLED = 50
RECALL_CHARS = 2000

CONFIG_SCHEMA: JsonObject = {
    "type": "object",
    "properties": {
        "memories": {
            "type": "array",
            "maxItems": 20,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "id": {"type": "string", "minLength": 1, "maxLength": 48},
                    "mode": {"enum": ["read_only", "read_write"]},
                },
                "additionalProperties": False,
            },
        }
    },
    "additionalProperties": False,
}

_MEMORY_ARG: JsonObject = {
    "type": "string",
    "maxLength": 100,
    "description": "The memory's name (default: the agent's first writable memory).",
}


@dataclass(frozen=True, slots=True)
class Mount:
    """A memory as a session sees it: ``writable`` only for a ``read_write`` mount of a
    memory without a git source."""

    memory: Memory
    writable: bool
    why_readonly: str | None


def implicit_memory_name(agent_id: str) -> str:
    return agent_id


async def mounts(
    conn: AsyncConnection,
    org_id: str,
    agent_id: str | None,
    configs: Mapping[str, Mapping[str, Any]],
    *,
    create_implicit: bool = False,
) -> list[Mount]:
    """The memories a session uses, in config order (``ToolError`` for one that is unknown or
    archived); the implicit agent memory when the config names none."""
    entries = (configs.get(CAPABILITY_ID) or {}).get("memories") or []
    found: list[Mount] = []
    for entry in entries:
        ref = entry.get("id") or entry.get("name") or ""
        memory = await (
            memory_store.get(conn, org_id, ref)
            if entry.get("id")
            else memory_store.get_by_name(conn, org_id, ref)
        )
        if memory is None or memory.status != "active":
            state = "archived" if memory is not None else "not found"
            raise ToolError(f"memory '{ref}' named in the memory capability's config is {state}")
        found.append(_mount(memory, entry.get("mode", "read_write")))
    if entries:
        return found
    if agent_id is None:
        raise ToolError(
            "this session has no agent, so no implicit memory: name memories in the memory "
            "capability's config"
        )
    name = implicit_memory_name(agent_id)
    if create_implicit:
        memory = await memory_store.ensure_manual(
            conn, org_id, name, f"Notes of agent {agent_id} (the memory capability's own)"
        )
    else:
        memory = await memory_store.get_by_name(conn, org_id, name)
    return [_mount(memory, "read_write")] if memory is not None else []


def _mount(memory: Memory, mode: str) -> Mount:
    if memory.is_readonly:
        why = f"memory '{memory.name}' is synced from git and is read-only"
        return Mount(memory, False, why)
    if mode == "read_only":
        return Mount(memory, False, f"memory '{memory.name}' is mounted read-only")
    return Mount(memory, True, None)


def _pick(found: list[Mount], name: str | None, *, writable: bool) -> Mount:
    if name:
        for mount in found:
            if mount.memory.name == name:
                if writable and not mount.writable:
                    raise ToolError(f"{mount.why_readonly}; it cannot be written")
                return mount
        raise ToolError(f"no memory '{name}' here: {', '.join(m.memory.name for m in found)}")
    if writable:
        for mount in found:
            if mount.writable:
                return mount
        reasons = "; ".join(m.why_readonly or "" for m in found)
        raise ToolError(f"no writable memory here ({reasons})")
    raise ToolError("name a memory")


async def resolve_memory_path(
    conn: AsyncConnection,
    context: ToolContext,
    path: str,
    limits: MemoryLimits,
) -> tuple[MemoryFiles, str] | None:
    """For the file tools: a path under ``/memory/<name>/`` as (the memory's files, the path in
    it); None for any other path. The files refuse writes (a readable 403 ``Forbidden``) when
    the mount is read-only. ``ToolError`` for a memory this session does not use."""
    normalized = "/" + "/".join(s for s in path.split("/") if s not in ("", "."))
    if normalized != MOUNT_ROOT and not normalized.startswith(MOUNT_ROOT + "/"):
        return None
    rest = normalized[len(MOUNT_ROOT) :].strip("/")
    name, _, inner = rest.partition("/")
    if not name:
        raise ToolError("name a memory: /memory/<name>/...")
    found = await mounts(conn, context.org_id, context.agent_id, context.capability_configs)
    mount = _pick(found, name, writable=False)
    files = MemoryFiles(conn, mount.memory.id, limits, readonly=mount.why_readonly)
    return files, normalize_path("/" + inner)


@dataclass(frozen=True, slots=True)
class _MemoryTool:
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL
    limits: MemoryLimits = field(default_factory=MemoryLimits)

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        if context.connection is None:
            raise ToolError("memories are only available inside a turn")
        try:
            return await self.run(context.connection, context, arguments)
        except EverloopError as exc:
            raise ToolError(exc.message) from None

    async def run(self, conn: AsyncConnection, context: ToolContext, arguments: Any) -> JsonValue:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Remember(_MemoryTool):
    name: str = "remember"
    description: str = (
        "Write a note into long-term memory, kept across conversations. Give `content`; "
        "optionally a `path` (e.g. /people/ada.md, replaced if it exists) and a `memory`."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {
                "content": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE_BYTES},
                "path": {"type": "string", "maxLength": 1000},
                "memory": _MEMORY_ARG,
            },
            ["content"],
        )
    )

    async def run(self, conn: AsyncConnection, context: ToolContext, arguments: Any) -> JsonValue:
        found = await mounts(
            conn,
            context.org_id,
            context.agent_id,
            context.capability_configs,
            create_implicit=True,
        )
        mount = _pick(found, arguments.get("memory"), writable=True)
        path = arguments.get("path") or f"/notes/{ids.uuid7_hex()}.md"
        files = MemoryFiles(conn, mount.memory.id, self.limits)
        entry, created = await files.write(path, arguments["content"].encode("utf-8"))
        return {"memory": mount.memory.name, "path": entry.path, "created": created}


@dataclass(frozen=True, slots=True)
class Recall(_MemoryTool):
    name: str = "recall"
    description: str = (
        "Search long-term memory for notes about something: every word of `query` is looked "
        "for (case-insensitive); the best and newest matches come first. An empty query lists "
        "the newest notes."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {
                "query": {"type": "string", "maxLength": 1000},
                "memory": _MEMORY_ARG,
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RECALLED},
            },
            ["query"],
        )
    )

    async def run(self, conn: AsyncConnection, context: ToolContext, arguments: Any) -> JsonValue:
        found = await mounts(conn, context.org_id, context.agent_id, context.capability_configs)
        if arguments.get("memory"):
            found = [_pick(found, arguments["memory"], writable=False)]
        limit = int(arguments.get("limit") or 10)
        hits: list[tuple[int, str, JsonObject]] = []
        for mount in found:
            files = MemoryFiles(conn, mount.memory.id, self.limits)
            for hit in await files.recall(arguments["query"], limit=limit):
                text = hit.content
                item: JsonObject = {
                    "memory": mount.memory.name,
                    "path": hit.path,
                    "content": text[:RECALL_CHARS],
                    "truncated": len(text) > RECALL_CHARS,
                    "updated_at": hit.updated_at,
                    "score": hit.score,
                }
                hits.append((hit.score, hit.updated_at, item))
        hits.sort(key=lambda h: (h[0], h[1]), reverse=True)
        return {"results": [item for _, _, item in hits[:limit]]}


@dataclass(frozen=True, slots=True)
class Forget(_MemoryTool):
    name: str = "forget"
    description: str = "Delete a note from long-term memory by its `path` (as recall shows it)."
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {"path": {"type": "string", "minLength": 1, "maxLength": 1000}, "memory": _MEMORY_ARG},
            ["path"],
        )
    )

    async def run(self, conn: AsyncConnection, context: ToolContext, arguments: Any) -> JsonValue:
        found = await mounts(conn, context.org_id, context.agent_id, context.capability_configs)
        mount = _pick(found, arguments.get("memory"), writable=True)
        files = MemoryFiles(conn, mount.memory.id, self.limits)
        await files.delete(arguments["path"])
        return {"memory": mount.memory.name, "path": arguments["path"], "deleted": True}


def build_memory_capability(limits: MemoryLimits) -> Capability:
    return Capability(
        id=CAPABILITY_ID,
        name="Memory",
        description=(
            "Long-term memory across conversations: remember, recall, forget (notes kept in "
            "the organization's memories)."
        ),
        category="storage",
        features=("memory",),
        system_prompt_addition=(
            "You have long-term memory that outlives this conversation: `remember` what is "
            "worth keeping, `recall` before answering from past knowledge, `forget` what is "
            "wrong or no longer true."
        ),
        tools=(Remember(limits=limits), Recall(limits=limits), Forget(limits=limits)),
        config_schema=CONFIG_SCHEMA,
    )
