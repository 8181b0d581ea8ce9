"""Seeding an organization (built-in harnesses, provider and models) from several processes.

Every process reconciles the built-ins into the organizations it serves when it starts; an API
process and its workers start together. Each seed reads what is there and inserts what is
missing, so two at once could both insert, and one would fail its start-up on the unique
name. SQLite writers are serialized already; on PostgreSQL a transaction-scoped advisory lock
per organization makes the read-then-insert one step."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def lock_org_seeding(conn: AsyncConnection, org_id: str) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"seed:{org_id}"}
        )
