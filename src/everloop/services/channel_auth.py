"""Who calls a channel of the Agent Execution API, and runtime tokens.

Three credentials reach ``/api/v1/channels/{channel_id}/...``, as ``Authorization: Bearer``:

- an agent key ``evr_ak_...`` (``services/agent_channels.py``): every channel of its agent; on
  another agent's channel it is a 404, on the management API a 403 (``services/auth.py``);
- a runtime token ``evr_rt_...``: the one channel and the one end user it was minted for,
  until it expires (``EVERLOOP_RUNTIME_TOKEN_TTL_SECONDS``) or its key is revoked;
- a member's personal access token ``evr_pat_...``, only where the channel allows members
  (``allow_member_tokens``; else 403). A token of someone who is not a member is a 404.

**Who owns a session.** A channel call runs as a principal of the channel's organization:
``End-User: <id>`` on a key holding the ``end_user`` permission is the end user's principal
(kind ``end_user``, one per (agent, external id), made the first time it is seen; a key
without the permission gets 403); a key without ``End-User`` is the key's own principal (kind
``agent_key``); a runtime token is its end user; a member is the member. A caller sees only
the sessions its principal owns (``services/channels.py``): one end user never sees another's.

Every credential's identity is kept for a moment in the process's ``TokenCache`` (shared with
``AuthService``), never past the credential's expiry; a revocation clears it at once (and, by
the data dir's marker, in the other processes on their next request). Failures count against
the client's address as on the management API.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from everloop import ids
from everloop.domain.resources import PrincipalKind
from everloop.domain.timestamps import format_ts
from everloop.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from everloop.services.agent_channels import END_USER_PERMISSION
from everloop.services.auth import (
    AGENT_KEY_PREFIX,
    RUNTIME_TOKEN_PREFIX,
    AuthService,
    Caller,
    bearer_token,
    hash_token,
)
from everloop.store import channels as store
from everloop.store.channels import AgentKeyRow, ChannelRow, RuntimeGrant
from everloop.store.db import Database

END_USER_HEADER = "End-User"
MAX_END_USER_CHARS = 200


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ChannelCaller:
    """An authenticated call of a channel: the channel, the caller it runs as (its
    ``principal_id`` owns the sessions it makes), the credential's kind (``agent_key``,
    ``runtime_token`` or ``member``), the agent key behind it, and the end user, if any."""

    channel: ChannelRow
    caller: Caller
    credential: str
    agent_key_id: str | None = None
    end_user: str | None = None


@dataclass(frozen=True, slots=True)
class RuntimeToken:
    access_token: str
    expires_in: int
    virtual_user_id: str


def end_user_subject(agent_id: str, end_user: str) -> str:
    """The ``subject_id`` of an end user's principal: the agent and the external id, hashed
    (the column holds 32 characters; the external id itself is the principal's name)."""
    return hashlib.sha256(f"{agent_id}\0{end_user}".encode()).hexdigest()[:32]


def _check_end_user(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > MAX_END_USER_CHARS or not value.isprintable():
        raise InvalidInput(
            f"End-User must be 1 to {MAX_END_USER_CHARS} printable characters",
            field=END_USER_HEADER,
        )
    return value


class ChannelAuthService:
    """Authenticates channel calls; mints runtime tokens. ``auth`` is the management API's
    authentication: its token cache, revocation marker and failure limit are shared."""

    def __init__(
        self,
        db: Database,
        auth: AuthService,
        *,
        runtime_ttl_seconds: int = 900,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._db = db
        self._auth = auth
        self._known = auth.tokens
        self._revocations = auth.revocations
        self._ttl = runtime_ttl_seconds
        self._clock = clock
        self._end_users: dict[tuple[str, str], str] = {}  # (org, subject) -> principal id

    async def authenticate(
        self,
        authorization: str | None,
        channel_id: str,
        end_user: str | None,
        client: str | None = None,
    ) -> ChannelCaller:
        """The caller of a channel route; 401 for a missing, unknown, expired or revoked
        credential, 404 for a channel it does not reach, 403 for what it may not do there."""
        token = bearer_token(authorization)
        end_user = _check_end_user(end_user)
        if token.startswith(AGENT_KEY_PREFIX):
            key = await self._auth.limited(authorization, client, lambda: self._agent_key(token))
            channel = await self._channel(channel_id, key.organization_id, key.agent_id)
            return await self._as_key(channel, key, end_user)
        if token.startswith(RUNTIME_TOKEN_PREFIX):
            grant = await self._auth.limited(authorization, client, lambda: self._runtime(token))
            channel = await self._channel(channel_id, grant.organization_id, None)
            if channel.id != grant.channel_id:
                raise NotFound.of("channel", channel_id)
            return await self._as_runtime(channel, grant, end_user)
        user_id, memberships = await self._auth.identify(authorization, client)
        channel = await self._channel(channel_id, None, None)
        for principal in memberships:
            if principal.organization_id == channel.organization_id:
                break
        else:
            raise NotFound.of("channel", channel_id)
        if not channel.allow_member_tokens:
            raise Forbidden(
                "this channel does not accept members' personal access tokens: use an agent key"
            )
        if end_user is not None:
            raise Forbidden("End-User needs an agent key holding the 'end_user' permission")
        caller = Caller(principal.organization_id, principal.id, user_id, principal.role)
        return ChannelCaller(channel, caller, "member")

    async def _channel(
        self, channel_id: str, org_id: str | None, agent_id: str | None
    ) -> ChannelRow:
        ids.parse("apichan", channel_id, field="channel_id")
        async with self._db.read() as conn:
            found = await store.get_channel(conn, channel_id, org_id)
        if found is None or (agent_id is not None and found.agent_id != agent_id):
            raise NotFound.of("channel", channel_id)
        return found

    def _cached(self, token_hash: str) -> object | None:
        if self._revocations is not None and self._revocations.changed():
            self._known.forget_all()  # another process revoked a credential
        known = self._known.get(token_hash, self._clock())
        return known.grant if known is not None else None

    async def _agent_key(self, token: str) -> AgentKeyRow:
        token_hash = hash_token(token)
        cached = self._cached(token_hash)
        if isinstance(cached, AgentKeyRow):
            return cached
        generation = self._known.generation
        async with self._db.read() as conn:
            key = await store.agent_key_by_hash(conn, token_hash, format_ts(self._clock()))
        if key is None:
            self._known.unvouch(token_hash)
            raise Unauthenticated("invalid, expired or revoked agent key")
        expiry = datetime.fromisoformat(key.expires_at) if key.expires_at else None
        self._known.put(token_hash, "", expiry, (), generation, grant=key)
        return key

    async def _runtime(self, token: str) -> RuntimeGrant:
        token_hash = hash_token(token)
        cached = self._cached(token_hash)
        if isinstance(cached, RuntimeGrant):
            return cached
        generation = self._known.generation
        async with self._db.read() as conn:
            grant = await store.runtime_token_by_hash(conn, token_hash, format_ts(self._clock()))
        if grant is None:
            self._known.unvouch(token_hash)
            raise Unauthenticated("invalid or expired runtime token")
        expiry = datetime.fromisoformat(grant.expires_at)
        self._known.put(token_hash, "", expiry, (), generation, grant=grant)
        return grant

    async def _as_key(
        self, channel: ChannelRow, key: AgentKeyRow, end_user: str | None
    ) -> ChannelCaller:
        org_id = channel.organization_id
        if end_user is None:
            subject = key.id.split("_", 1)[1]
            caller = Caller(
                org_id, key.principal_id, "", kind=PrincipalKind.AGENT_KEY, subject_id=subject
            )
            return ChannelCaller(channel, caller, "agent_key", key.id)
        if END_USER_PERMISSION not in key.permissions:
            raise Forbidden(
                "this agent key may not act for end users: End-User needs a key holding the "
                "'end_user' permission"
            )
        subject = end_user_subject(channel.agent_id, end_user)
        principal_id = await self._end_user_principal(org_id, subject, end_user)
        caller = Caller(org_id, principal_id, "", kind=PrincipalKind.END_USER, subject_id=subject)
        return ChannelCaller(channel, caller, "agent_key", key.id, end_user)

    async def _as_runtime(
        self, channel: ChannelRow, grant: RuntimeGrant, end_user: str | None
    ) -> ChannelCaller:
        async with self._db.read() as conn:
            own = await store.end_user_of(conn, grant.principal_id)
        if own is None:
            raise Unauthenticated("invalid or expired runtime token")
        if end_user is not None and end_user != own:
            raise Forbidden("a runtime token acts for the end user it was minted for only")
        caller = Caller(
            channel.organization_id,
            grant.principal_id,
            "",
            kind=PrincipalKind.END_USER,
            subject_id=end_user_subject(channel.agent_id, own),
        )
        return ChannelCaller(channel, caller, "runtime_token", grant.agent_key_id, own)

    async def _end_user_principal(self, org_id: str, subject: str, end_user: str) -> str:
        known = self._end_users.get((org_id, subject))
        if known is not None:
            return known
        async with self._db.read() as conn:
            found = await store.find_end_user(conn, org_id, subject)
        if found is None:
            async with self._db.write() as conn:
                found = await store.end_user_principal(
                    conn,
                    principal_id=ids.new_id("principal"),
                    organization_id=org_id,
                    subject_id=subject,
                    external_id=end_user,
                    ts=format_ts(self._clock()),
                )
        if len(self._end_users) >= 10_000:
            self._end_users.clear()
        self._end_users[(org_id, subject)] = found
        return found

    async def mint_runtime_token(self, call: ChannelCaller) -> RuntimeToken:
        """A runtime token for the call's end user on the call's channel, valid for the
        configured lifetime; only an agent key acting for an end user may mint one."""
        if call.credential != "agent_key" or call.agent_key_id is None:
            raise Forbidden("only an agent key may mint runtime tokens")
        if call.end_user is None:
            raise InvalidInput(
                "runtime-auth needs the End-User header (the end user the token acts for)",
                field=END_USER_HEADER,
            )
        token = RUNTIME_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now_ = self._clock()
        grant = RuntimeGrant(
            ids.new_id("rtok"),
            call.channel.organization_id,
            call.channel.id,
            call.agent_key_id,
            call.caller.principal_id,
            format_ts(now_ + timedelta(seconds=self._ttl)),
        )
        async with self._db.write() as conn:
            await store.insert_runtime_token(conn, grant, hash_token(token), format_ts(now_))
        return RuntimeToken(token, self._ttl, call.caller.principal_id)
