"""Organizations and their members (user principals with a role) in the app database.

A member removed from an organization keeps its principal row (sessions and schedules name it
as their owner) with ``removed_at`` set; adding the person again clears it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.resources import PrincipalKind
from everloop.store.tables import access_tokens, organizations, principals, users

_USER = PrincipalKind.USER.value


@dataclass(frozen=True, slots=True)
class OrgRow:
    id: str
    name: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class MemberRow:
    """A person in an organization: their user and their principal there."""

    user_id: str
    name: str
    email: str | None
    principal_id: str
    role: str
    created_at: str  # when they joined the organization
    user_created_at: str


def _org(row: Sequence[Any]) -> OrgRow:
    return OrgRow(row[0], row[1], row[2], row[3] or row[2])


async def orgs_of_user(conn: AsyncConnection, user_id: str) -> list[tuple[OrgRow, str]]:
    """The organizations a user belongs to, with their role in each, oldest first."""
    rows = await conn.execute(
        select(
            organizations.c.id,
            organizations.c.name,
            organizations.c.created_at,
            organizations.c.updated_at,
            principals.c.role,
        )
        .join(principals, principals.c.organization_id == organizations.c.id)
        .where(
            principals.c.kind == _USER,
            principals.c.subject_id == user_id,
            principals.c.removed_at.is_(None),
        )
        .order_by(organizations.c.created_at, organizations.c.id)
    )
    return [(_org(r[:4]), r[4]) for r in rows]


async def get_org(conn: AsyncConnection, org_id: str) -> OrgRow | None:
    row = (
        await conn.execute(
            select(
                organizations.c.id,
                organizations.c.name,
                organizations.c.created_at,
                organizations.c.updated_at,
            ).where(organizations.c.id == org_id)
        )
    ).first()
    return None if row is None else _org(row)


async def rename_org(conn: AsyncConnection, org_id: str, name: str, ts: str) -> None:
    await conn.execute(
        update(organizations).where(organizations.c.id == org_id).values(name=name, updated_at=ts)
    )


_MEMBER_COLUMNS = (
    users.c.id,
    users.c.name,
    users.c.email,
    principals.c.id,
    principals.c.role,
    principals.c.created_at,
    users.c.created_at,
)


def _member(row: Sequence[Any]) -> MemberRow:
    return MemberRow(*row)


def _members_query(org_id: str) -> Select[Any]:
    return (
        select(*_MEMBER_COLUMNS)
        .join(principals, principals.c.subject_id == users.c.id)
        .where(
            principals.c.organization_id == org_id,
            principals.c.kind == _USER,
            principals.c.removed_at.is_(None),
        )
    )


async def list_members(conn: AsyncConnection, org_id: str) -> list[MemberRow]:
    rows = await conn.execute(
        _members_query(org_id).order_by(principals.c.created_at, principals.c.id)
    )
    return [_member(r) for r in rows]


async def get_member(conn: AsyncConnection, org_id: str, user_id: str) -> MemberRow | None:
    row = (await conn.execute(_members_query(org_id).where(users.c.id == user_id))).first()
    return None if row is None else _member(row)


async def membership(
    conn: AsyncConnection, org_id: str, user_id: str
) -> tuple[str, str | None] | None:
    """The principal id of a user in an organization and when it was removed (None: a
    member), or None when the user was never in it."""
    row = (
        await conn.execute(
            select(principals.c.id, principals.c.removed_at).where(
                principals.c.organization_id == org_id,
                principals.c.kind == _USER,
                principals.c.subject_id == user_id,
            )
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def restore_member(conn: AsyncConnection, principal_id: str, role: str) -> None:
    await conn.execute(
        update(principals).where(principals.c.id == principal_id).values(role=role, removed_at=None)
    )


async def set_role(conn: AsyncConnection, principal_id: str, role: str) -> None:
    await conn.execute(update(principals).where(principals.c.id == principal_id).values(role=role))


async def remove_member(conn: AsyncConnection, principal_id: str, ts: str) -> None:
    await conn.execute(
        update(principals).where(principals.c.id == principal_id).values(removed_at=ts)
    )


async def count_owners(conn: AsyncConnection, org_id: str) -> int:
    return int(
        await conn.scalar(
            select(func.count()).where(
                principals.c.organization_id == org_id,
                principals.c.kind == _USER,
                principals.c.role == "owner",
                principals.c.removed_at.is_(None),
            )
        )
        or 0
    )


async def user_by_email(conn: AsyncConnection, email: str) -> tuple[str, str] | None:
    """The id and name of the user with this e-mail address (compared case-insensitively)."""
    row = (
        await conn.execute(
            select(users.c.id, users.c.name).where(func.lower(users.c.email) == email.lower())
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def get_user(conn: AsyncConnection, user_id: str) -> tuple[str, str | None, str] | None:
    """A user's name, e-mail address and creation time."""
    row = (
        await conn.execute(
            select(users.c.name, users.c.email, users.c.created_at).where(users.c.id == user_id)
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


async def insert_user(
    conn: AsyncConnection, user_id: str, name: str, email: str | None, ts: str
) -> None:
    await conn.execute(users.insert().values(id=user_id, name=name, email=email, created_at=ts))


async def update_user(conn: AsyncConnection, user_id: str, **values: object) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(**values))


async def active_memberships(conn: AsyncConnection, user_id: str) -> int:
    return int(
        await conn.scalar(
            select(func.count()).where(
                principals.c.kind == _USER,
                principals.c.subject_id == user_id,
                principals.c.removed_at.is_(None),
            )
        )
        or 0
    )


async def revoke_user_tokens(conn: AsyncConnection, user_id: str, ts: str) -> int:
    """Revoke every live token of a user; how many."""
    result = await conn.execute(
        update(access_tokens)
        .where(access_tokens.c.user_id == user_id, access_tokens.c.revoked_at.is_(None))
        .values(revoked_at=ts)
    )
    return int(result.rowcount or 0)
