"""Queries of a session's key-values, secrets and leases, and the purge of all its storage.

Secret values are stored only as ``crypto.SecretBox`` tokens; this module never sees plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.messages import JsonValue
from everloop.domain.timestamps import now
from everloop.store import workspaces as workspace_store
from everloop.store.tables import session_kv, session_leases, session_secrets


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class SecretName:
    name: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class Lease:
    session_id: str
    name: str
    kind: str
    metadata: JsonValue
    expires_at: str
    created_at: str
    updated_at: str


# -- key-values ------------------------------------------------------------------------------


async def get_value(conn: AsyncConnection, session_id: str, key: str) -> KeyValue | None:
    row = (
        await conn.execute(
            select(
                session_kv.c.key,
                session_kv.c.value,
                session_kv.c.created_at,
                session_kv.c.updated_at,
            ).where(session_kv.c.session_id == session_id, session_kv.c.key == key)
        )
    ).first()
    return KeyValue(*row) if row else None


async def put_value(conn: AsyncConnection, session_id: str, key: str, value: str, ts: str) -> bool:
    """Insert or replace; returns whether the key is new."""
    changed = await conn.execute(
        update(session_kv)
        .where(session_kv.c.session_id == session_id, session_kv.c.key == key)
        .values(value=value, updated_at=ts)
    )
    if changed.rowcount:
        return False
    await conn.execute(
        session_kv.insert().values(
            session_id=session_id, key=key, value=value, created_at=ts, updated_at=ts
        )
    )
    return True


async def delete_value(conn: AsyncConnection, session_id: str, key: str) -> bool:
    result = await conn.execute(
        delete(session_kv).where(session_kv.c.session_id == session_id, session_kv.c.key == key)
    )
    return bool(result.rowcount)


async def list_values(
    conn: AsyncConnection, session_id: str, prefix: str = "", limit: int = 10_000
) -> list[KeyValue]:
    query = select(
        session_kv.c.key, session_kv.c.value, session_kv.c.created_at, session_kv.c.updated_at
    ).where(session_kv.c.session_id == session_id)
    if prefix:
        query = query.where(session_kv.c.key.startswith(prefix, autoescape=True))
    rows = await conn.execute(query.order_by(session_kv.c.key).limit(limit))
    return [KeyValue(*r) for r in rows]


async def count_values(conn: AsyncConnection, session_id: str) -> int:
    found = await conn.scalar(
        select(func.count()).select_from(session_kv).where(session_kv.c.session_id == session_id)
    )
    return int(found or 0)


# -- secrets ---------------------------------------------------------------------------------


async def sealed_secret(
    conn: AsyncConnection, session_id: str, name: str
) -> tuple[str, str] | None:
    """The secret's sealed value and the session it was sealed for (this one, unless the row
    was copied by a fork)."""
    row = (
        await conn.execute(
            select(
                session_secrets.c.value_encrypted, session_secrets.c.sealed_for_session_id
            ).where(session_secrets.c.session_id == session_id, session_secrets.c.name == name)
        )
    ).first()
    return None if row is None else (row[0], row[1] or session_id)


async def sealed_secrets(conn: AsyncConnection, session_id: str) -> dict[str, tuple[str, str]]:
    """Every secret of the session, sealed, with the session it was sealed for, by name."""
    rows = await conn.execute(
        select(
            session_secrets.c.name,
            session_secrets.c.value_encrypted,
            session_secrets.c.sealed_for_session_id,
        ).where(session_secrets.c.session_id == session_id)
    )
    return {name: (sealed, sealed_for or session_id) for name, sealed, sealed_for in rows}


async def put_secret(
    conn: AsyncConnection, session_id: str, name: str, sealed: str, ts: str
) -> None:
    """Store a value sealed for this session (replacing a copied one sealed for its parent)."""
    changed = await conn.execute(
        update(session_secrets)
        .where(session_secrets.c.session_id == session_id, session_secrets.c.name == name)
        .values(value_encrypted=sealed, sealed_for_session_id=None, updated_at=ts)
    )
    if not changed.rowcount:
        await conn.execute(
            session_secrets.insert().values(
                session_id=session_id,
                name=name,
                value_encrypted=sealed,
                sealed_for_session_id=None,
                created_at=ts,
                updated_at=ts,
            )
        )


async def secret_names(conn: AsyncConnection, session_id: str) -> list[SecretName]:
    rows = await conn.execute(
        select(session_secrets.c.name, session_secrets.c.created_at, session_secrets.c.updated_at)
        .where(session_secrets.c.session_id == session_id)
        .order_by(session_secrets.c.name)
    )
    return [SecretName(*r) for r in rows]


# -- leases ----------------------------------------------------------------------------------


def _lease(row: Any) -> Lease:
    return Lease(**dict(row._mapping))


async def get_lease(conn: AsyncConnection, session_id: str, name: str) -> Lease | None:
    row = (
        await conn.execute(
            select(session_leases).where(
                session_leases.c.session_id == session_id, session_leases.c.name == name
            )
        )
    ).first()
    return _lease(row) if row else None


async def put_lease(conn: AsyncConnection, lease: Lease) -> None:
    changed = await conn.execute(
        update(session_leases)
        .where(session_leases.c.session_id == lease.session_id, session_leases.c.name == lease.name)
        .values(
            kind=lease.kind,
            metadata=lease.metadata,
            expires_at=lease.expires_at,
            updated_at=lease.updated_at,
        )
    )
    if not changed.rowcount:
        await conn.execute(
            session_leases.insert().values(
                session_id=lease.session_id,
                name=lease.name,
                kind=lease.kind,
                metadata=lease.metadata,
                expires_at=lease.expires_at,
                created_at=lease.created_at,
                updated_at=lease.updated_at,
            )
        )


async def delete_lease(conn: AsyncConnection, session_id: str, name: str) -> bool:
    result = await conn.execute(
        delete(session_leases).where(
            session_leases.c.session_id == session_id, session_leases.c.name == name
        )
    )
    return bool(result.rowcount)


async def list_leases(conn: AsyncConnection, session_id: str) -> list[Lease]:
    rows = await conn.execute(
        select(session_leases)
        .where(session_leases.c.session_id == session_id)
        .order_by(session_leases.c.created_at, session_leases.c.name)
    )
    return [_lease(r) for r in rows]


async def delete_expired_leases(
    conn: AsyncConnection, ts: str, session_id: str | None = None
) -> int:
    query = delete(session_leases).where(session_leases.c.expires_at <= ts)
    if session_id is not None:
        query = query.where(session_leases.c.session_id == session_id)
    result = await conn.execute(query)
    return int(result.rowcount or 0)


# -- a deleted session -----------------------------------------------------------------------


async def purge_session(conn: AsyncConnection, session_id: str) -> None:
    """Delete the session's automatic workspace (its files), key-values, secrets and leases
    (caller's transaction). A shared workspace the session used keeps its files."""
    await workspace_store.delete_automatic(conn, session_id, now())
    for table in (session_kv, session_secrets, session_leases):
        await conn.execute(delete(table).where(table.c.session_id == session_id))
