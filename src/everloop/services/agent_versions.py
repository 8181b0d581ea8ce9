"""Agent versions: recording snapshots, listing, diffing, choosing the default, rolling back,
forking a version into a new agent."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.agent_versions import (
    CHANGE_KINDS,
    FORKED_KEYS,
    RESTORED_KEYS,
    AgentVersion,
    diff_configs,
)
from everloop.domain.resources import Agent
from everloop.domain.timestamps import now
from everloop.errors import InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.services.config_resources import AgentService
from everloop.services.version_recorder import VersionRecorder
from everloop.store import agent_versions as version_store
from everloop.store.db import Database
from everloop.store.sql import Store
from everloop.store.tables import agents


async def captured_version_id(conn: AsyncConnection, agent: Agent) -> str | None:
    """The version a session binding ``agent`` runs: its default version, else its latest."""
    if agent.default_version_id is not None:
        return agent.default_version_id
    latest = await version_store.latest_version(conn, agent.id)
    return latest.id if latest else None


class AgentVersionService:
    def __init__(
        self, db: Database, store: Store, agents_service: AgentService, recorder: VersionRecorder
    ) -> None:
        self._db = db
        self._store = store
        self._agents = agents_service
        self._recorder = recorder

    async def _agent(self, conn: AsyncConnection, caller: Caller, agent_ref: str) -> Agent:
        if agent_ref.startswith("agent_"):
            return await self._agents.get(caller, agent_ref, conn)
        return await self._agents.get_by_name(conn, caller, agent_ref)

    async def _version(
        self, conn: AsyncConnection, caller: Caller, agent: Agent, version_id: str, field: str
    ) -> AgentVersion:
        ids.parse("agentver", version_id, field=field)
        found = await version_store.get_version(
            conn, caller.organization_id, version_id, agent_id=agent.id
        )
        if found is None:
            raise NotFound.of("agent version", version_id)
        return found

    async def list(self, caller: Caller, agent_ref: str) -> list[AgentVersion]:
        async with self._db.read() as conn:
            agent = await self._agent(conn, caller, agent_ref)
            return await version_store.list_versions(conn, caller.organization_id, agent.id)

    async def create(
        self, caller: Caller, agent_ref: str, *, change_kind: str | None, summary: str | None
    ) -> AgentVersion:
        kind = change_kind or "manual"
        if kind not in CHANGE_KINDS:
            raise InvalidInput(f"unknown change_kind '{kind}'", field="change_kind")
        async with self._db.write() as conn:
            agent = await self._agent(conn, caller, agent_ref)
            return await self._recorder.record(
                conn, agent, change_kind=kind, principal_id=caller.principal_id, summary=summary
            )

    async def set_default(self, caller: Caller, agent_ref: str, version_id: str) -> Agent:
        async with self._db.write() as conn:
            agent = await self._agent(conn, caller, agent_ref)
            await self._version(conn, caller, agent, version_id, "version_id")
            await self._store.update_row(
                conn,
                agents,
                caller.organization_id,
                agent.id,
                {"default_version_id": version_id, "updated_at": now()},
            )
            return await self._agents.get(caller, agent.id, conn)

    async def diff(
        self, caller: Caller, agent_ref: str, from_version_id: str, to_version_id: str
    ) -> dict[str, Any]:
        async with self._db.read() as conn:
            agent = await self._agent(conn, caller, agent_ref)
            before = await self._version(conn, caller, agent, from_version_id, "from_version_id")
            after = await self._version(conn, caller, agent, to_version_id, "to_version_id")
        return {
            "from_version_id": before.id,
            "to_version_id": after.id,
            "authored_diff": diff_configs(before.authored_config, after.authored_config),
            "resolved_diff": diff_configs(before.resolved_config, after.resolved_config),
        }

    async def rollback(
        self,
        caller: Caller,
        agent_ref: str,
        version_id: str,
        *,
        save_version: bool = False,
        summary: str | None = None,
    ) -> Agent:
        """Restore the agent's config from ``version_id`` and record that as a new version."""
        async with self._db.write() as conn:
            agent = await self._agent(conn, caller, agent_ref)
            source = await self._version(conn, caller, agent, version_id, "version_id")
            if save_version:
                await self._recorder.record(
                    conn, agent, change_kind="manual", principal_id=caller.principal_id
                )
            values = {key: source.authored_config.get(key) for key in RESTORED_KEYS}
            values["updated_at"] = now()
            await self._store.update_row(conn, agents, caller.organization_id, agent.id, values)
            restored = await self._agents.get(caller, agent.id, conn)
            await self._recorder.record(
                conn,
                restored,
                change_kind="rollback",
                principal_id=caller.principal_id,
                summary=summary,
                source_version_id=source.id,
            )
            return restored

    async def fork(
        self,
        caller: Caller,
        agent_ref: str,
        version_id: str,
        *,
        name: str,
        display_name: str | None = None,
        description: str | None = None,
    ) -> Agent:
        """A new agent named ``name`` from ``version_id``'s authored config; its first version
        is a ``fork`` whose ``source_version_id`` is ``version_id``. The version's MCP header
        values are opened and sealed afresh for the new agent, never shown."""
        async with self._db.read() as conn:
            agent = await self._agent(conn, caller, agent_ref)
            source = await self._version(conn, caller, agent, version_id, "version_id")
        config = source.authored_config
        fields = {key: config.get(key) for key in FORKED_KEYS}
        fields["name"] = name
        if display_name is not None:
            fields["display_name"] = display_name
        if description is not None:
            fields["description"] = description
        fields["mcp_servers"] = self._agents.opened_mcp_servers(
            caller.organization_id, config.get("mcp_servers") or {}
        )
        return await self._agents.create_new(
            caller, fields, change_kind="fork", source_version_id=source.id
        )
