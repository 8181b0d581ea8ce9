"""Organizations, principals and personal access tokens.

Tokens look like ``evr_pat_<43 url-safe chars>``; only their SHA-256 is stored. A request names
its organization with ``X-Org-Id``; without it, a principal that belongs to a single
organization uses that one.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.resources import Principal, PrincipalKind
from everloop.domain.timestamps import now
from everloop.errors import InvalidInput, NotFound, Unauthenticated
from everloop.store.db import Database
from everloop.store.sql import Store

TOKEN_PREFIX = "evr_pat_"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, on behalf of which organization."""

    organization_id: str
    principal_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class AdminBootstrap:
    """What the first start of a data dir created; ``token`` is None when nothing was new."""

    organization_id: str
    token: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(self, db: Database, store: Store) -> None:
        self._db = db
        self._store = store

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
            token = await self._mint(conn, user_id, "admin", ts)
        return AdminBootstrap(ids.DEFAULT_ORG_ID, token)

    async def create_token(self, name: str) -> str:
        """Mint another token for the admin user (the CLI's ``token create``)."""
        if not name.strip() or len(name) > 200:
            raise InvalidInput("a token name must be 1 to 200 characters", field="name")
        async with self._db.write() as conn:
            user_id = await self._store.first_user_id(conn)
            if user_id is None:
                raise NotFound("no admin user yet: start `everloop serve` once to create it")
            return await self._mint(conn, user_id, name, now())

    async def _mint(self, conn: AsyncConnection, user_id: str, name: str, ts: str) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self._store.insert_token(
            conn,
            token_id=ids.new_id("pat"),
            user_id=user_id,
            name=name,
            token_hash=hash_token(token),
            hint=token[:12],
            ts=ts,
        )
        return token

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
        async with self._db.read() as conn:
            user_id = await self._store.user_for_token(conn, hash_token(token))
            if user_id is None:
                raise Unauthenticated("invalid or revoked token")
            memberships = await self._store.user_principals(conn, user_id)
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
