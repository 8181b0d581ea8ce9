"""Session tasks and their messages (``domain.session_tasks``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.session_tasks import ACTIVE_STATES, SessionTask, TaskMessage
from everloop.store.tables import session_task_messages, session_tasks, sessions

_TASK_COLUMNS = (
    "id",
    "session_id",
    "organization_id",
    "root_session_id",
    "kind",
    "display_name",
    "spec",
    "state",
    "wake_policy",
    "attempt",
    "created_at",
    "updated_at",
    "child_session_id",
    "state_detail",
    "summary",
    "error",
    "result",
    "cancel_requested_at",
    "started_at",
    "finished_at",
)


def task_of(row: Any) -> SessionTask:
    values = row._mapping
    return SessionTask(**{name: values[name] for name in _TASK_COLUMNS})


async def insert_task(conn: AsyncConnection, task: SessionTask) -> None:
    await conn.execute(
        insert(session_tasks).values(**{name: getattr(task, name) for name in _TASK_COLUMNS})
    )


async def get_task(conn: AsyncConnection, session_id: str, task_id: str) -> SessionTask | None:
    row = (
        await conn.execute(
            select(session_tasks).where(
                session_tasks.c.session_id == session_id, session_tasks.c.id == task_id
            )
        )
    ).first()
    return task_of(row) if row else None


async def task_by_id(conn: AsyncConnection, task_id: str) -> SessionTask | None:
    row = (await conn.execute(select(session_tasks).where(session_tasks.c.id == task_id))).first()
    return task_of(row) if row else None


async def task_by_name(conn: AsyncConnection, session_id: str, name: str) -> SessionTask | None:
    row = (
        await conn.execute(
            select(session_tasks).where(
                session_tasks.c.session_id == session_id, session_tasks.c.display_name == name
            )
        )
    ).first()
    return task_of(row) if row else None


async def task_of_child(conn: AsyncConnection, child_session_id: str) -> SessionTask | None:
    row = (
        await conn.execute(
            select(session_tasks).where(session_tasks.c.child_session_id == child_session_id)
        )
    ).first()
    return task_of(row) if row else None


async def list_tasks(
    conn: AsyncConnection,
    session_id: str,
    *,
    state: str | None = None,
    kind: str | None = None,
) -> list[SessionTask]:
    query = select(session_tasks).where(session_tasks.c.session_id == session_id)
    if state:
        query = query.where(session_tasks.c.state == state)
    if kind:
        query = query.where(session_tasks.c.kind == kind)
    rows = await conn.execute(query.order_by(session_tasks.c.created_at, session_tasks.c.id))
    return [task_of(row) for row in rows]


async def list_org_tasks(
    conn: AsyncConnection,
    org_id: str,
    *,
    state: str | None = None,
    kind: str | None = None,
    created_after: str | None = None,
    root_session_id: str | None = None,
    limit: int = 100,
) -> list[SessionTask]:
    """The org's tasks, newest first; only of sessions that are not deleted."""
    live = select(sessions.c.id).where(
        sessions.c.organization_id == org_id, sessions.c.deleted_at.is_(None)
    )
    query = select(session_tasks).where(
        session_tasks.c.organization_id == org_id, session_tasks.c.session_id.in_(live)
    )
    if state:
        query = query.where(session_tasks.c.state == state)
    if kind:
        query = query.where(session_tasks.c.kind == kind)
    if created_after:
        query = query.where(session_tasks.c.created_at >= created_after)
    if root_session_id:
        query = query.where(session_tasks.c.root_session_id == root_session_id)
    query = query.order_by(session_tasks.c.created_at.desc(), session_tasks.c.id.desc())
    rows = await conn.execute(query.limit(limit))
    return [task_of(row) for row in rows]


async def update_task(
    conn: AsyncConnection,
    task_id: str,
    values: dict[str, Any],
    *,
    only_states: Sequence[str] | None = None,
) -> SessionTask | None:
    """Update the task (only while in ``only_states``, if given); the task as updated, or None
    if it was not (gone, or in another state)."""
    statement = update(session_tasks).where(session_tasks.c.id == task_id)
    if only_states is not None:
        statement = statement.where(session_tasks.c.state.in_(list(only_states)))
    row = (await conn.execute(statement.values(**values).returning(session_tasks))).first()
    return task_of(row) if row else None


async def lock_tree(conn: AsyncConnection, root_session_id: str) -> None:
    """Serialize the transactions that count and add a tree's subagents (until commit). On
    SQLite writers are serialized already; on PostgreSQL a transaction-scoped advisory lock on
    the root's id, taken before any row lock of the transaction, so it joins no lock cycle."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"subagents:{root_session_id}"},
        )


async def tree_root(conn: AsyncConnection, session_id: str) -> str:
    """The root of the session's delegation tree (itself, for a top-level session)."""
    root = await conn.scalar(select(sessions.c.root_session_id).where(sessions.c.id == session_id))
    return str(root) if root else session_id


async def tree_counts(conn: AsyncConnection, root_session_id: str) -> tuple[int, int]:
    """(active, all) tasks of the delegation tree rooted at ``root_session_id``."""
    active = func.sum(case((session_tasks.c.state.in_(list(ACTIVE_STATES)), 1), else_=0))
    row = (
        await conn.execute(
            select(func.count(), func.coalesce(active, 0)).where(
                session_tasks.c.root_session_id == root_session_id
            )
        )
    ).one()
    return int(row[1]), int(row[0])


async def active_child_tasks(conn: AsyncConnection, session_id: str) -> list[SessionTask]:
    """The session's subagent tasks that are still active."""
    rows = await conn.execute(
        select(session_tasks).where(
            session_tasks.c.session_id == session_id,
            session_tasks.c.state.in_(list(ACTIVE_STATES)),
            session_tasks.c.child_session_id.is_not(None),
        )
    )
    return [task_of(row) for row in rows]


async def descendant_ids(conn: AsyncConnection, org_id: str, session_id: str) -> list[str]:
    """The live sessions below ``session_id`` (its subagents, theirs, ...), parents before
    children. The walk goes on through deleted ones: a child deleted alone keeps its own
    children's ``parent_session_id``."""
    found: list[str] = []
    seen = {session_id}
    level = [session_id]
    while level:  # each level only holds sessions not seen before: the walk ends
        rows = await conn.execute(
            select(sessions.c.id, sessions.c.deleted_at)
            .where(
                sessions.c.organization_id == org_id,
                sessions.c.parent_session_id.in_(level),
            )
            .order_by(sessions.c.created_at, sessions.c.id)
        )
        level = []
        for child_id, deleted_at in rows:
            if child_id in seen:
                continue
            seen.add(child_id)
            level.append(child_id)
            if deleted_at is None:
                found.append(child_id)
    return found


async def insert_message(conn: AsyncConnection, message: TaskMessage) -> None:
    await conn.execute(
        insert(session_task_messages).values(
            id=message.id,
            task_id=message.task_id,
            direction=message.direction,
            content=message.content,
            in_reply_to=message.in_reply_to,
            created_at=message.created_at,
        )
    )


async def messages(
    conn: AsyncConnection, task_id: str, *, after_id: str | None = None, limit: int = 50
) -> list[TaskMessage]:
    """The task's messages in order (ids are time-ordered), after ``after_id``."""
    query = select(session_task_messages).where(session_task_messages.c.task_id == task_id)
    if after_id:
        query = query.where(session_task_messages.c.id > after_id)
    rows = await conn.execute(query.order_by(session_task_messages.c.id).limit(limit))
    return [
        TaskMessage(
            row.id, row.task_id, row.direction, row.content, row.created_at, row.in_reply_to
        )
        for row in rows
    ]
