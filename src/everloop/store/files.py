"""Queries of ``workspace_files``: one workspace's file tree (both dialects).

Callers pass normalized paths (``domain.files.normalize_path``) and an open connection, so a
service or a transactional tool groups several calls into one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.files import StoredFile
from everloop.store.tables import workspace_files

_META = [c for c in workspace_files.c if c.name not in ("content", "parent_path")]


def _file(row: Any) -> StoredFile:
    values = dict(row._mapping)
    values.pop("parent_path", None)
    return StoredFile(**values)


def _under(path: str) -> Any:
    """The entry at ``path`` and everything below it."""
    if path == "/":
        return True
    return or_(
        workspace_files.c.path == path,
        workspace_files.c.path.startswith(path + "/", autoescape=True),
    )


async def get(
    conn: AsyncConnection, workspace_id: str, path: str, *, with_content: bool = True
) -> StoredFile | None:
    columns = [*_META, workspace_files.c.content] if with_content else _META
    row = (
        await conn.execute(
            select(*columns).where(
                workspace_files.c.workspace_id == workspace_id, workspace_files.c.path == path
            )
        )
    ).first()
    return _file(row) if row else None


async def children(conn: AsyncConnection, workspace_id: str, path: str) -> list[StoredFile]:
    rows = await conn.execute(
        select(*_META)
        .where(
            workspace_files.c.workspace_id == workspace_id, workspace_files.c.parent_path == path
        )
        .order_by(workspace_files.c.is_directory.desc(), workspace_files.c.path)
    )
    return [_file(r) for r in rows]


async def subtree(
    conn: AsyncConnection, workspace_id: str, path: str, *, include_self: bool = False
) -> list[StoredFile]:
    """Every entry below ``path`` (and ``path`` itself when ``include_self``), by path."""
    query = select(*_META).where(workspace_files.c.workspace_id == workspace_id, _under(path))
    if not include_self:
        query = query.where(workspace_files.c.path != path)
    rows = await conn.execute(query.order_by(workspace_files.c.path))
    return [_file(r) for r in rows]


async def contents(
    conn: AsyncConnection, workspace_id: str, paths: list[str]
) -> AsyncIterator[tuple[str, bytes]]:
    """Content of each file in ``paths``, one row at a time (grep reads many files)."""
    for path in paths:
        data = await conn.scalar(
            select(workspace_files.c.content).where(
                workspace_files.c.workspace_id == workspace_id, workspace_files.c.path == path
            )
        )
        if data is not None:
            yield path, bytes(data)


async def total_size(conn: AsyncConnection, workspace_id: str) -> int:
    total = await conn.scalar(
        select(func.coalesce(func.sum(workspace_files.c.size_bytes), 0)).where(
            workspace_files.c.workspace_id == workspace_id
        )
    )
    return int(total or 0)


async def insert(
    conn: AsyncConnection, workspace_id: str, parent_path: str, entry: StoredFile
) -> None:
    await conn.execute(
        workspace_files.insert().values(
            workspace_id=workspace_id,
            path=entry.path,
            parent_path=parent_path,
            id=entry.id,
            is_directory=entry.is_directory,
            is_readonly=entry.is_readonly,
            content=entry.content,
            size_bytes=entry.size_bytes,
            content_hash=entry.content_hash,
            created_at=entry.created_at,
            updated_at=entry.updated_at,
            updated_by_session_id=entry.updated_by_session_id,
        )
    )


async def update_entry(
    conn: AsyncConnection,
    workspace_id: str,
    path: str,
    values: dict[str, Any],
    *,
    expected_hash: str | None = None,
) -> bool:
    """Update one entry; with ``expected_hash`` only while its hash is that one (a
    compare-and-set in one statement: a concurrent writer's change makes it match nothing).
    Returns whether a row changed."""
    query = update(workspace_files).where(
        workspace_files.c.workspace_id == workspace_id, workspace_files.c.path == path
    )
    if expected_hash is not None:
        query = query.where(workspace_files.c.content_hash == expected_hash)
    result = await conn.execute(query.values(**values))
    return bool(result.rowcount)


async def delete_tree(conn: AsyncConnection, workspace_id: str, path: str) -> int:
    """Delete ``path`` and everything below it; returns how many rows went."""
    result = await conn.execute(
        delete(workspace_files).where(workspace_files.c.workspace_id == workspace_id, _under(path))
    )
    return int(result.rowcount or 0)


async def rename_tree(
    conn: AsyncConnection, workspace_id: str, source: str, target: str, ts: str
) -> None:
    """Move ``source`` and everything below it to ``target`` (no conflict check here)."""
    for entry in await subtree(conn, workspace_id, source, include_self=True):
        new_path = target + entry.path[len(source) :]
        await conn.execute(
            update(workspace_files)
            .where(
                workspace_files.c.workspace_id == workspace_id, workspace_files.c.path == entry.path
            )
            .values(
                path=new_path,
                parent_path=new_path.rsplit("/", 1)[0] or "/",
                updated_at=ts,
            )
        )


async def delete_workspace(conn: AsyncConnection, workspace_id: str) -> None:
    await conn.execute(
        delete(workspace_files).where(workspace_files.c.workspace_id == workspace_id)
    )


def new_file_id() -> str:
    """A file entry's wire id: a UUIDv7 as text."""
    return str(uuid.UUID(hex=ids.uuid7_hex()))
