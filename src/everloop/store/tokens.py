"""Personal access tokens: who a token hash belongs to, listing and revoking them.

Only a token's SHA-256 is stored; a revoked token keeps its row (``revoked_at`` set) and never
authenticates again, nor does one past its ``expires_at``.

A revocation also replaces the marker file ``<data-dir>/tokens-revoked``
(:class:`RevocationMarker`), so that a server sharing the data dir forgets the token identities
it keeps in memory on its next request, whichever process revoked (``everloop token revoke``
runs beside the server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from everloop.domain.resources import AccessToken, Principal, PrincipalKind
from everloop.store.tables import access_tokens, principals

_KINDS = {kind.value: kind for kind in PrincipalKind}


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """The user of a live token, when the token expires (None: never), and the user's
    principals, oldest first."""

    user_id: str
    expires_at: str | None
    memberships: tuple[Principal, ...]


async def principals_for_token(
    conn: AsyncConnection, token_hash: str, at: str
) -> TokenOwner | None:
    """The owner of a token that is live at ``at`` (not revoked, not expired), in one query;
    None for an unknown, revoked or expired token."""
    rows = (
        await conn.execute(
            select(
                access_tokens.c.user_id,
                access_tokens.c.expires_at,
                principals.c.id,
                principals.c.organization_id,
                principals.c.kind,
                principals.c.subject_id,
                principals.c.role,
            )
            .select_from(
                access_tokens.outerjoin(
                    principals,
                    and_(
                        principals.c.kind == PrincipalKind.USER.value,
                        principals.c.subject_id == access_tokens.c.user_id,
                        principals.c.removed_at.is_(None),
                    ),
                )
            )
            .where(
                access_tokens.c.token_hash == token_hash,
                access_tokens.c.revoked_at.is_(None),
                or_(access_tokens.c.expires_at.is_(None), access_tokens.c.expires_at > at),
            )
            .order_by(principals.c.created_at, principals.c.id)
        )
    ).all()
    if not rows:
        return None
    memberships = tuple(
        Principal(r.id, r.organization_id, _KINDS[r.kind], r.subject_id, r.role)
        for r in rows
        if r.id is not None
    )
    return TokenOwner(rows[0].user_id, rows[0].expires_at, memberships)


def _token(row: Any) -> AccessToken:
    return AccessToken(
        row.id,
        row.user_id,
        row.name,
        row.token_hint,
        row.created_at,
        row.expires_at,
        row.revoked_at,
    )


def _scope(user_id: str | None, organization_id: str | None) -> list[ColumnElement[bool]]:
    """Conditions on tokens: of one user, and/or of the users who are members of one org."""
    conditions: list[ColumnElement[bool]] = []
    if user_id is not None:
        conditions.append(access_tokens.c.user_id == user_id)
    if organization_id is not None:
        members = select(principals.c.subject_id).where(
            principals.c.organization_id == organization_id,
            principals.c.kind == PrincipalKind.USER.value,
        )
        conditions.append(access_tokens.c.user_id.in_(members))
    return conditions


async def list_tokens(
    conn: AsyncConnection,
    *,
    user_id: str | None = None,
    organization_id: str | None = None,
    include_revoked: bool = False,
) -> list[AccessToken]:
    """Tokens, oldest first: of ``user_id`` and/or the members of ``organization_id`` (all
    tokens when neither is given); revoked ones only with ``include_revoked``."""
    conditions = _scope(user_id, organization_id)
    if not include_revoked:
        conditions.append(access_tokens.c.revoked_at.is_(None))
    rows = await conn.execute(
        select(
            access_tokens.c.id,
            access_tokens.c.user_id,
            access_tokens.c.name,
            access_tokens.c.token_hint,
            access_tokens.c.created_at,
            access_tokens.c.expires_at,
            access_tokens.c.revoked_at,
        )
        .where(*conditions)
        .order_by(access_tokens.c.created_at, access_tokens.c.id)
    )
    return [_token(r) for r in rows]


async def revoke(
    conn: AsyncConnection,
    token_id: str,
    ts: str,
    *,
    user_id: str | None = None,
    organization_id: str | None = None,
) -> bool:
    """Revoke the token ``token_id`` (within the scope of :func:`list_tokens`); False when
    there is no such token that is not revoked yet."""
    result = await conn.execute(
        update(access_tokens)
        .where(
            access_tokens.c.id == token_id,
            access_tokens.c.revoked_at.is_(None),
            *_scope(user_id, organization_id),
        )
        .values(revoked_at=ts)
    )
    return bool(result.rowcount)


class RevocationMarker:
    """A file replaced after every revocation; a process notices the change with one
    ``stat`` (about a microsecond), where asking the database would cost a query.

    Each replacement is a new file (a new inode, a new modification time), so ``changed``
    sees it even if the size and the clock's resolution would not tell two writes apart.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen = self._signature()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            found = os.stat(self._path)
        except FileNotFoundError:
            return None
        return (found.st_ino, found.st_mtime_ns, found.st_ctime_ns)

    def changed(self) -> bool:
        """Whether a revocation was marked since the last call (or since this was made)."""
        current = self._signature()
        if current == self._seen:
            return False
        self._seen = current
        return True

    def mark(self) -> None:
        """Record that a token was revoked (after the revocation committed)."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fresh = self._path.with_name(f"{self._path.name}.{os.getpid()}.tmp")
        fresh.write_bytes(os.urandom(8))
        os.replace(fresh, self._path)
