"""What budgets name and act on outside their own tables: their subjects (a session, an
agent, a member user, the organization), and the status of a session a resume lifts."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.budgets import SubjectType
from everloop.domain.resources import PrincipalKind, SessionStatus
from everloop.store.tables import agents, principals, sessions


async def subject_exists(
    conn: AsyncConnection, org_id: str, subject_type: SubjectType, subject_id: str
) -> bool:
    """Whether ``subject_id`` names a subject of ``org_id``: a live session, an agent, a
    member user (the user id of a principal of kind user, with or without dashes), or the
    organization itself."""
    match subject_type:
        case "org":
            return subject_id == org_id
        case "session":
            query = select(sessions.c.id).where(
                sessions.c.organization_id == org_id,
                sessions.c.id == subject_id,
                sessions.c.deleted_at.is_(None),
            )
        case "agent":
            query = select(agents.c.id).where(
                agents.c.organization_id == org_id, agents.c.id == subject_id
            )
        case "user":
            query = select(principals.c.id).where(
                principals.c.organization_id == org_id,
                principals.c.kind == PrincipalKind.USER.value,
                principals.c.subject_id == subject_id.replace("-", ""),
            )
    return (await conn.execute(query.limit(1))).first() is not None


async def session_status(conn: AsyncConnection, org_id: str, session_id: str) -> str | None:
    """The status of the organization's live session; None when it has none by that id."""
    found: str | None = await conn.scalar(
        select(sessions.c.status).where(
            sessions.c.organization_id == org_id,
            sessions.c.id == session_id,
            sessions.c.deleted_at.is_(None),
        )
    )
    return found


async def unpause_session(conn: AsyncConnection, session_id: str, ts: str) -> bool:
    """Set a ``paused`` session ``idle``; whether it was paused. The condition rides on the
    update, so a session another transaction moved on in the meantime is left alone."""
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.status == SessionStatus.PAUSED.value)
        .values(status=SessionStatus.IDLE.value, updated_at=ts)
    )
    return bool(result.rowcount)
