"""Queries of the ``mcp_servers`` table (both dialects), always scoped to an organization.

The sealed header values are read only through ``sealed_headers``; an ``McpServer`` value
carries the header names alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.mcp import McpServer
from everloop.store.tables import mcp_servers

_COLUMNS = [c for c in mcp_servers.c if c.name != "headers_encrypted"]


def _server(row: Any) -> McpServer:
    values = dict(row._mapping)
    values["header_names"] = tuple(values["header_names"] or ())
    return McpServer(**values)


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(mcp_servers.insert().values(**values))


async def get(conn: AsyncConnection, org_id: str, server_id: str) -> McpServer | None:
    row = (
        await conn.execute(
            select(*_COLUMNS).where(
                mcp_servers.c.organization_id == org_id, mcp_servers.c.id == server_id
            )
        )
    ).first()
    return _server(row) if row else None


async def get_by_name(conn: AsyncConnection, org_id: str, name: str) -> McpServer | None:
    row = (
        await conn.execute(
            select(*_COLUMNS).where(
                mcp_servers.c.organization_id == org_id, mcp_servers.c.name == name
            )
        )
    ).first()
    return _server(row) if row else None


async def list_servers(
    conn: AsyncConnection, org_id: str, *, search: str | None = None
) -> list[McpServer]:
    query = select(*_COLUMNS).where(mcp_servers.c.organization_id == org_id)
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            or_(
                func.lower(mcp_servers.c.name).like(pattern),
                func.lower(func.coalesce(mcp_servers.c.description, "")).like(pattern),
            )
        )
    rows = await conn.execute(query.order_by(mcp_servers.c.created_at, mcp_servers.c.id))
    return [_server(row) for row in rows]


async def existing_ids(conn: AsyncConnection, org_id: str, server_ids: Sequence[str]) -> set[str]:
    if not server_ids:
        return set()
    rows = await conn.execute(
        select(mcp_servers.c.id).where(
            mcp_servers.c.organization_id == org_id, mcp_servers.c.id.in_(list(server_ids))
        )
    )
    return {str(row[0]) for row in rows}


async def active_with_headers(
    conn: AsyncConnection, org_id: str, server_ids: Sequence[str]
) -> list[tuple[McpServer, str | None]]:
    """The active servers among ``server_ids`` with their sealed headers, in the given order."""
    if not server_ids:
        return []
    rows = await conn.execute(
        select(*_COLUMNS, mcp_servers.c.headers_encrypted).where(
            mcp_servers.c.organization_id == org_id,
            mcp_servers.c.id.in_(list(server_ids)),
            mcp_servers.c.status == "active",
        )
    )
    found = {}
    for row in rows:
        values = dict(row._mapping)
        sealed = values.pop("headers_encrypted")
        values["header_names"] = tuple(values["header_names"] or ())
        found[values["id"]] = (McpServer(**values), sealed)
    return [found[i] for i in server_ids if i in found]


async def sealed_headers(conn: AsyncConnection, org_id: str, server_id: str) -> str | None:
    return (
        await conn.execute(
            select(mcp_servers.c.headers_encrypted).where(
                mcp_servers.c.organization_id == org_id, mcp_servers.c.id == server_id
            )
        )
    ).scalar_one_or_none()


async def update_server(
    conn: AsyncConnection, org_id: str, server_id: str, values: dict[str, Any]
) -> None:
    await conn.execute(
        update(mcp_servers)
        .where(mcp_servers.c.organization_id == org_id, mcp_servers.c.id == server_id)
        .values(**values)
    )


async def delete_server(conn: AsyncConnection, org_id: str, server_id: str) -> bool:
    result = await conn.execute(
        delete(mcp_servers).where(
            mcp_servers.c.organization_id == org_id, mcp_servers.c.id == server_id
        )
    )
    return bool(result.rowcount)
