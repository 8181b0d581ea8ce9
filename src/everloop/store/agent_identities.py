"""Queries of the ``agent_identities`` table (both dialects), always scoped to an organization.

An identity's principal row is written and deleted here with it (``principals``, kind
``agent_identity``), so the two never exist apart.

On PostgreSQL two transactions decide together whether an identity may go: one that names it on
a session (``hold``, a key-share lock) and its delete (``lock``, then the count of sessions).
Whichever locks second waits for the first to commit and then sees what it wrote. SQLite
serializes writers, and both locks are no-ops there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.agent_identities import AgentIdentity
from everloop.domain.resources import PrincipalKind
from everloop.store.session_rows import like_escape
from everloop.store.tables import agent_identities, principals, sessions

_ROW = agent_identities.c


def _identity(row: Any) -> AgentIdentity:
    return AgentIdentity(**dict(row._mapping))


async def insert(
    conn: AsyncConnection, identity: AgentIdentity, *, parent_principal_id: str
) -> None:
    """The identity and its principal (the identity's ``principal_id``), in one transaction."""
    await conn.execute(
        principals.insert().values(
            id=identity.principal_id,
            organization_id=identity.organization_id,
            kind=PrincipalKind.AGENT_IDENTITY.value,
            subject_id=None,
            parent_principal_id=parent_principal_id,
            name=identity.name,
            created_at=identity.created_at,
        )
    )
    await conn.execute(
        agent_identities.insert().values(
            id=identity.id,
            organization_id=identity.organization_id,
            principal_id=identity.principal_id,
            owner_principal_id=identity.owner_principal_id,
            name=identity.name,
            display_name=identity.display_name,
            description=identity.description,
            locale=identity.locale,
            timezone=identity.timezone,
            created_at=identity.created_at,
            updated_at=identity.updated_at,
        )
    )


async def get_identity(
    conn: AsyncConnection, organization_id: str, identity_id: str
) -> AgentIdentity | None:
    """The identity of that organization with that id (None for another org's)."""
    row = (
        await conn.execute(
            select(agent_identities).where(
                _ROW.organization_id == organization_id, _ROW.id == identity_id
            )
        )
    ).first()
    return _identity(row) if row else None


async def get_by_name(
    conn: AsyncConnection, organization_id: str, name: str
) -> AgentIdentity | None:
    row = (
        await conn.execute(
            select(agent_identities).where(
                _ROW.organization_id == organization_id, _ROW.name == name
            )
        )
    ).first()
    return _identity(row) if row else None


async def list_identities(
    conn: AsyncConnection, organization_id: str, *, search: str | None = None
) -> list[AgentIdentity]:
    """The organization's identities, oldest first; ``search`` matches name or display name."""
    query = select(agent_identities).where(_ROW.organization_id == organization_id)
    if search:
        pattern = f"%{like_escape(search.lower())}%"
        query = query.where(
            or_(
                func.lower(_ROW.name).like(pattern, escape="\\"),
                func.lower(func.coalesce(_ROW.display_name, "")).like(pattern, escape="\\"),
            )
        )
    rows = await conn.execute(query.order_by(_ROW.created_at, _ROW.id))
    return [_identity(row) for row in rows]


async def update_identity(
    conn: AsyncConnection, organization_id: str, identity_id: str, values: dict[str, Any]
) -> None:
    """Change the identity's columns; a new ``name`` is its principal's name too."""
    found = await conn.execute(
        update(agent_identities)
        .where(_ROW.organization_id == organization_id, _ROW.id == identity_id)
        .values(**values)
        .returning(_ROW.principal_id)
    )
    principal_id = found.scalar_one_or_none()
    if principal_id is not None and "name" in values:
        await conn.execute(
            update(principals).where(principals.c.id == principal_id).values(name=values["name"])
        )


async def hold(conn: AsyncConnection, organization_id: str, identity_id: str) -> bool:
    """Whether the identity exists; on PostgreSQL it then cannot be deleted before this
    transaction ends (its delete waits, then counts the session this transaction names it on)."""
    found = await conn.scalar(
        select(_ROW.id)
        .where(_ROW.organization_id == organization_id, _ROW.id == identity_id)
        .with_for_update(read=True, key_share=True)
    )
    return found is not None


async def lock(
    conn: AsyncConnection, organization_id: str, identity_id: str
) -> AgentIdentity | None:
    """The identity, locked for its delete (PostgreSQL: until commit), or None."""
    row = (
        await conn.execute(
            select(agent_identities)
            .where(_ROW.organization_id == organization_id, _ROW.id == identity_id)
            .with_for_update()
        )
    ).first()
    return _identity(row) if row else None


async def live_session_count(conn: AsyncConnection, organization_id: str, identity_id: str) -> int:
    """How many sessions that are not deleted name the identity (subagents included)."""
    count = await conn.scalar(
        select(func.count()).where(
            sessions.c.organization_id == organization_id,
            sessions.c.agent_identity_id == identity_id,
            sessions.c.deleted_at.is_(None),
        )
    )
    return int(count or 0)


async def delete_identity(conn: AsyncConnection, organization_id: str, identity_id: str) -> bool:
    """Delete the identity and its principal; False when there is no such identity."""
    principal_id = (
        await conn.execute(
            delete(agent_identities)
            .where(_ROW.organization_id == organization_id, _ROW.id == identity_id)
            .returning(_ROW.principal_id)
        )
    ).scalar_one_or_none()
    if principal_id is None:
        return False
    await conn.execute(delete(principals).where(principals.c.id == principal_id))
    return True


async def acting_as(conn: AsyncConnection, session_id: str) -> tuple[str, str | None]:
    """Whom a session's unattended turns run as: (principal id, agent identity id): its agent
    identity's principal, else its owner's."""
    query = (
        select(
            sessions.c.owner_principal_id,
            sessions.c.agent_identity_id,
            agent_identities.c.principal_id,
        )
        .select_from(
            sessions.outerjoin(
                agent_identities, agent_identities.c.id == sessions.c.agent_identity_id
            )
        )
        .where(sessions.c.id == session_id)
    )
    owner, identity_id, identity_principal = (await conn.execute(query)).one()
    return (identity_principal or owner), identity_id
