"""Executors and their heartbeats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.store.tables import workers


@dataclass(frozen=True, slots=True)
class WorkerRow:
    executor_id: str
    role: str
    hostname: str
    pid: int
    application_version: str
    started_at: str
    heartbeat_at: str
    running_turns: int
    stopped_at: str | None
    recovered_at: str | None
    recovered_by: str | None


def _worker(row: Any) -> WorkerRow:
    return WorkerRow(**dict(row._mapping))


async def register(conn: AsyncConnection, row: WorkerRow) -> None:
    """Insert or reset this executor's row (a restart under the same id is the same worker)."""
    values = {k: getattr(row, k) for k in WorkerRow.__slots__}
    found = await conn.scalar(
        select(workers.c.executor_id).where(workers.c.executor_id == row.executor_id)
    )
    if found:
        await conn.execute(
            update(workers).where(workers.c.executor_id == row.executor_id).values(**values)
        )
    else:
        await conn.execute(workers.insert().values(**values))


async def heartbeat(conn: AsyncConnection, executor_id: str, ts: str, running: int) -> None:
    await conn.execute(
        update(workers)
        .where(workers.c.executor_id == executor_id)
        .values(heartbeat_at=ts, running_turns=running)
    )


async def mark_stopped(conn: AsyncConnection, executor_id: str, ts: str) -> None:
    await conn.execute(
        update(workers).where(workers.c.executor_id == executor_id).values(stopped_at=ts)
    )


async def silent_since(conn: AsyncConnection, cutoff: str) -> list[WorkerRow]:
    """Executors whose last heartbeat is older than ``cutoff`` and not yet recovered."""
    rows = await conn.execute(
        select(workers).where(workers.c.heartbeat_at < cutoff, workers.c.recovered_at.is_(None))
    )
    return [_worker(r) for r in rows]


async def mark_recovered(conn: AsyncConnection, executor_id: str, by: str, ts: str) -> bool:
    result = await conn.execute(
        update(workers)
        .where(workers.c.executor_id == executor_id, workers.c.recovered_at.is_(None))
        .values(recovered_at=ts, recovered_by=by)
    )
    return bool(result.rowcount)


async def all_workers(conn: AsyncConnection) -> list[WorkerRow]:
    rows = await conn.execute(select(workers).order_by(workers.c.started_at.desc()))
    return [_worker(r) for r in rows]
