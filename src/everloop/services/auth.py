"""Organizations, principals and personal access tokens.

Tokens look like ``evr_pat_<43 url-safe chars>``; only their SHA-256 is stored. A request names
its organization with ``X-Org-Id``; without it, a principal that belongs to a single
organization uses that one.

Every request authenticates, so a token's user and memberships are kept in the process for a
moment (:class:`TokenCache`, keyed by the token's hash, one second by default). Revoking a token
through this process forgets them all at once; another process's entries run out within that
second.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.resources import AccessToken, Principal, PrincipalKind
from everloop.domain.timestamps import now
from everloop.errors import InvalidInput, NotFound, Unauthenticated
from everloop.store import tokens as token_store
from everloop.store.db import Database
from everloop.store.sql import Store

TOKEN_PREFIX = "evr_pat_"
TOKEN_CACHE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, on behalf of which organization. ``principal_id`` is the user's own
    principal in that organization (kind ``user``, subject ``user_id``)."""

    organization_id: str
    principal_id: str
    user_id: str

    @property
    def is_operator(self) -> bool:
        """Whether the caller operates this instance: acts for the default organization, the one
        the first start creates for the bootstrap admin (whose token is in
        ``<data-dir>/admin-token``). Tenants get organizations of their own; instance-wide views
        (the durable workers: host names, pids) are for operators only."""
        return self.organization_id == ids.DEFAULT_ORG_ID


@dataclass(frozen=True, slots=True)
class AdminBootstrap:
    """What the first start of a data dir created; ``token`` is None when nothing was new."""

    organization_id: str
    token: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Known:
    expires: float
    user_id: str
    memberships: tuple[Principal, ...]


class TokenCache:
    """Live tokens' users and memberships for ``seconds``, by token hash, in this process.

    ``generation`` guards against a read that raced a revocation: a lookup notes it before
    reading the database and stores its answer only if no revocation happened meanwhile, so
    an entry can never outlive a revocation made through this process. Unknown and revoked
    tokens are never kept (a new token works at once).
    """

    def __init__(
        self,
        seconds: float = TOKEN_CACHE_SECONDS,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Known] = {}
        self.generation = 0

    def get(self, token_hash: str) -> _Known | None:
        known = self._entries.get(token_hash)
        if known is None:
            return None
        if known.expires <= self._clock():
            self._entries.pop(token_hash, None)
            return None
        return known

    def put(
        self,
        token_hash: str,
        user_id: str,
        memberships: tuple[Principal, ...],
        generation: int,
    ) -> _Known:
        now_ = self._clock()
        known = _Known(now_ + self._seconds, user_id, memberships)
        if generation != self.generation or self._seconds <= 0:
            return known  # a revocation came in while this was read: use it once, keep nothing
        if len(self._entries) >= self._max_entries:
            self._entries = {h: k for h, k in self._entries.items() if k.expires > now_}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[token_hash] = known
        return known

    def forget_all(self) -> None:
        self.generation += 1
        self._entries.clear()


class AuthService:
    def __init__(self, db: Database, store: Store, *, tokens: TokenCache | None = None) -> None:
        self._db = db
        self._store = store
        self._known = tokens or TokenCache()

    async def bootstrap(self, *, org_name: str = "Default") -> AdminBootstrap:
        """Create the default org, an admin user and its first token, once per database."""
        ts = now()
        async with self._db.write() as conn:
            await self._store.ensure_organization(conn, ids.DEFAULT_ORG_ID, org_name, ts)
            if await self._store.first_user_id(conn) is not None:
                return AdminBootstrap(ids.DEFAULT_ORG_ID, None)
            user_id = uuid.uuid4().hex
            await self._store.insert_user(conn, user_id, "admin", ts)
            principal = Principal(
                ids.new_id("principal"), ids.DEFAULT_ORG_ID, PrincipalKind.USER, user_id, "admin"
            )
            await self._store.insert_principal(conn, principal, ts)
            _, token = await self._mint(conn, user_id, "admin", ts)
        return AdminBootstrap(ids.DEFAULT_ORG_ID, token)

    async def create_token(self, name: str) -> str:
        """Mint another token for the admin user (the CLI's ``token create``)."""
        if not name.strip() or len(name) > 200:
            raise InvalidInput("a token name must be 1 to 200 characters", field="name")
        async with self._db.write() as conn:
            user_id = await self._store.first_user_id(conn)
            if user_id is None:
                raise NotFound("no admin user yet: start `everloop serve` once to create it")
            _, token = await self._mint(conn, user_id, name, now())
        return token

    async def _mint(
        self, conn: AsyncConnection, user_id: str, name: str, ts: str
    ) -> tuple[AccessToken, str]:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = AccessToken(ids.new_id("pat"), user_id, name, token[:12], ts)
        await self._store.insert_token(
            conn,
            token_id=record.id,
            user_id=user_id,
            name=name,
            token_hash=hash_token(token),
            hint=record.hint,
            ts=ts,
        )
        return record, token

    async def authenticate(self, authorization: str | None, org_header: str | None) -> Caller:
        if not authorization:
            raise Unauthenticated(
                "missing credentials: send 'Authorization: Bearer evr_pat_...' "
                "(the admin token is in <data-dir>/admin-token)"
            )
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token.startswith(TOKEN_PREFIX):
            raise Unauthenticated("invalid token: expected a personal access token evr_pat_...")
        token_hash = hash_token(token)
        known = self._known.get(token_hash)
        if known is None:
            generation = self._known.generation
            async with self._db.read() as conn:
                found = await token_store.principals_for_token(conn, token_hash)
            if found is None:
                raise Unauthenticated("invalid or revoked token")
            known = self._known.put(token_hash, *found, generation)
        user_id, memberships = known.user_id, known.memberships
        if org_header:
            ids.parse("org", org_header, field="X-Org-Id")
            for principal in memberships:
                if principal.organization_id == org_header:
                    return Caller(principal.organization_id, principal.id, user_id)
            raise NotFound.of("organization", org_header)
        if len(memberships) == 1:
            only = memberships[0]
            return Caller(only.organization_id, only.id, user_id)
        raise InvalidInput(
            "this token belongs to several organizations: choose one with the X-Org-Id header",
            field="X-Org-Id",
        )

    # -- the caller's own tokens (``/v1/auth/api-keys``) -------------------------------------

    async def list_tokens(self, caller: Caller) -> list[AccessToken]:
        async with self._db.read() as conn:
            return await token_store.live_tokens(conn, caller.user_id)

    async def create_api_key(self, caller: Caller, name: str) -> tuple[AccessToken, str]:
        """Mint a token for the caller's user: the record and the token (shown only once)."""
        if not name.strip() or len(name) > 200:
            raise InvalidInput("a token name must be 1 to 200 characters", field="name")
        async with self._db.write() as conn:
            return await self._mint(conn, caller.user_id, name, now())

    async def revoke_token(self, caller: Caller, token_id: str) -> None:
        """Revoke one of the caller's tokens. Requests in this process stop authenticating
        with it at once; other processes' cached entries run out within a second."""
        ids.parse("pat", token_id, field="key_id")
        try:
            async with self._db.write() as conn:
                if not await token_store.revoke(conn, caller.user_id, token_id, now()):
                    raise NotFound.of("api key", token_id)
        finally:
            # Also after a failure: whether it committed may be unknown; forgetting is safe.
            self._known.forget_all()
