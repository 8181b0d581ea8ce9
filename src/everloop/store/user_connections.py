"""Queries of users' connections. Keys are stored only as ``crypto.SecretBox`` tokens; this module
never sees plaintext. Every query is scoped by organization and user (the primary key's prefix)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.connections import Connection
from everloop.store.tables import user_connections

_c = user_connections.c


def _owned(org_id: str, user_id: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (_c.organization_id == org_id, _c.user_id == user_id)


async def list_connections(conn: AsyncConnection, org_id: str, user_id: str) -> list[Connection]:
    rows = await conn.execute(
        select(_c.provider, _c.created_at, _c.updated_at)
        .where(*_owned(org_id, user_id))
        .order_by(_c.provider)
    )
    return [Connection(*r) for r in rows]


async def sealed_keys(conn: AsyncConnection, org_id: str, user_id: str) -> dict[str, str]:
    """Every connection of the user, sealed, by provider (one read of the primary key)."""
    rows = await conn.execute(
        select(_c.provider, _c.credentials_encrypted).where(*_owned(org_id, user_id))
    )
    return {provider: sealed for provider, sealed in rows}


async def get_connection(
    conn: AsyncConnection, org_id: str, user_id: str, provider: str
) -> Connection | None:
    row = (
        await conn.execute(
            select(_c.provider, _c.created_at, _c.updated_at).where(
                *_owned(org_id, user_id), _c.provider == provider
            )
        )
    ).first()
    return Connection(*row) if row else None


async def count_connections(conn: AsyncConnection, org_id: str, user_id: str) -> int:
    found = await conn.scalar(
        select(func.count()).select_from(user_connections).where(*_owned(org_id, user_id))
    )
    return int(found or 0)


async def put_connection(
    conn: AsyncConnection, org_id: str, user_id: str, provider: str, sealed: str, ts: str
) -> bool:
    """Insert or replace the user's connection to ``provider``; returns whether it is new."""
    changed = await conn.execute(
        update(user_connections)
        .where(*_owned(org_id, user_id), _c.provider == provider)
        .values(credentials_encrypted=sealed, kind="api_key", updated_at=ts)
    )
    if changed.rowcount:
        return False
    await conn.execute(
        user_connections.insert().values(
            organization_id=org_id,
            user_id=user_id,
            provider=provider,
            kind="api_key",
            credentials_encrypted=sealed,
            created_at=ts,
            updated_at=ts,
        )
    )
    return True


async def delete_connection(
    conn: AsyncConnection, org_id: str, user_id: str, provider: str
) -> bool:
    result = await conn.execute(
        delete(user_connections).where(*_owned(org_id, user_id), _c.provider == provider)
    )
    return bool(result.rowcount)
