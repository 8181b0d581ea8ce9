"""Recording an agent's version snapshots, in the transaction that changes the agent.

Its own module so that the agent service (``config_resources``), which records a version on
every create and update, and the version service (``agent_versions``), which lists, diffs and
rolls back, both depend on it and not on each other.
"""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.agent_versions import (
    PUBLISHED_KINDS,
    AgentVersion,
    authored_config,
    config_hash,
    next_semver,
)
from everloop.domain.resources import Agent
from everloop.domain.runtime_agent import runtime_agent_to_json
from everloop.domain.timestamps import now
from everloop.engine.assembly import Assembler
from everloop.services.change_reasons import current_change_reason
from everloop.store import agent_versions as version_store
from everloop.store.runtime_layers import agent_layer, load_harness_chain


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
            summary=summary if summary is not None else current_change_reason.get(),
            parent_version_id=previous.id if previous else None,
            source_version_id=source_version_id,
            is_published=change_kind in PUBLISHED_KINDS,
            created_by_principal_id=principal_id,
            created_at=now(),
        )
        await version_store.insert_version(conn, version)
        return version
