"""Queries of the Agent Execution API's tables: channels, agent keys, runtime tokens, the
principals of end users and agent keys, and a caller's sessions of one agent.

Credentials are found by the SHA-256 of the token only; a revoked or expired one is never
returned. Every management query is scoped to an organization (another org's row is None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.resources import PrincipalKind, Session
from everloop.store.session_rows import read_sessions, session_select
from everloop.store.tables import (
    agent_channels,
    agent_keys,
    agents,
    principals,
    runtime_tokens,
    sessions,
)


@dataclass(frozen=True, slots=True)
class ChannelRow:
    id: str
    organization_id: str
    agent_id: str
    name: str
    allow_member_tokens: bool
    created_at: str


@dataclass(frozen=True, slots=True)
class AgentKeyRow:
    id: str
    organization_id: str
    agent_id: str
    principal_id: str
    name: str
    token_hint: str
    permissions: tuple[str, ...]
    created_at: str
    expires_at: str | None
    revoked_at: str | None


@dataclass(frozen=True, slots=True)
class RuntimeGrant:
    """A live runtime token: the channel and end user it is for, the key that minted it."""

    id: str
    organization_id: str
    channel_id: str
    agent_key_id: str
    principal_id: str
    expires_at: str


def _channel(row: Any) -> ChannelRow:
    return ChannelRow(
        row.id,
        row.organization_id,
        row.agent_id,
        row.name,
        bool(row.allow_member_tokens),
        row.created_at,
    )


def _key(row: Any) -> AgentKeyRow:
    return AgentKeyRow(
        row.id,
        row.organization_id,
        row.agent_id,
        row.principal_id,
        row.name,
        row.token_hint,
        tuple(row.permissions or ()),
        row.created_at,
        row.expires_at,
        row.revoked_at,
    )


# -- channels ----------------------------------------------------------------------------------


async def insert_channel(conn: AsyncConnection, channel: ChannelRow) -> None:
    await conn.execute(
        agent_channels.insert().values(
            id=channel.id,
            organization_id=channel.organization_id,
            agent_id=channel.agent_id,
            name=channel.name,
            allow_member_tokens=channel.allow_member_tokens,
            created_at=channel.created_at,
            deleted_at=None,
        )
    )


async def get_channel(
    conn: AsyncConnection, channel_id: str, organization_id: str | None = None
) -> ChannelRow | None:
    """A live channel; with ``organization_id``, only one of that organization."""
    query = select(agent_channels).where(
        agent_channels.c.id == channel_id, agent_channels.c.deleted_at.is_(None)
    )
    if organization_id is not None:
        query = query.where(agent_channels.c.organization_id == organization_id)
    row = (await conn.execute(query)).first()
    return _channel(row) if row else None


async def list_channels(
    conn: AsyncConnection, organization_id: str, agent_id: str
) -> list[ChannelRow]:
    rows = await conn.execute(
        select(agent_channels)
        .where(
            agent_channels.c.organization_id == organization_id,
            agent_channels.c.agent_id == agent_id,
            agent_channels.c.deleted_at.is_(None),
        )
        .order_by(agent_channels.c.created_at, agent_channels.c.id)
    )
    return [_channel(r) for r in rows]


async def delete_channel(
    conn: AsyncConnection, organization_id: str, agent_id: str, channel_id: str, ts: str
) -> bool:
    result = await conn.execute(
        update(agent_channels)
        .where(
            agent_channels.c.id == channel_id,
            agent_channels.c.organization_id == organization_id,
            agent_channels.c.agent_id == agent_id,
            agent_channels.c.deleted_at.is_(None),
        )
        .values(deleted_at=ts)
    )
    return bool(result.rowcount)


async def agent_organization(conn: AsyncConnection, agent_id: str) -> str | None:
    """The organization of an agent (the CLI works across organizations)."""
    found = await conn.scalar(select(agents.c.organization_id).where(agents.c.id == agent_id))
    return str(found) if found is not None else None


# -- agent keys --------------------------------------------------------------------------------


async def insert_agent_key(conn: AsyncConnection, key: AgentKeyRow, token_hash: str) -> None:
    """The key and its principal (kind ``agent_key``), in one transaction."""
    await conn.execute(
        principals.insert().values(
            id=key.principal_id,
            organization_id=key.organization_id,
            kind=PrincipalKind.AGENT_KEY.value,
            subject_id=key.id.split("_", 1)[1],
            parent_principal_id=None,
            name=key.name,
            role="member",
            created_at=key.created_at,
        )
    )
    await conn.execute(
        agent_keys.insert().values(
            id=key.id,
            organization_id=key.organization_id,
            agent_id=key.agent_id,
            principal_id=key.principal_id,
            name=key.name,
            token_hash=token_hash,
            token_hint=key.token_hint,
            permissions=list(key.permissions),
            created_by_principal_id=None,
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=None,
        )
    )


async def list_agent_keys(
    conn: AsyncConnection, organization_id: str | None, agent_id: str | None
) -> list[AgentKeyRow]:
    """Keys, revoked ones included, oldest first (all of them when both are None)."""
    query = select(agent_keys)
    if organization_id is not None:
        query = query.where(agent_keys.c.organization_id == organization_id)
    if agent_id is not None:
        query = query.where(agent_keys.c.agent_id == agent_id)
    rows = await conn.execute(query.order_by(agent_keys.c.created_at, agent_keys.c.id))
    return [_key(r) for r in rows]


async def revoke_agent_key(
    conn: AsyncConnection,
    key_id: str,
    ts: str,
    *,
    organization_id: str | None = None,
    agent_id: str | None = None,
) -> bool:
    """Revoke a key (within the scope given); False when there is no such live key."""
    conditions = [agent_keys.c.id == key_id, agent_keys.c.revoked_at.is_(None)]
    if organization_id is not None:
        conditions.append(agent_keys.c.organization_id == organization_id)
    if agent_id is not None:
        conditions.append(agent_keys.c.agent_id == agent_id)
    result = await conn.execute(update(agent_keys).where(*conditions).values(revoked_at=ts))
    return bool(result.rowcount)


async def agent_key_by_hash(conn: AsyncConnection, token_hash: str, at: str) -> AgentKeyRow | None:
    """The live key (not revoked, not expired at ``at``) with that hash."""
    row = (
        await conn.execute(
            select(agent_keys).where(
                agent_keys.c.token_hash == token_hash,
                agent_keys.c.revoked_at.is_(None),
                or_(agent_keys.c.expires_at.is_(None), agent_keys.c.expires_at > at),
            )
        )
    ).first()
    return _key(row) if row else None


# -- runtime tokens ----------------------------------------------------------------------------


async def insert_runtime_token(
    conn: AsyncConnection, grant: RuntimeGrant, token_hash: str, ts: str
) -> None:
    await conn.execute(
        runtime_tokens.insert().values(
            id=grant.id,
            organization_id=grant.organization_id,
            channel_id=grant.channel_id,
            agent_key_id=grant.agent_key_id,
            principal_id=grant.principal_id,
            token_hash=token_hash,
            created_at=ts,
            expires_at=grant.expires_at,
        )
    )


async def runtime_token_by_hash(
    conn: AsyncConnection, token_hash: str, at: str
) -> RuntimeGrant | None:
    """The runtime token with that hash if it has not expired at ``at`` and the key that
    minted it is live (revoking a key ends its runtime tokens)."""
    row = (
        await conn.execute(
            select(runtime_tokens)
            .select_from(
                runtime_tokens.join(agent_keys, agent_keys.c.id == runtime_tokens.c.agent_key_id)
            )
            .where(
                runtime_tokens.c.token_hash == token_hash,
                runtime_tokens.c.expires_at > at,
                agent_keys.c.revoked_at.is_(None),
                or_(agent_keys.c.expires_at.is_(None), agent_keys.c.expires_at > at),
            )
        )
    ).first()
    if row is None:
        return None
    return RuntimeGrant(
        row.id,
        row.organization_id,
        row.channel_id,
        row.agent_key_id,
        row.principal_id,
        row.expires_at,
    )


# -- end users ---------------------------------------------------------------------------------


async def end_user_principal(
    conn: AsyncConnection,
    *,
    principal_id: str,
    organization_id: str,
    subject_id: str,
    external_id: str,
    ts: str,
) -> str:
    """The id of the end user's principal (kind ``end_user``, ``subject_id`` naming the agent
    and the external id), created as ``principal_id`` the first time it is seen."""
    values = {
        "id": principal_id,
        "organization_id": organization_id,
        "kind": PrincipalKind.END_USER.value,
        "subject_id": subject_id,
        "parent_principal_id": None,
        "name": external_id,
        "role": "member",
        "created_at": ts,
    }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(principals)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["organization_id", "kind", "subject_id"])
    )
    found = await find_end_user(conn, organization_id, subject_id)
    assert found is not None
    return found


async def find_end_user(conn: AsyncConnection, organization_id: str, subject_id: str) -> str | None:
    """The id of the end user's principal, if it was seen before."""
    found = await conn.scalar(
        select(principals.c.id).where(
            principals.c.organization_id == organization_id,
            principals.c.kind == PrincipalKind.END_USER.value,
            principals.c.subject_id == subject_id,
        )
    )
    return str(found) if found is not None else None


async def end_user_of(conn: AsyncConnection, principal_id: str) -> str | None:
    """The external id of an end user's principal."""
    found = await conn.scalar(
        select(principals.c.name).where(
            principals.c.id == principal_id, principals.c.kind == PrincipalKind.END_USER.value
        )
    )
    return str(found) if found is not None else None


# -- a caller's sessions of one agent ----------------------------------------------------------


async def owned_sessions(
    conn: AsyncConnection,
    organization_id: str,
    agent_id: str,
    principal_id: str,
    *,
    limit: int,
    after: tuple[str, str] | None,
) -> list[Session]:
    """The live top-level sessions of the agent that the principal owns, most recently active
    (``updated_at``) first, after the keyset position ``after`` = (updated_at, id)."""
    query = session_select(principal_id).where(
        sessions.c.organization_id == organization_id,
        sessions.c.agent_id == agent_id,
        sessions.c.owner_principal_id == principal_id,
        sessions.c.deleted_at.is_(None),
        sessions.c.parent_session_id.is_(None),
    )
    if after is not None:
        updated_at, session_id = after
        query = query.where(
            or_(
                sessions.c.updated_at < updated_at,
                and_(sessions.c.updated_at == updated_at, sessions.c.id < session_id),
            )
        )
    result = await conn.execute(
        query.order_by(sessions.c.updated_at.desc(), sessions.c.id.desc()).limit(limit)
    )
    return read_sessions(result.keys(), result, with_pins=True)
