"""Queries of ``memories`` (both dialects), always scoped to an organization.

The sealed credentials of a git source are read only through ``sealed_credentials``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.memories import Memory
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
            select(*_COLUMNS).where(memories.c.organization_id == org_id, memories.c.id == memory_id)
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
