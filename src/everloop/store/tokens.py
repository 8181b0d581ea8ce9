"""Personal access tokens: who a token hash belongs to, listing and revoking them.

Only a token's SHA-256 is stored; a revoked token keeps its row (``revoked_at`` set) and never
authenticates again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.resources import AccessToken, Principal, PrincipalKind
from everloop.store.tables import access_tokens, principals

_KINDS = {kind.value: kind for kind in PrincipalKind}


async def principals_for_token(
    conn: AsyncConnection, token_hash: str
) -> tuple[str, tuple[Principal, ...]] | None:
    """The user of a live (not revoked) token and that user's principals, oldest first, in
    one query; None for an unknown or revoked token."""
    rows = (
        await conn.execute(
            select(
                access_tokens.c.user_id,
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
                    ),
                )
            )
            .where(access_tokens.c.token_hash == token_hash, access_tokens.c.revoked_at.is_(None))
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
    return rows[0].user_id, memberships


def _token(row: Any) -> AccessToken:
    return AccessToken(row.id, row.user_id, row.name, row.token_hint, row.created_at)


async def live_tokens(conn: AsyncConnection, user_id: str) -> list[AccessToken]:
    """The user's tokens that are not revoked, oldest first."""
    rows = await conn.execute(
        select(
            access_tokens.c.id,
            access_tokens.c.user_id,
            access_tokens.c.name,
            access_tokens.c.token_hint,
            access_tokens.c.created_at,
        )
        .where(access_tokens.c.user_id == user_id, access_tokens.c.revoked_at.is_(None))
        .order_by(access_tokens.c.created_at, access_tokens.c.id)
    )
    return [_token(r) for r in rows]


async def revoke(conn: AsyncConnection, user_id: str, token_id: str, ts: str) -> bool:
    """Revoke the user's token ``token_id``; False when it has no such live token."""
    result = await conn.execute(
        update(access_tokens)
        .where(
            access_tokens.c.id == token_id,
            access_tokens.c.user_id == user_id,
            access_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=ts)
    )
    return bool(result.rowcount)
