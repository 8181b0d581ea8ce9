"""Idempotency-Key records, scoped to (organization, principal, key)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from everloop.store.tables import idempotency_keys


@dataclass(frozen=True, slots=True)
class KeyRecord:
    request_hash: str
    state: str
    response_status: int | None
    response_body: str | None
    created_at: str


def _where(org_id: str, principal_id: str, key: str) -> tuple[ColumnElement[bool], ...]:
    c = idempotency_keys.c
    return (c.organization_id == org_id, c.principal_id == principal_id, c.key == key)


async def find(conn: AsyncConnection, org_id: str, principal_id: str, key: str) -> KeyRecord | None:
    row = (
        await conn.execute(select(idempotency_keys).where(*_where(org_id, principal_id, key)))
    ).first()
    if row is None:
        return None
    return KeyRecord(
        row.request_hash, row.state, row.response_status, row.response_body, row.created_at
    )


async def claim(
    conn: AsyncConnection, org_id: str, principal_id: str, key: str, request_hash: str, ts: str
) -> None:
    await conn.execute(
        idempotency_keys.insert().values(
            organization_id=org_id,
            principal_id=principal_id,
            key=key,
            request_hash=request_hash,
            state="in_progress",
            response_status=None,
            response_body=None,
            created_at=ts,
        )
    )


async def complete(
    conn: AsyncConnection, org_id: str, principal_id: str, key: str, status: int, body: str
) -> None:
    await conn.execute(
        update(idempotency_keys)
        .where(*_where(org_id, principal_id, key))
        .values(state="done", response_status=status, response_body=body)
    )


async def release(conn: AsyncConnection, org_id: str, principal_id: str, key: str) -> None:
    await conn.execute(delete(idempotency_keys).where(*_where(org_id, principal_id, key)))
