"""Agent versions: recording snapshots, listing, diffing, choosing the default, rolling back."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.agent_versions import (
    CHANGE_KINDS,
    PUBLISHED_KINDS,
    RESTORED_KEYS,
    AgentVersion,
    authored_config,
    config_hash,
    diff_configs,
    next_semver,
)
from everloop.domain.resources import Agent
from everloop.domain.runtime_agent import runtime_agent_to_json
from everloop.domain.timestamps import now
from everloop.engine.assembly import Assembler
from everloop.errors import InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.services.config_resources import AgentService
from everloop.store import agent_versions as version_store
from everloop.store.db import Database
from everloop.store.runtime_layers import agent_layer, load_harness_chain
from everloop.store.sql import Store
from everloop.store.tables import agents


class VersionRecorder:
    """Writes an agent's snapshot in the caller's transaction. Assembling the agent on its
    harness chain is also the validation of an agent create or update: a harness cycle, an
    unknown capability or two tools of one name is a 422 and nothing is written."""

    def __init__(self, assembler: Assembler) -> None:
        self._assembler = assembler

    async def record(
        self,
        conn: AsyncConnection,
        agent: Agent,
        *,
        change_kind: str,
        principal_id: str | None,
        summary: str | None = None,
        source_version_id: str | None = None,
    ) -> AgentVersion:
        authored = authored_config(asdict(agent))
        chain = await load_harness_chain(conn, agent.organization_id, agent.harness_id)
        runtime = self._assembler.assemble(harnesses=chain, agent=agent_layer(authored, agent.id))
        previous = await version_store.latest_version(conn, agent.id)
        semver = next_semver(
            (previous.semver_major, previous.semver_minor, previous.semver_patch)
            if previous
            else None,
            change_kind,
        )
        version = AgentVersion(
            id=ids.new_id("agentver"),
            agent_id=agent.id,
            organization_id=agent.organization_id,
            version_number=(previous.version_number + 1) if previous else 1,
            semver_major=semver[0],
            semver_minor=semver[1],
            semver_patch=semver[2],
            version=".".join(str(part) for part in semver),
            config_hash=config_hash(authored),
            authored_config=authored,
            resolved_config=runtime_agent_to_json(runtime),
            change_kind=change_kind,
            summary=summary,
            parent_version_id=previous.id if previous else None,
            source_version_id=source_version_id,
            is_published=change_kind in PUBLISHED_KINDS,
            created_by_principal_id=principal_id,
            created_at=now(),
        )
        await version_store.insert_version(conn, version)
        return version


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
