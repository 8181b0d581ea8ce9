"""Rows of ``session_databases``: a session's SQLite databases, each kept whole as bytes."""

from __future__ import annotations

from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.resources import DatabaseInfo
from everloop.store.tables import session_databases

_INFO = (
    session_databases.c.session_id,
    session_databases.c.name,
    session_databases.c.size_bytes,
    session_databases.c.created_at,
    session_databases.c.updated_at,
)


def _where(session_id: str, name: str) -> ColumnElement[bool]:
    return (session_databases.c.session_id == session_id) & (session_databases.c.name == name)


async def list_databases(conn: AsyncConnection, session_id: str) -> list[DatabaseInfo]:
    rows = await conn.execute(
        select(*_INFO)
        .where(session_databases.c.session_id == session_id)
        .order_by(session_databases.c.name)
    )
    return [DatabaseInfo(*row) for row in rows]


async def count(conn: AsyncConnection, session_id: str) -> int:
    query = select(func.count()).where(session_databases.c.session_id == session_id)
    return int((await conn.execute(query)).scalar_one())


async def get_info(conn: AsyncConnection, session_id: str, name: str) -> DatabaseInfo | None:
    row = (await conn.execute(select(*_INFO).where(_where(session_id, name)))).first()
    return DatabaseInfo(*row) if row else None


async def get_content(conn: AsyncConnection, session_id: str, name: str) -> bytes | None:
    query = select(session_databases.c.content).where(_where(session_id, name))
    value = (await conn.execute(query)).scalar_one_or_none()
    return bytes(value) if value is not None else None


async def insert_database(
    conn: AsyncConnection, session_id: str, name: str, content: bytes, ts: str
) -> None:
    await conn.execute(
        insert(session_databases).values(
            session_id=session_id,
            name=name,
            content=content,
            size_bytes=len(content),
            created_at=ts,
            updated_at=ts,
        )
    )


async def replace_content(
    conn: AsyncConnection, session_id: str, name: str, expected: bytes, content: bytes, ts: str
) -> bool:
    """Compare-and-swap: set the database's bytes to ``content`` only if they are still
    ``expected`` (the bytes a statement ran on, outside any transaction). False if another
    write came first or the database is gone. Comparing the bytes needs no version column
    and has no ABA problem: equal bytes are the same database."""
    result = await conn.execute(
        update(session_databases)
        .where(_where(session_id, name) & (session_databases.c.content == expected))
        .values(content=content, size_bytes=len(content), updated_at=ts)
    )
    return bool(result.rowcount)


async def delete_database(conn: AsyncConnection, session_id: str, name: str) -> bool:
    result = await conn.execute(delete(session_databases).where(_where(session_id, name)))
    return bool(result.rowcount)


async def delete_session_databases(conn: AsyncConnection, session_id: str) -> None:
    """Remove every database of a session (part of deleting the session)."""
    await conn.execute(
        delete(session_databases).where(session_databases.c.session_id == session_id)
    )
