"""An agent's channels and agent keys, managed by the organization's admins.

A channel (``apichan_...``) is one API endpoint of an agent: the Agent Execution API serves it
under ``/api/v1/channels/{channel_id}`` (``services/channels.py``). ``allow_member_tokens``
says whether members' personal access tokens reach it; agent keys of its agent always do.

An agent key (``evr_ak_<43 url-safe chars>``) reaches every channel of its agent and nothing
else. Only its SHA-256 is stored; it is shown once, when created. A key may hold the
``end_user`` permission (it may then act for an application's end users with ``End-User``).
Revoking a key forgets every cached credential in this process at once and marks the data
dir's revocation marker, as for personal access tokens (``services/auth.py``): other processes
on the data dir refuse it from their next request.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.roles import Role, has_role
from everloop.domain.timestamps import format_ts
from everloop.errors import Forbidden, InvalidInput, NotFound
from everloop.services.auth import AGENT_KEY_PREFIX, Caller, hash_token
from everloop.services.token_cache import TokenCache
from everloop.store import channels as store
from everloop.store.channels import AgentKeyRow as AgentKeyRow  # what the routes show
from everloop.store.channels import ChannelRow as ChannelRow
from everloop.store.db import Database
from everloop.store.sql import Store
from everloop.store.tokens import RevocationMarker

END_USER_PERMISSION = "end_user"
PERMISSIONS = frozenset({END_USER_PERMISSION})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _require_admin(caller: Caller) -> None:
    if not has_role(caller.role, Role.ADMIN):
        raise Forbidden("only an admin of the organization may manage agent channels and keys")


def _check_name(name: str) -> str:
    if not name.strip() or len(name) > 200:
        raise InvalidInput("a name must be 1 to 200 characters", field="name")
    return name


def _check_permissions(permissions: list[str]) -> tuple[str, ...]:
    for permission in permissions:
        if permission not in PERMISSIONS:
            raise InvalidInput(
                f"unknown permission '{permission}' (known: {', '.join(sorted(PERMISSIONS))})",
                field="permissions",
            )
    return tuple(sorted(set(permissions)))


class AgentChannelService:
    """Channels and agent keys of the caller's organization's agents (admins only, but for
    reading channels). ``tokens`` and ``revocations`` are the ones the authenticating services
    share, so that a revocation takes effect at once."""

    def __init__(
        self,
        db: Database,
        store_: Store,
        *,
        tokens: TokenCache | None = None,
        revocations: RevocationMarker | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._db = db
        self._store = store_
        self._known = tokens or TokenCache()
        self._revocations = revocations
        self._clock = clock

    async def _agent(self, conn: AsyncConnection, caller: Caller, agent_id: str) -> None:
        ids.parse("agent", agent_id, field="agent_id")
        found = await self._store.get_agent(conn, caller.organization_id, agent_id=agent_id)
        if found is None:
            raise NotFound.of("agent", agent_id)

    # -- channels ---------------------------------------------------------------------------

    async def create_channel(
        self, caller: Caller, agent_id: str, name: str | None, allow_member_tokens: bool
    ) -> ChannelRow:
        """A new channel of the agent (admins only)."""
        async with self._db.write() as conn:
            await self._agent(conn, caller, agent_id)
            _require_admin(caller)
            channel = ChannelRow(
                ids.new_id("apichan"),
                caller.organization_id,
                agent_id,
                _check_name(name or "default"),
                allow_member_tokens,
                format_ts(self._clock()),
            )
            await store.insert_channel(conn, channel)
        return channel

    async def list_channels(self, caller: Caller, agent_id: str) -> list[ChannelRow]:
        async with self._db.read() as conn:
            await self._agent(conn, caller, agent_id)
            return await store.list_channels(conn, caller.organization_id, agent_id)

    async def get_channel(self, caller: Caller, agent_id: str, channel_id: str) -> ChannelRow:
        ids.parse("apichan", channel_id, field="channel_id")
        async with self._db.read() as conn:
            await self._agent(conn, caller, agent_id)
            found = await store.get_channel(conn, channel_id, caller.organization_id)
        if found is None or found.agent_id != agent_id:
            raise NotFound.of("channel", channel_id)
        return found

    async def delete_channel(self, caller: Caller, agent_id: str, channel_id: str) -> None:
        """Delete a channel (admins only): its routes answer 404 from now on, and the runtime
        tokens minted for it stop working. The sessions made through it stay."""
        ids.parse("apichan", channel_id, field="channel_id")
        async with self._db.write() as conn:
            await self._agent(conn, caller, agent_id)
            _require_admin(caller)
            deleted = await store.delete_channel(
                conn, caller.organization_id, agent_id, channel_id, format_ts(self._clock())
            )
        if not deleted:
            raise NotFound.of("channel", channel_id)

    # -- agent keys -------------------------------------------------------------------------

    async def create_key(
        self,
        caller: Caller,
        agent_id: str,
        name: str,
        permissions: list[str],
        expires_at: datetime | None = None,
    ) -> tuple[AgentKeyRow, str]:
        """Mint an agent key (admins only): the record and the key, shown only here."""
        async with self._db.write() as conn:
            await self._agent(conn, caller, agent_id)
            _require_admin(caller)
            org_id = caller.organization_id
            return await self._mint(conn, org_id, agent_id, name, permissions, expires_at)

    async def create_key_any(
        self, agent_id: str, name: str, permissions: list[str], expires_at: datetime | None
    ) -> tuple[AgentKeyRow, str]:
        """Mint an agent key for any agent of the database (the CLI, as the operator)."""
        ids.parse("agent", agent_id, field="agent_id")
        async with self._db.write() as conn:
            org_id = await store.agent_organization(conn, agent_id)
            if org_id is None:
                raise NotFound.of("agent", agent_id)
            return await self._mint(conn, org_id, agent_id, name, permissions, expires_at)

    async def _mint(
        self,
        conn: AsyncConnection,
        org_id: str,
        agent_id: str,
        name: str,
        permissions: list[str],
        expires_at: datetime | None,
    ) -> tuple[AgentKeyRow, str]:
        checked = _check_permissions(permissions)
        expiry = self._expiry(expires_at)
        token = AGENT_KEY_PREFIX + secrets.token_urlsafe(32)
        key = AgentKeyRow(
            ids.new_id("agentkey"),
            org_id,
            agent_id,
            ids.new_id("principal"),
            _check_name(name),
            token[:12],
            checked,
            format_ts(self._clock()),
            expiry,
            None,
        )
        await store.insert_agent_key(conn, key, hash_token(token))
        return key, token

    def _expiry(self, expires_at: datetime | None) -> str | None:
        if expires_at is None:
            return None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= self._clock():
            raise InvalidInput(
                f"expires_at must be in the future (got {format_ts(expires_at)})",
                field="expires_at",
            )
        return format_ts(expires_at)

    async def list_keys(self, caller: Caller, agent_id: str) -> list[AgentKeyRow]:
        """The agent's keys, revoked ones included (admins only; never the keys themselves)."""
        async with self._db.read() as conn:
            await self._agent(conn, caller, agent_id)
            _require_admin(caller)
            return await store.list_agent_keys(conn, caller.organization_id, agent_id)

    async def list_keys_any(self, agent_id: str | None) -> list[AgentKeyRow]:
        """Every agent key of the database, or of one agent (the CLI)."""
        if agent_id is not None:
            ids.parse("agent", agent_id, field="agent_id")
        async with self._db.read() as conn:
            return await store.list_agent_keys(conn, None, agent_id)

    async def revoke_key(self, caller: Caller, agent_id: str, key_id: str) -> None:
        """Revoke one of the agent's keys (admins only); it is refused at once."""
        ids.parse("agentkey", key_id, field="agent_key_id")
        async with self._db.read() as conn:
            await self._agent(conn, caller, agent_id)
        _require_admin(caller)
        await self._revoke(key_id, organization_id=caller.organization_id, agent_id=agent_id)

    async def revoke_key_any(self, key_id: str) -> None:
        ids.parse("agentkey", key_id, field="id")
        await self._revoke(key_id)

    async def _revoke(
        self, key_id: str, *, organization_id: str | None = None, agent_id: str | None = None
    ) -> None:
        revoked: bool | None = None  # None: unknown whether it committed
        try:
            async with self._db.write() as conn:
                revoked = await store.revoke_agent_key(
                    conn,
                    key_id,
                    format_ts(self._clock()),
                    organization_id=organization_id,
                    agent_id=agent_id,
                )
        finally:
            if revoked is not False:
                self._known.forget_all()
                if self._revocations is not None:
                    self._revocations.mark()
        if not revoked:
            raise NotFound.of("agent key", key_id)
