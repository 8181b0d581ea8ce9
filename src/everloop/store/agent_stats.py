"""The rows an agent's usage statistics are computed from: its sessions (with their turns)
and the estimated cost of their model calls."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Float, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.store.tables import events, sessions, turns


@dataclass(frozen=True, slots=True)
class SessionUsageRow:
    """One session of the agent: its status, token totals and what its turns did."""

    status: str
    created_at: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    turn_count: int
    last_turn_at: str | None
    last_turn_finished_at: str | None


def _of_agent(org_id: str, agent_id: str) -> ColumnElement[bool]:
    return and_(
        sessions.c.organization_id == org_id,
        sessions.c.agent_id == agent_id,
        sessions.c.deleted_at.is_(None),
    )


async def session_usage(conn: AsyncConnection, org_id: str, agent_id: str) -> list[SessionUsageRow]:
    """The org's live sessions run with ``agent_id`` (subagent sessions included), one row each."""
    query = (
        select(
            sessions.c.status,
            sessions.c.created_at,
            sessions.c.input_tokens,
            sessions.c.output_tokens,
            sessions.c.cache_read_tokens,
            sessions.c.cache_creation_tokens,
            func.count(turns.c.id),
            func.max(turns.c.created_at),
            func.max(turns.c.finished_at),
        )
        .select_from(sessions.outerjoin(turns, turns.c.session_id == sessions.c.id))
        .where(_of_agent(org_id, agent_id))
        .group_by(sessions.c.id)
    )
    return [SessionUsageRow(*row) for row in (await conn.execute(query)).all()]


async def estimated_cost_usd(conn: AsyncConnection, org_id: str, agent_id: str) -> float:
    """The summed estimated cost of the model calls (``llm.generation`` events) of the agent's
    sessions; calls of a model without prices count nothing. A fork's copies of its parent's
    calls (its events up to ``forked_from_sequence``) are the parent's, counted there once."""
    cost = events.c.data["metadata"]["estimated_cost_usd"].as_float()
    query = (
        select(func.coalesce(func.sum(cost), 0.0).cast(Float))
        .select_from(events.join(sessions, sessions.c.id == events.c.session_id))
        .where(
            _of_agent(org_id, agent_id),
            events.c.type == "llm.generation",
            events.c.sequence > func.coalesce(sessions.c.forked_from_sequence, 0),
        )
    )
    return float((await conn.execute(query)).scalar_one())
