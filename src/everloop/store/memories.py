"""Queries of ``memories`` (both dialects), always scoped to an organization.

The sealed credentials of a git source are read only through ``sealed_credentials``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.memories import Memory
from everloop.domain.timestamps import now
from everloop.store.tables import memories

_COLUMNS = [c for c in memories.c if c.name != "source_credentials_encrypted"]


def _memory(row: Any) -> Memory:
    values = dict(row._mapping)
    return Memory(**values)


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(memories.insert().values(**values))


async def get(conn: AsyncConnection, org_id: str, memory_id: str) -> Memory | None:
    row = (
        await conn.execute(
            select(*_COLUMNS).where(
                memories.c.organization_id == org_id, memories.c.id == memory_id
            )
        )
    ).first()
    return _memory(row) if row else None


async def get_by_name(conn: AsyncConnection, org_id: str, name: str) -> Memory | None:
    row = (
        await conn.execute(
            select(*_COLUMNS).where(memories.c.organization_id == org_id, memories.c.name == name)
        )
    ).first()
    return _memory(row) if row else None


async def list_memories(
    conn: AsyncConnection, org_id: str, *, search: str | None, include_archived: bool
) -> list[Memory]:
    query = select(*_COLUMNS).where(memories.c.organization_id == org_id)
    if not include_archived:
        query = query.where(memories.c.status == "active")
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            or_(
                func.lower(memories.c.name).like(pattern),
                func.lower(func.coalesce(memories.c.description, "")).like(pattern),
            )
        )
    rows = await conn.execute(query.order_by(memories.c.name))
    return [_memory(r) for r in rows]


async def due_for_sync(conn: AsyncConnection, limit: int = 50) -> list[Memory]:
    """Active memories with a git source and an interval (the caller checks the time)."""
    rows = await conn.execute(
        select(*_COLUMNS)
        .where(memories.c.status == "active", memories.c.source_type != "manual")
        .order_by(memories.c.last_synced_at)
        .limit(limit)
    )
    return [m for m in (_memory(r) for r in rows) if m.sync_interval_secs > 0]


async def sealed_credentials(conn: AsyncConnection, memory_id: str) -> str | None:
    value = await conn.scalar(
        select(memories.c.source_credentials_encrypted).where(memories.c.id == memory_id)
    )
    return str(value) if value is not None else None


async def update_memory(conn: AsyncConnection, memory_id: str, values: dict[str, Any]) -> None:
    await conn.execute(update(memories).where(memories.c.id == memory_id).values(**values))


def new_memory_values(
    org_id: str,
    name: str,
    *,
    description: str | None = None,
    source_type: str = "manual",
    source: dict[str, Any] | None = None,
    sealed_credentials: str | None = None,
    memory_id: str | None = None,
) -> dict[str, Any]:
    """The row of a new active memory."""
    ts = now()
    return {
        "id": memory_id or ids.new_id("mem"),
        "organization_id": org_id,
        "name": name,
        "description": description,
        "source_type": source_type,
        "source": source,
        "source_credentials_encrypted": sealed_credentials,
        "status": "active",
        "sync_status": "idle",
        "last_synced_at": None,
        "last_sync_error": None,
        "synced_commit": None,
        "created_at": ts,
        "updated_at": ts,
        "archived_at": None,
    }


async def ensure_manual(conn: AsyncConnection, org_id: str, name: str, description: str) -> Memory:
    """The memory ``name`` of ``org_id``, created (manual, empty) if there is none yet."""
    found = await get_by_name(conn, org_id, name)
    if found is not None:
        return found
    values = new_memory_values(org_id, name, description=description)
    await insert(conn, values)
    created = await get(conn, org_id, values["id"])
    assert created is not None
    return created
