"""The store of the app database's core resources (organizations, principals, tokens,
harnesses, agents, sessions), for SQLite and PostgreSQL alike. Other resources have their own
store modules beside this one (``store.turns``, ``store.event_log``, ``store.files``, ...), and
the hottest statements of a turn go straight to the driver (``store.direct``).

Org scoping is part of every lookup of an org-owned object: a row of another organization is
simply not found. Methods take an open connection from ``Database.read()`` / ``write()`` so a
service can group several of them into one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from everloop.domain.resources import (
    Agent,
    Harness,
    Principal,
    PrincipalKind,
    ResourceStatus,
    Session,
    SessionFilter,
    SessionStatus,
)
from everloop.store import session_rows
from everloop.store.session_rows import HarnessRoot, like_escape, read_sessions, session_select
from everloop.store.tables import (
    access_tokens,
    agents,
    events,
    harnesses,
    organizations,
    principals,
    session_pins,
    sessions,
    turns,
    users,
)


def _harness(row: Any) -> Harness:
    values = dict(row._mapping)
    values["status"] = ResourceStatus(values["status"])
    return Harness(**values)


def _agent(row: Any) -> Agent:
    values = dict(row._mapping)
    values["status"] = ResourceStatus(values["status"])
    return Agent(**values)


class Store:
    """Queries of the app database, grouped by resource."""

    # -- organizations, users, principals, tokens ------------------------------------------

    async def ensure_organization(
        self, conn: AsyncConnection, org_id: str, name: str, ts: str
    ) -> bool:
        found = await conn.scalar(select(organizations.c.id).where(organizations.c.id == org_id))
        if found:
            return False
        await conn.execute(
            organizations.insert().values(id=org_id, name=name, created_at=ts, updated_at=ts)
        )
        return True

    async def insert_user(self, conn: AsyncConnection, user_id: str, name: str, ts: str) -> None:
        await conn.execute(users.insert().values(id=user_id, name=name, created_at=ts))

    async def insert_principal(self, conn: AsyncConnection, principal: Principal, ts: str) -> None:
        await conn.execute(
            principals.insert().values(
                id=principal.id,
                organization_id=principal.organization_id,
                kind=principal.kind.value,
                subject_id=principal.subject_id,
                role=principal.role,
                created_at=ts,
            )
        )

    async def first_user_id(self, conn: AsyncConnection) -> str | None:
        return await conn.scalar(select(users.c.id).order_by(users.c.created_at).limit(1))

    async def insert_token(
        self,
        conn: AsyncConnection,
        *,
        token_id: str,
        user_id: str,
        name: str,
        token_hash: str,
        hint: str,
        ts: str,
        expires_at: str | None = None,
    ) -> None:
        await conn.execute(
            access_tokens.insert().values(
                id=token_id,
                user_id=user_id,
                name=name,
                token_hash=token_hash,
                token_hint=hint,
                created_at=ts,
                expires_at=expires_at,
            )
        )

    async def user_principals(self, conn: AsyncConnection, user_id: str) -> list[Principal]:
        rows = await conn.execute(
            select(principals)
            .where(
                principals.c.kind == PrincipalKind.USER.value, principals.c.subject_id == user_id
            )
            .order_by(principals.c.created_at)
        )
        return [
            Principal(r.id, r.organization_id, PrincipalKind(r.kind), r.subject_id, r.role)
            for r in rows
        ]

    # -- harnesses and agents (same shape of queries) ------------------------------------------

    async def insert_harness(self, conn: AsyncConnection, values: dict[str, Any]) -> None:
        await conn.execute(harnesses.insert().values(**values))

    async def get_harness(
        self,
        conn: AsyncConnection,
        org_id: str,
        *,
        harness_id: str | None = None,
        name: str | None = None,
    ) -> Harness | None:
        by = "id" if harness_id is not None else "name"
        params = {"org_id": org_id, "key": harness_id if harness_id is not None else name}
        row = (await conn.execute(_BY_ORG_KEY[("harnesses", by)], params)).first()
        return _harness(row) if row else None

    async def list_harnesses(
        self, conn: AsyncConnection, org_id: str, *, search: str | None, include_archived: bool
    ) -> list[Harness]:
        query = select(harnesses).where(
            harnesses.c.organization_id == org_id,
            *_listing_filters(harnesses, search, include_archived),
        )
        rows = await conn.execute(query.order_by(harnesses.c.is_built_in.desc(), harnesses.c.name))
        return [_harness(r) for r in rows]

    async def insert_agent(self, conn: AsyncConnection, values: dict[str, Any]) -> None:
        await conn.execute(agents.insert().values(**values))

    async def get_agent(
        self,
        conn: AsyncConnection,
        org_id: str,
        *,
        agent_id: str | None = None,
        name: str | None = None,
    ) -> Agent | None:
        by = "id" if agent_id is not None else "name"
        params = {"org_id": org_id, "key": agent_id if agent_id is not None else name}
        row = (await conn.execute(_BY_ORG_KEY[("agents", by)], params)).first()
        return _agent(row) if row else None

    async def list_agents(
        self,
        conn: AsyncConnection,
        org_id: str,
        *,
        search: str | None,
        include_archived: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[Agent], int]:
        where = and_(
            agents.c.organization_id == org_id, *_listing_filters(agents, search, include_archived)
        )
        total = await conn.scalar(select(func.count()).select_from(agents).where(where)) or 0
        rows = await conn.execute(
            select(agents)
            .where(where)
            .order_by(agents.c.created_at.desc(), agents.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return [_agent(r) for r in rows], total

    async def name_taken(
        self,
        conn: AsyncConnection,
        table: Table,
        org_id: str,
        name: str,
        *,
        except_id: str | None = None,
    ) -> bool:
        query = select(table.c.id).where(table.c.organization_id == org_id, table.c.name == name)
        if except_id:
            query = query.where(table.c.id != except_id)
        return (await conn.scalar(query)) is not None

    async def id_exists(self, conn: AsyncConnection, table: Table, object_id: str) -> bool:
        """Whether the id is used in any organization (ids are global primary keys)."""
        return (await conn.scalar(select(table.c.id).where(table.c.id == object_id))) is not None

    async def update_row(
        self,
        conn: AsyncConnection,
        table: Table,
        org_id: str,
        object_id: str,
        values: dict[str, Any],
    ) -> None:
        await conn.execute(
            update(table)
            .where(table.c.organization_id == org_id, table.c.id == object_id)
            .values(**values)
        )

    # -- sessions ------------------------------------------------------------------------------

    async def insert_session(self, conn: AsyncConnection, values: dict[str, Any]) -> None:
        # Values as parameters of the one (cached) INSERT: ``.values(**values)`` coerces every
        # column's value into the statement on each call.
        await conn.execute(sessions.insert(), values)

    async def get_session(
        self,
        conn: AsyncConnection,
        org_id: str,
        session_id: str,
        *,
        principal_id: str | None = None,
    ) -> Session | None:
        query = session_select(principal_id or None).where(
            sessions.c.organization_id == org_id,
            sessions.c.id == session_id,
            sessions.c.deleted_at.is_(None),
        )
        result = await conn.execute(query)
        found = read_sessions(result.keys(), result, with_pins=bool(principal_id))
        return found[0] if found else None

    async def session_owner_user(
        self, conn: AsyncConnection, org_id: str, session_id: str
    ) -> str | None:
        """The user id (UUID text) of a live session's effective owner; None when there is no
        such session ("" when it has no human owner)."""
        row = (
            await conn.execute(
                select(sessions.c.resolved_owner_user_id).where(
                    sessions.c.organization_id == org_id,
                    sessions.c.id == session_id,
                    sessions.c.deleted_at.is_(None),
                )
            )
        ).first()
        return None if row is None else (row[0] or "")

    async def list_sessions(
        self,
        conn: AsyncConnection,
        org_id: str,
        flt: SessionFilter,
        *,
        principal_id: str,
        offset: int,
        limit: int,
    ) -> tuple[list[Session], int, dict[str, HarnessRoot | None]]:
        """A page of the sessions ``flt`` selects, newest first, how many there are, and their
        harnesses' capabilities and parents (see ``store.session_rows``: by keyset, the same
        rows as by offset)."""
        return await session_rows.list_sessions(
            conn, org_id, flt, principal_id=principal_id, offset=offset, limit=limit
        )

    async def update_session(
        self, conn: AsyncConnection, org_id: str, session_id: str, values: dict[str, Any]
    ) -> bool:
        result = await conn.execute(
            update(sessions)
            .where(
                sessions.c.organization_id == org_id,
                sessions.c.id == session_id,
                sessions.c.deleted_at.is_(None),
            )
            .values(**values)
        )
        return bool(result.rowcount)

    async def session_counts_by_status(self, conn: AsyncConnection, org_id: str) -> dict[str, int]:
        rows = await conn.execute(
            select(sessions.c.status, func.count())
            .where(sessions.c.organization_id == org_id, sessions.c.deleted_at.is_(None))
            .group_by(sessions.c.status)
        )
        return {status: count for status, count in rows}

    async def pin_session(
        self, conn: AsyncConnection, session_id: str, principal_id: str, ts: str
    ) -> None:
        exists = await conn.scalar(
            select(session_pins.c.session_id).where(
                session_pins.c.session_id == session_id, session_pins.c.principal_id == principal_id
            )
        )
        if not exists:
            await conn.execute(
                session_pins.insert().values(
                    session_id=session_id, principal_id=principal_id, created_at=ts
                )
            )

    async def unpin_session(
        self, conn: AsyncConnection, session_id: str, principal_id: str
    ) -> None:
        await conn.execute(
            session_pins.delete().where(
                session_pins.c.session_id == session_id, session_pins.c.principal_id == principal_id
            )
        )

    async def sessions_in_status(
        self, conn: AsyncConnection, statuses: Iterable[SessionStatus]
    ) -> list[tuple[str, str]]:
        rows = await conn.execute(
            select(sessions.c.organization_id, sessions.c.id).where(
                sessions.c.status.in_([s.value for s in statuses]), sessions.c.deleted_at.is_(None)
            )
        )
        return [(r[0], r[1]) for r in rows]


# A harness or agent of an organization by id or by name, built once (bound parameters).
_BY_ORG_KEY = {
    (table.name, by): select(table).where(
        table.c.organization_id == bindparam("org_id"), table.c[by] == bindparam("key")
    )
    for table in (harnesses, agents)
    for by in ("id", "name")
}


def _listing_filters(
    table: Table, search: str | None, include_archived: bool
) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if not include_archived:
        conds.append(table.c.status == ResourceStatus.ACTIVE.value)
    if search:
        pattern = f"%{like_escape(search.lower())}%"
        conds.append(
            or_(
                func.lower(table.c.name).like(pattern, escape="\\"),
                func.lower(func.coalesce(table.c.display_name, "")).like(pattern, escape="\\"),
                func.lower(func.coalesce(table.c.description, "")).like(pattern, escape="\\"),
            )
        )
    return conds


__all__ = ["SessionFilter", "Store", "events", "true", "turns"]
