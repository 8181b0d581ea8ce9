"""Agent version rows: written once, never updated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.agent_versions import AgentVersion
from everloop.store.tables import agent_versions


def _version(row: Any) -> AgentVersion:
    return AgentVersion(**dict(row._mapping))


async def insert_version(conn: AsyncConnection, version: AgentVersion) -> None:
    values = {name: getattr(version, name) for name in AgentVersion.__slots__}
    await conn.execute(agent_versions.insert().values(**values))


async def get_version(
    conn: AsyncConnection, org_id: str, version_id: str, *, agent_id: str | None = None
) -> AgentVersion | None:
    query = select(agent_versions).where(
        agent_versions.c.id == version_id, agent_versions.c.organization_id == org_id
    )
    if agent_id is not None:
        query = query.where(agent_versions.c.agent_id == agent_id)
    row = (await conn.execute(query)).first()
    return _version(row) if row else None


async def latest_version(conn: AsyncConnection, agent_id: str) -> AgentVersion | None:
    row = (
        await conn.execute(
            select(agent_versions)
            .where(agent_versions.c.agent_id == agent_id)
            .order_by(agent_versions.c.version_number.desc())
            .limit(1)
        )
    ).first()
    return _version(row) if row else None


async def list_versions(conn: AsyncConnection, org_id: str, agent_id: str) -> list[AgentVersion]:
    """Newest first."""
    rows = await conn.execute(
        select(agent_versions)
        .where(agent_versions.c.agent_id == agent_id, agent_versions.c.organization_id == org_id)
        .order_by(agent_versions.c.version_number.desc())
    )
    return [_version(r) for r in rows]
