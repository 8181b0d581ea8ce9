"""Organizations, principals and personal access tokens.

Tokens look like ``evr_pat_<43 url-safe chars>``; only their SHA-256 is stored. A token may
expire (``expires_at``) and may be revoked; either way it stops authenticating at once. A
request names its organization with ``X-Org-Id``; without it, a principal that belongs to a
single organization uses that one.

Every request authenticates, so a token's user and memberships are kept in the process for a
moment (:class:`~everloop.services.token_cache.TokenCache`, one second by default, never past
the token's expiry). A revocation forgets them all in the revoking process, and marks the
data dir's :class:`~everloop.store.tokens.RevocationMarker`, which a process sharing the data
dir (the server beside ``everloop token revoke``) checks on every request; a process on
another host keeps a revoked token's identity for at most that second.

Failed authentications are limited per client address (:class:`FailedAuthLimiter`): an
address over the limit is refused before its token is looked up, unless the token
authenticated in this process within the last hour.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.resources import AccessToken, Principal, PrincipalKind
from everloop.domain.roles import Role, has_role
from everloop.domain.timestamps import format_ts
from everloop.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthenticated,
)
from everloop.services.token_cache import TokenCache
from everloop.store import channels as channel_store
from everloop.store import tokens as token_store
from everloop.store.db import Database
from everloop.store.sql import Store
from everloop.store.tokens import RevocationMarker

if TYPE_CHECKING:
    from everloop.services.auth_failures import FailedAuthLimiter

T = TypeVar("T")

TOKEN_PREFIX = "evr_pat_"
AGENT_KEY_PREFIX = "evr_ak_"
RUNTIME_TOKEN_PREFIX = "evr_rt_"
CHANNEL_TOKEN_PREFIXES = (AGENT_KEY_PREFIX, RUNTIME_TOKEN_PREFIX)
"""Credentials of the Agent Execution API (``services/channel_auth.py``): they reach their
agent's channel routes only; on any other route a live one is a 403."""
ADMIN_ROLE = Role.ADMIN.value
OWNER_ROLE = Role.OWNER.value


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, on behalf of which organization. ``principal_id`` is the user's own
    principal in that organization (kind ``user``, subject ``user_id``), ``role`` its role
    there (``domain.roles``: ``owner``, ``admin`` or ``member``)."""

    organization_id: str
    principal_id: str
    user_id: str
    role: str = "member"
    kind: PrincipalKind = PrincipalKind.USER
    """``agent_key`` or ``end_user`` for a caller of the Agent Execution API
    (``services/channel_auth.py``): then ``user_id`` is empty and ``subject_id`` names it."""
    subject_id: str | None = None

    @property
    def owner_subject_id(self) -> str | None:
        """The subject of the caller's principal (the user id of a user)."""
        return self.subject_id if self.kind is not PrincipalKind.USER else self.user_id

    @property
    def is_operator(self) -> bool:
        """Whether the caller operates this instance: an admin (or owner) of the default
        organization, the one the first start creates for the bootstrap admin (whose token is
        in ``<data-dir>/admin-token``). Tenants get organizations of their own; instance-wide views
        (the durable workers: host names, pids) are for operators only."""
        return (
            self.kind is PrincipalKind.USER
            and self.organization_id == ids.DEFAULT_ORG_ID
            and has_role(self.role, Role.ADMIN)
        )


@dataclass(frozen=True, slots=True)
class AdminBootstrap:
    """What the first start of a data dir created; ``token`` is None when nothing was new."""

    organization_id: str
    token: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization`` header (with or without ``Bearer``)."""
    if not authorization:
        raise Unauthenticated(
            "missing credentials: send 'Authorization: Bearer evr_pat_...' "
            "(the admin token is in <data-dir>/admin-token)"
        )
    token = authorization.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token.startswith(TOKEN_PREFIX) and not token.startswith(CHANNEL_TOKEN_PREFIXES):
        raise Unauthenticated("invalid token: expected a personal access token evr_pat_...")
    return token


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > 200:
        raise InvalidInput("a token name must be 1 to 200 characters", field="name")


class AuthService:
    """Tokens and who they authenticate. ``clock`` is the wall clock that expiry is checked
    against; ``revocations`` the data dir's marker (None: this process only); ``failures``
    the failed-authentication limit (None: no limit)."""

    def __init__(
        self,
        db: Database,
        store: Store,
        *,
        tokens: TokenCache | None = None,
        clock: Callable[[], datetime] = _utc_now,
        revocations: RevocationMarker | None = None,
        failures: FailedAuthLimiter | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._known = tokens or TokenCache()
        self._clock = clock
        self._revocations = revocations
        self._failures = failures

    async def bootstrap(self, *, org_name: str = "Default") -> AdminBootstrap:
        """Create the default org, an admin user and its first token, once per database."""
        ts = format_ts(self._clock())
        async with self._db.write() as conn:
            await self._store.ensure_organization(conn, ids.DEFAULT_ORG_ID, org_name, ts)
            if await self._store.first_user_id(conn) is not None:
                return AdminBootstrap(ids.DEFAULT_ORG_ID, None)
            user_id = uuid.uuid4().hex
            await self._store.insert_user(conn, user_id, "admin", ts)
            principal = Principal(
                ids.new_id("principal"), ids.DEFAULT_ORG_ID, PrincipalKind.USER, user_id, OWNER_ROLE
            )
            await self._store.insert_principal(conn, principal, ts)
            _, token = await self._mint(conn, user_id, "admin", ts, None)
        return AdminBootstrap(ids.DEFAULT_ORG_ID, token)

    async def create_token(self, name: str, expires_at: datetime | None = None) -> str:
        """Mint another token for the admin user (the CLI's ``token create``)."""
        _check_name(name)
        expiry = self._expiry(expires_at)
        async with self._db.write() as conn:
            user_id = await self._store.first_user_id(conn)
            if user_id is None:
                raise NotFound("no admin user yet: start `everloop serve` once to create it")
            _, token = await self._mint(conn, user_id, name, format_ts(self._clock()), expiry)
        return token

    async def mint_in(self, conn: AsyncConnection, user_id: str, name: str) -> str:
        """A new token for ``user_id`` in the transaction ``conn`` (an invited member's first)."""
        _, token = await self._mint(conn, user_id, name[:200], format_ts(self._clock()), None)
        return token

    def forget_identities(self) -> None:
        """After a membership or role change: every process re-reads who a token is (this one
        at once, those sharing the data dir on their next request)."""
        self._known.forget_all()
        if self._revocations is not None:
            self._revocations.mark()

    def _expiry(self, expires_at: datetime | None) -> str | None:
        """The stored form of an expiry, which must be in the future (a time without a zone
        is UTC)."""
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

    async def _mint(
        self, conn: AsyncConnection, user_id: str, name: str, ts: str, expires_at: str | None
    ) -> tuple[AccessToken, str]:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = AccessToken(ids.new_id("pat"), user_id, name, token[:12], ts, expires_at)
        await self._store.insert_token(
            conn,
            token_id=record.id,
            user_id=user_id,
            name=name,
            token_hash=hash_token(token),
            hint=record.hint,
            ts=ts,
            expires_at=expires_at,
        )
        return record, token

    # -- authenticating a request ------------------------------------------------------------

    async def authenticate(
        self,
        authorization: str | None,
        org_header: str | None,
        client: str | None = None,
        *,
        any_org: bool = False,
    ) -> Caller:
        """The caller of a request from the address ``client`` (None: not limited). Refused
        with 401 (and counted against ``client``), or 429 while ``client`` is over its limit
        of failures. ``any_org``: a route about the user rather than one organization (their
        list of organizations) needs no ``X-Org-Id`` from a member of several; it acts in the
        default organization if they are in it, else in the one they joined first."""
        user_id, memberships = await self.limited(
            authorization, client, lambda: self._identify(authorization)
        )
        if any_org and not org_header and len(memberships) > 1:
            preferred = [m for m in memberships if m.organization_id == ids.DEFAULT_ORG_ID]
            memberships = tuple((preferred or list(memberships))[:1])
        return self._caller(user_id, memberships, org_header)

    async def identify(
        self, authorization: str | None, client: str | None
    ) -> tuple[str, tuple[Principal, ...]]:
        """The user of a personal access token and its memberships (``limited``)."""
        return await self.limited(authorization, client, lambda: self._identify(authorization))

    async def limited(
        self, authorization: str | None, client: str | None, identify: Callable[[], Awaitable[T]]
    ) -> T:
        """``identify()`` under the failed-authentication limit of ``client`` (None: not
        limited): refused with 429 while ``client`` is over it; a 401 counts against it."""
        failures = self._failures if client is not None else None
        if failures is not None and client is not None:
            await self._check_failures(failures, client, authorization)
        try:
            return await identify()
        except Unauthenticated:
            if failures is not None and client is not None:
                await failures.failed(client)
            raise

    @property
    def tokens(self) -> TokenCache:
        """The process's cache of token identities (shared with ``services/channel_auth.py``)."""
        return self._known

    @property
    def revocations(self) -> RevocationMarker | None:
        return self._revocations

    async def _check_failures(
        self, failures: FailedAuthLimiter, client: str, authorization: str | None
    ) -> None:
        """Refuse (429) a client over its limit, unless its token is one vouched for."""
        retry_after = await failures.retry_after(client)
        if retry_after is None:
            return
        try:
            vouched = self._known.vouched(hash_token(bearer_token(authorization)))
        except Unauthenticated:
            vouched = False
        if not vouched:
            raise TooManyRequests(
                f"too many failed authentications from this address: retry in {retry_after}s",
                retry_after=retry_after,
            )

    async def _identify(self, authorization: str | None) -> tuple[str, tuple[Principal, ...]]:
        token = bearer_token(authorization)
        token_hash = hash_token(token)
        if token.startswith(CHANNEL_TOKEN_PREFIXES):
            await self._refuse_channel_credential(token, token_hash)
        if self._revocations is not None and self._revocations.changed():
            self._known.forget_all()  # another process revoked a token
        wall_clock = self._clock()
        known = self._known.get(token_hash, wall_clock)
        if known is None:
            generation = self._known.generation
            async with self._db.read() as conn:
                owner = await token_store.principals_for_token(
                    conn, token_hash, format_ts(wall_clock)
                )
            if owner is None:
                self._known.unvouch(token_hash)
                raise Unauthenticated("invalid, expired or revoked token")
            expires_at = datetime.fromisoformat(owner.expires_at) if owner.expires_at else None
            known = self._known.put(
                token_hash, owner.user_id, expires_at, owner.memberships, generation
            )
        return known.user_id, known.memberships

    async def _refuse_channel_credential(self, token: str, token_hash: str) -> None:
        """An agent key or runtime token outside its channel: 403 when it is live (it is
        known, but reaches nothing here), else 401 as any unknown token."""
        at = format_ts(self._clock())
        async with self._db.read() as conn:
            if token.startswith(AGENT_KEY_PREFIX):
                live = await channel_store.agent_key_by_hash(conn, token_hash, at) is not None
            else:
                live = await channel_store.runtime_token_by_hash(conn, token_hash, at) is not None
        if not live:
            raise Unauthenticated("invalid, expired or revoked token")
        raise Forbidden(
            "an agent key or runtime token reaches only its agent's channel routes "
            "(/api/v1/channels/{channel_id}/...), not the management API"
        )

    @staticmethod
    def _caller(user_id: str, memberships: tuple[Principal, ...], org_header: str | None) -> Caller:
        if org_header:
            ids.parse("org", org_header, field="X-Org-Id")
            for principal in memberships:
                if principal.organization_id == org_header:
                    return Caller(principal.organization_id, principal.id, user_id, principal.role)
            raise NotFound.of("organization", org_header)
        if len(memberships) == 1:
            only = memberships[0]
            return Caller(only.organization_id, only.id, user_id, only.role)
        if not memberships:
            raise Forbidden(
                "this token's user is not a member of any organization any more: ask an admin "
                "of the organization to add you again"
            )
        raise InvalidInput(
            "this token belongs to several organizations: choose one with the X-Org-Id header",
            field="X-Org-Id",
        )

    # -- the caller's own tokens (``/v1/auth/api-keys``) -------------------------------------

    async def list_tokens(self, caller: Caller) -> list[AccessToken]:
        """The caller's tokens that are not revoked (expired ones too: they show why)."""
        async with self._db.read() as conn:
            return await token_store.list_tokens(conn, user_id=caller.user_id)

    async def create_api_key(
        self, caller: Caller, name: str, expires_at: datetime | None = None
    ) -> tuple[AccessToken, str]:
        """Mint a token for the caller's user: the record and the token (shown only once)."""
        _check_name(name)
        expiry = self._expiry(expires_at)
        async with self._db.write() as conn:
            return await self._mint(conn, caller.user_id, name, format_ts(self._clock()), expiry)

    async def revoke_token(self, caller: Caller, token_id: str) -> None:
        """Revoke one of the caller's tokens."""
        await self._revoke(token_id, user_id=caller.user_id)

    # -- an organization's tokens, for its admins (``/v1/admin/api-keys``) -------------------

    async def list_org_tokens(self, caller: Caller) -> list[AccessToken]:
        """The tokens of every member of the caller's organization, revoked ones included."""
        _require_admin(caller)
        async with self._db.read() as conn:
            return await token_store.list_tokens(
                conn, organization_id=caller.organization_id, include_revoked=True
            )

    async def revoke_org_token(self, caller: Caller, token_id: str) -> None:
        """Revoke a token of any member of the caller's organization (404 for any other)."""
        _require_admin(caller)
        await self._revoke(token_id, organization_id=caller.organization_id)

    # -- every token, for the operator (the CLI, with the database's credentials) -----------

    async def list_all_tokens(self) -> list[AccessToken]:
        async with self._db.read() as conn:
            return await token_store.list_tokens(conn, include_revoked=True)

    async def revoke_any_token(self, token_id: str) -> None:
        await self._revoke(token_id, field="id")

    async def _revoke(
        self,
        token_id: str,
        *,
        field: str = "key_id",
        user_id: str | None = None,
        organization_id: str | None = None,
    ) -> None:
        """Revoke a token within a scope. This process forgets the identities it keeps at
        once, and processes sharing the data dir on their next request."""
        ids.parse("pat", token_id, field=field)
        revoked: bool | None = None  # None: unknown whether it committed
        try:
            async with self._db.write() as conn:
                revoked = await token_store.revoke(
                    conn,
                    token_id,
                    format_ts(self._clock()),
                    user_id=user_id,
                    organization_id=organization_id,
                )
        finally:
            if revoked is not False:
                self._known.forget_all()
                if self._revocations is not None:
                    self._revocations.mark()
        if not revoked:
            raise NotFound.of("api key", token_id)


def _require_admin(caller: Caller) -> None:
    if not has_role(caller.role, Role.ADMIN):
        raise Forbidden("only an admin of the organization may manage its members' tokens")
