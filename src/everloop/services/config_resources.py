"""Harnesses and agents: the layered configuration sessions run with.

Both are org-owned, named (``[a-z0-9]+(-[a-z0-9]+)*``, unique per org) and archived rather than
deleted. Built-in harnesses (``base``, ``generic``) are seeded into every org and are read-only.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.examples import (
    BUILT_IN_HARNESSES,
    DEFAULT_HARNESS_NAME,
    HARNESS_EXAMPLES,
    HarnessExample,
)
from everloop.domain.mcp import HEADER_NAMES, SEALED_HEADERS
from everloop.domain.resources import Agent, Harness, ResourceStatus
from everloop.domain.runtime_agent import Layer, harness_chain
from everloop.domain.timestamps import now
from everloop.errors import Conflict, InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.services.capability_refs import check_capability_refs
from everloop.services.mcp_servers import ScopedMcpHeaders, check_mcp_refs
from everloop.services.models import ModelService
from everloop.services.version_recorder import VersionRecorder
from everloop.store.db import Database
from everloop.store.runtime_layers import harness_parents
from everloop.store.seed_lock import lock_org_seeding
from everloop.store.sql import Store
from everloop.store.tables import agents, harnesses


def _is_id(prefix: ids.Prefix, value: str) -> bool:
    return ids.is_valid(prefix, value)


class HarnessService:
    def __init__(
        self,
        db: Database,
        store: Store,
        models: ModelService,
        known_capabilities: Container[str],
        mcp_headers: ScopedMcpHeaders,
    ) -> None:
        self._db = db
        self._store = store
        self._models = models
        self._known_capabilities = known_capabilities
        self._mcp_headers = mcp_headers

    async def seed_built_ins(self, org_id: str) -> None:
        """Insert the built-in harnesses an org lacks, and bring the ones it has up to this
        version's definition (they are read-only: a new version may add a capability)."""
        async with self._db.write() as conn:
            await lock_org_seeding(conn, org_id)
            for spec in BUILT_IN_HARNESSES:
                found = await self._store.get_harness(conn, org_id, name=spec["name"])
                if found is None:
                    await self._store.insert_harness(
                        conn, _harness_row(org_id, ids.new_id("harness"), spec, built_in=True)
                    )
                elif found.is_built_in and (
                    found.capabilities != spec["capabilities"]
                    or found.system_prompt != spec["system_prompt"]
                    or found.description != spec["description"]
                ):
                    values = {k: spec[k] for k in ("capabilities", "system_prompt", "description")}
                    await self._store.update_row(
                        conn, harnesses, org_id, found.id, {**values, "updated_at": now()}
                    )

    @staticmethod
    def examples() -> tuple[HarnessExample, ...]:
        """The built-in harness examples (``domain.examples``): the same for every org."""
        return HARNESS_EXAMPLES

    async def create(self, caller: Caller, fields: dict[str, Any]) -> Harness:
        harness_id = fields.pop("id", None) or ids.new_id("harness")
        ids.parse("harness", harness_id, field="id")
        check_capability_refs(self._known_capabilities, fields.get("capabilities") or [])
        if "mcp_servers" in fields:
            fields["mcp_servers"] = self._mcp_headers.seal(
                caller.organization_id, fields["mcp_servers"]
            )
        async with self._db.write() as conn:
            if await self._store.id_exists(conn, harnesses, harness_id):
                raise Conflict(f"harness id '{harness_id}' is already in use", field="id")
            await self._check_name_free(conn, caller.organization_id, fields["name"])
            await check_mcp_refs(conn, caller.organization_id, fields.get("capabilities"))
            await self._models.ensure_exists(
                conn, caller.organization_id, fields.get("default_model_id"), "default_model_id"
            )
            await self._check_parent(
                conn, caller.organization_id, fields.get("parent_harness_id"), harness_id
            )
            await _insert(
                self._store.insert_harness(
                    conn, _harness_row(caller.organization_id, harness_id, fields)
                ),
                fields["name"],
            )
            created = await self._store.get_harness(
                conn, caller.organization_id, harness_id=harness_id
            )
        assert created is not None
        return created

    async def get(
        self, caller: Caller, id_or_name: str, conn: AsyncConnection | None = None
    ) -> Harness:
        if conn is None:
            async with self._db.read() as own:
                return await self.get(caller, id_or_name, own)
        org = caller.organization_id
        if id_or_name.startswith("harness_"):
            ids.parse("harness", id_or_name, field="harness_id")
            found = await self._store.get_harness(conn, org, harness_id=id_or_name)
        else:
            found = await self._store.get_harness(conn, org, name=id_or_name)
        if found is None:
            raise NotFound.of("harness", id_or_name)
        return found

    async def list(
        self, caller: Caller, *, search: str | None, include_archived: bool
    ) -> list[Harness]:
        async with self._db.read() as conn:
            return await self._store.list_harnesses(
                conn, caller.organization_id, search=search, include_archived=include_archived
            )

    async def update(self, caller: Caller, id_or_name: str, fields: dict[str, Any]) -> Harness:
        check_capability_refs(self._known_capabilities, fields.get("capabilities") or [])
        async with self._db.write() as conn:
            current = await self.get(caller, id_or_name, conn)
            if current.is_built_in:
                raise Conflict(
                    f"harness '{current.name}' is built in and read-only; copy it to change it"
                )
            await check_mcp_refs(conn, caller.organization_id, fields.get("capabilities"))
            if "mcp_servers" in fields:
                fields["mcp_servers"] = self._mcp_headers.seal(
                    caller.organization_id, fields["mcp_servers"], current.mcp_servers
                )
            if "name" in fields and fields["name"] != current.name:
                await self._check_name_free(
                    conn, caller.organization_id, fields["name"], except_id=current.id
                )
            if "parent_harness_id" in fields:
                await self._check_parent(
                    conn, caller.organization_id, fields["parent_harness_id"], current.id
                )
            if "default_model_id" in fields:
                await self._models.ensure_exists(
                    conn, caller.organization_id, fields["default_model_id"], "default_model_id"
                )
            values = _status_values(fields)
            values["updated_at"] = now()
            await _insert(
                self._store.update_row(conn, harnesses, caller.organization_id, current.id, values),
                fields.get("name", ""),
            )
            updated = await self._store.get_harness(
                conn, caller.organization_id, harness_id=current.id
            )
        assert updated is not None
        return updated

    async def archive(self, caller: Caller, id_or_name: str) -> None:
        async with self._db.write() as conn:
            current = await self.get(caller, id_or_name, conn)
            if current.is_built_in:
                raise Conflict(f"harness '{current.name}' is built in and cannot be deleted")
            if current.status is ResourceStatus.ACTIVE:
                ts = now()
                await self._store.update_row(
                    conn,
                    harnesses,
                    caller.organization_id,
                    current.id,
                    {"status": ResourceStatus.ARCHIVED.value, "archived_at": ts, "updated_at": ts},
                )

    async def resolve_for_use(
        self,
        conn: AsyncConnection,
        caller: Caller,
        *,
        harness_id: str | None,
        harness_name: str | None,
    ) -> Harness:
        """The harness a new agent or session names; it must exist and be active."""
        if harness_id and harness_name:
            raise InvalidInput("give harness_id or harness_name, not both", field="harness_id")
        if harness_id:
            ids.parse("harness", harness_id, field="harness_id")
        harness = await self.get(caller, harness_id or harness_name or DEFAULT_HARNESS_NAME, conn)
        if harness.status is not ResourceStatus.ACTIVE:
            raise InvalidInput(
                f"harness '{harness.name}' is archived and cannot be used", field="harness_id"
            )
        return harness

    async def _check_name_free(
        self, conn: AsyncConnection, org_id: str, name: str, except_id: str | None = None
    ) -> None:
        if await self._store.name_taken(conn, harnesses, org_id, name, except_id=except_id):
            raise Conflict(f"a harness named '{name}' already exists", field="name")

    async def _check_parent(
        self, conn: AsyncConnection, org_id: str, parent_id: str | None, own_id: str
    ) -> None:
        if parent_id is None:
            return
        ids.parse("harness", parent_id, field="parent_harness_id")
        if parent_id == own_id:
            raise InvalidInput("a harness cannot be its own parent", field="parent_harness_id")
        if await self._store.get_harness(conn, org_id, harness_id=parent_id) is None:
            raise NotFound.of("harness", parent_id)
        # Every chain through this harness, with its new parent, must stay acyclic and at most
        # MAX_HARNESS_DEPTH deep (its descendants' chains grow too).
        parents = await harness_parents(conn, org_id)
        parents[own_id] = parent_id
        layers = {hid: Layer(kind="harness", id=hid, parent_id=p) for hid, p in parents.items()}
        for harness_id in layers:
            harness_chain(harness_id, layers)


class AgentService:
    def __init__(
        self,
        db: Database,
        store: Store,
        harness_service: HarnessService,
        models: ModelService,
        known_capabilities: Container[str],
        mcp_headers: ScopedMcpHeaders,
        versions: VersionRecorder | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._harnesses = harness_service
        self._models = models
        self._known_capabilities = known_capabilities
        self._mcp_headers = mcp_headers
        self._versions = versions

    async def create(self, caller: Caller, fields: dict[str, Any]) -> tuple[Agent, bool]:
        """Create an agent, or update the one the request names (``POST /v1/agents`` upserts).

        With a client-supplied id that exists in this org, that agent is updated (the SDK's
        ``apply``); without an id, the org's agent of that name is (``apply_by_name``; an
        archived one is brought back). A name held by another agent than the id's is a 409.
        Returns the agent and whether it was created.
        """
        check_capability_refs(self._known_capabilities, fields.get("capabilities") or [])
        agent_id = fields.pop("id", None)
        if agent_id is not None:
            ids.parse("agent", agent_id, field="id")
        existing = await self._existing(caller, agent_id=agent_id, name=fields["name"])
        if existing is not None:
            return await self._apply(caller, existing, fields), False
        try:
            return await self._insert(caller, agent_id or ids.new_id("agent"), dict(fields)), True
        except Conflict as exc:
            if agent_id is not None or exc.field != "name":
                raise
            # Another request created this name between our read and our write: apply to it.
            existing = await self._existing(caller, agent_id=None, name=fields["name"])
            if existing is None:
                raise
            return await self._apply(caller, existing, fields), False

    async def _existing(self, caller: Caller, *, agent_id: str | None, name: str) -> Agent | None:
        async with self._db.read() as conn:
            if agent_id is not None:
                return await self._store.get_agent(conn, caller.organization_id, agent_id=agent_id)
            return await self._store.get_agent(conn, caller.organization_id, name=name)

    async def _apply(self, caller: Caller, existing: Agent, fields: dict[str, Any]) -> Agent:
        if existing.status is not ResourceStatus.ACTIVE:
            fields["status"] = ResourceStatus.ACTIVE.value
        return await self.update(caller, existing.id, fields)

    async def _insert(
        self,
        caller: Caller,
        agent_id: str,
        fields: dict[str, Any],
        *,
        change_kind: str = "auto",
        source_version_id: str | None = None,
    ) -> Agent:
        """Insert a new agent and record its first version (``change_kind``; a fork names the
        version it came from as ``source_version_id``)."""
        org = caller.organization_id
        if "mcp_servers" in fields:
            fields["mcp_servers"] = self._mcp_headers.seal(org, fields["mcp_servers"])
        async with self._db.write() as conn:
            if await self._store.id_exists(conn, agents, agent_id):
                raise Conflict(f"agent id '{agent_id}' is already in use", field="id")
            if await self._store.name_taken(conn, agents, org, fields["name"]):
                raise Conflict(f"an agent named '{fields['name']}' already exists", field="name")
            await check_mcp_refs(conn, org, fields.get("capabilities"))
            harness = await self._harnesses.resolve_for_use(
                conn,
                caller,
                harness_id=fields.pop("harness_id", None),
                harness_name=fields.pop("harness_name", None),
            )
            ts = now()
            row = {
                "id": agent_id,
                "organization_id": org,
                "harness_id": harness.id,
                "display_name": None,
                "description": None,
                "default_model_id": None,
                "default_version_id": None,
                "tags": [],
                "capabilities": [],
                "tools": [],
                "initial_files": [],
                "network_access": None,
                "mcp_servers": {},
                "max_iterations": None,
                "parallel_tool_calls": None,
                "status": ResourceStatus.ACTIVE.value,
                "created_at": ts,
                "updated_at": ts,
                "archived_at": None,
                **fields,
            }
            _check_tool_names(row["tools"])
            await self._models.ensure_exists(conn, org, row["default_model_id"], "default_model_id")
            await _insert(self._store.insert_agent(conn, row), fields["name"])
            created = await self._store.get_agent(conn, org, agent_id=agent_id)
            assert created is not None
            if self._versions is not None:
                await self._versions.record(
                    conn,
                    created,
                    change_kind=change_kind,
                    principal_id=caller.principal_id,
                    source_version_id=source_version_id,
                )
        return created

    async def get(
        self, caller: Caller, agent_id: str, conn: AsyncConnection | None = None
    ) -> Agent:
        ids.parse("agent", agent_id, field="agent_id")
        if conn is None:
            async with self._db.read() as own:
                found = await self._store.get_agent(own, caller.organization_id, agent_id=agent_id)
        else:
            found = await self._store.get_agent(conn, caller.organization_id, agent_id=agent_id)
        if found is None:
            raise NotFound.of("agent", agent_id)
        return found

    async def get_by_name(self, conn: AsyncConnection, caller: Caller, name: str) -> Agent:
        found = await self._store.get_agent(conn, caller.organization_id, name=name)
        if found is None:
            raise NotFound.of("agent", name)
        return found

    async def list(
        self, caller: Caller, *, search: str | None, include_archived: bool, offset: int, limit: int
    ) -> tuple[list[Agent], int]:
        async with self._db.read() as conn:
            return await self._store.list_agents(
                conn,
                caller.organization_id,
                search=search,
                include_archived=include_archived,
                offset=offset,
                limit=limit,
            )

    async def put(
        self, caller: Caller, agent_id: str, fields: dict[str, Any]
    ) -> tuple[Agent, bool]:
        """Create-or-update with a client-supplied id (``PUT /agents/{id}``)."""
        fields["id"] = agent_id
        try:
            return await self.create(caller, fields)
        except Conflict as exc:
            if exc.field != "id":
                raise
            # The id is another org's agent: answer as if it did not exist, never reveal it.
            raise NotFound.of("agent", agent_id) from None

    async def update(self, caller: Caller, agent_id: str, fields: dict[str, Any]) -> Agent:
        check_capability_refs(self._known_capabilities, fields.get("capabilities") or [])
        org = caller.organization_id
        async with self._db.write() as conn:
            current = await self.get(caller, agent_id, conn)
            await check_mcp_refs(conn, org, fields.get("capabilities"))
            if "mcp_servers" in fields:
                fields["mcp_servers"] = self._mcp_headers.seal(
                    org, fields["mcp_servers"], current.mcp_servers
                )
            if (
                "name" in fields
                and fields["name"] != current.name
                and await self._store.name_taken(
                    conn, agents, org, fields["name"], except_id=current.id
                )
            ):
                raise Conflict(f"an agent named '{fields['name']}' already exists", field="name")
            harness_id = fields.pop("harness_id", None)
            harness_name = fields.pop("harness_name", None)
            if harness_id or harness_name:
                harness = await self._harnesses.resolve_for_use(
                    conn, caller, harness_id=harness_id, harness_name=harness_name
                )
                fields["harness_id"] = harness.id
            if "tools" in fields:
                _check_tool_names(fields["tools"])
            if "default_model_id" in fields:
                await self._models.ensure_exists(
                    conn, org, fields["default_model_id"], "default_model_id"
                )
            values = _status_values(fields)
            values["updated_at"] = now()
            await _insert(
                self._store.update_row(conn, agents, org, current.id, values),
                fields.get("name", ""),
            )
            updated = await self._store.get_agent(conn, org, agent_id=current.id)
            assert updated is not None
            if self._versions is not None:
                await self._versions.record(
                    conn, updated, change_kind="auto", principal_id=caller.principal_id
                )
        return updated

    async def copy(self, caller: Caller, agent_id: str) -> Agent:
        """A new agent with ``agent_id``'s configuration, named ``{name}-copy`` (``-copy-2``...
        when taken); MCP header values are copied sealed afresh, never shown."""
        org = caller.organization_id
        source = await self.get(caller, agent_id)
        name = await self.free_name(caller, f"{source.name[:59].rstrip('-')}-copy")
        fields = {
            **config_fields(source),
            "name": name,
            "display_name": f"{source.display_name or source.name} (copy)"[:200],
            "harness_id": source.harness_id,
            "mcp_servers": self.opened_mcp_servers(org, source.mcp_servers),
        }
        return await self._insert(caller, ids.new_id("agent"), fields)

    def opened_mcp_servers(self, org_id: str, servers: dict[str, Any]) -> dict[str, Any]:
        """A stored ``mcpServers`` map with its header values opened, to be sealed afresh for
        a new agent (a copy or a fork): never returned to a caller."""
        return {
            server: {
                **{k: v for k, v in entry.items() if k not in (HEADER_NAMES, SEALED_HEADERS)},
                "headers": self._mcp_headers.open(org_id, server, entry),
            }
            for server, entry in servers.items()
        }

    async def free_name(self, caller: Caller, base: str) -> str:
        """``base``, or ``base-2``, ``base-3``... whichever no agent of the org holds (cut to
        fit 64 characters)."""
        async with self._db.read() as conn:
            for n in range(1, 1000):
                suffix = "" if n == 1 else f"-{n}"
                candidate = base[: 64 - len(suffix)].rstrip("-") + suffix
                if not await self._store.name_taken(
                    conn, agents, caller.organization_id, candidate
                ):
                    return candidate
        raise Conflict(f"too many agents are named '{base}'", field="name")

    async def create_new(
        self,
        caller: Caller,
        fields: dict[str, Any],
        *,
        change_kind: str = "auto",
        source_version_id: str | None = None,
    ) -> Agent:
        """A new agent, never an update: a name the org uses is a 409. Its first version is
        recorded with ``change_kind`` (``import``, ``fork``...)."""
        check_capability_refs(self._known_capabilities, fields.get("capabilities") or [])
        fields.pop("id", None)
        return await self._insert(
            caller,
            ids.new_id("agent"),
            fields,
            change_kind=change_kind,
            source_version_id=source_version_id,
        )

    async def archive(self, caller: Caller, agent_id: str) -> None:
        async with self._db.write() as conn:
            current = await self.get(caller, agent_id, conn)
            if current.status is ResourceStatus.ACTIVE:
                ts = now()
                await self._store.update_row(
                    conn,
                    agents,
                    caller.organization_id,
                    current.id,
                    {"status": ResourceStatus.ARCHIVED.value, "archived_at": ts, "updated_at": ts},
                )


def _harness_row(
    org_id: str, harness_id: str, fields: dict[str, Any], *, built_in: bool = False
) -> dict[str, Any]:
    ts = now()
    return {
        "id": harness_id,
        "organization_id": org_id,
        "display_name": None,
        "description": None,
        "system_prompt": None,
        "parent_harness_id": None,
        "default_model_id": None,
        "tags": [],
        "capabilities": [],
        "initial_files": [],
        "network_access": None,
        "mcp_servers": {},
        "parallel_tool_calls": None,
        "embedder_metadata": {},
        "is_built_in": built_in,
        "status": ResourceStatus.ACTIVE.value,
        "created_at": ts,
        "updated_at": ts,
        "archived_at": None,
        **fields,
    }


def config_fields(agent: Agent) -> dict[str, Any]:
    """The fields that configure ``agent`` (no id, name, harness, status or timestamps)."""
    return {
        "display_name": agent.display_name,
        "description": agent.description,
        "system_prompt": agent.system_prompt,
        "default_model_id": agent.default_model_id,
        "tags": list(agent.tags),
        "capabilities": list(agent.capabilities),
        "tools": list(agent.tools),
        "initial_files": list(agent.initial_files),
        "network_access": agent.network_access,
        "max_iterations": agent.max_iterations,
        "parallel_tool_calls": agent.parallel_tool_calls,
    }


def _status_values(fields: dict[str, Any]) -> dict[str, Any]:
    values = dict(fields)
    status = values.get("status")
    if status == ResourceStatus.ARCHIVED.value:
        values["archived_at"] = now()
    elif status == ResourceStatus.ACTIVE.value:
        values["archived_at"] = None
    return values


def _check_tool_names(tools: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for tool in tools:
        if tool["name"] in seen:
            raise InvalidInput(f"tool '{tool['name']}' is defined twice", field="tools")
        seen.add(tool["name"])


async def _insert(operation: Any, name: str) -> None:
    """Run an insert/update; a unique-name race that slipped past the check is a 409."""
    try:
        await operation
    except IntegrityError as exc:
        raise Conflict(f"the name '{name}' is already in use", field="name") from exc
