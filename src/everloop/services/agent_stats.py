"""An agent's usage statistics (``GET /v1/agents/{id}/stats``): its sessions by status, their
turns, tokens, estimated cost and durations, computed from the sessions and turns themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from everloop.domain.resources import SessionStatus
from everloop.services.auth import Caller
from everloop.services.config_resources import AgentService
from everloop.store import agent_stats as store
from everloop.store.db import Database


@dataclass(frozen=True, slots=True)
class AgentStats:
    """A session's duration runs from its creation to the end of its last finished turn (0
    while none has finished); ``started_session_count`` counts sessions with a turn."""

    session_count: int
    active_session_count: int
    idle_session_count: int
    started_session_count: int
    waiting_for_tool_results_session_count: int
    execution_count: int
    total_session_duration_ms: int
    avg_session_duration_ms: int | None
    first_session_at: str | None
    last_session_at: str | None
    last_execution_at: str | None
    total_input_tokens: int
    total_output_tokens: int
    total_cache_read_tokens: int
    total_cache_creation_tokens: int
    total_estimated_cost_usd: float


class AgentStatsService:
    def __init__(self, db: Database, agents: AgentService) -> None:
        self._db = db
        self._agents = agents

    async def stats(self, caller: Caller, agent_id: str) -> AgentStats:
        org = caller.organization_id
        async with self._db.read() as conn:
            agent = await self._agents.get(caller, agent_id, conn)
            rows = await store.session_usage(conn, org, agent.id)
            cost = await store.estimated_cost_usd(conn, org, agent.id)
        by_status = [row.status for row in rows]
        durations = [_duration_ms(row) for row in rows]
        turn_times = [row.last_turn_at for row in rows if row.last_turn_at]
        created = [row.created_at for row in rows]
        return AgentStats(
            session_count=len(rows),
            active_session_count=by_status.count(SessionStatus.ACTIVE.value),
            idle_session_count=by_status.count(SessionStatus.IDLE.value),
            started_session_count=sum(1 for row in rows if row.turn_count),
            waiting_for_tool_results_session_count=by_status.count(
                SessionStatus.WAITING_FOR_TOOL_RESULTS.value
            ),
            execution_count=sum(row.turn_count for row in rows),
            total_session_duration_ms=sum(durations),
            avg_session_duration_ms=sum(durations) // len(rows) if rows else None,
            first_session_at=min(created, default=None),
            last_session_at=max(created, default=None),
            last_execution_at=max(turn_times, default=None),
            total_input_tokens=sum(row.input_tokens for row in rows),
            total_output_tokens=sum(row.output_tokens for row in rows),
            total_cache_read_tokens=sum(row.cache_read_tokens for row in rows),
            total_cache_creation_tokens=sum(row.cache_creation_tokens for row in rows),
            total_estimated_cost_usd=cost,
        )


def _duration_ms(row: store.SessionUsageRow) -> int:
    if row.last_turn_finished_at is None:
        return 0
    span = datetime.fromisoformat(row.last_turn_finished_at) - datetime.fromisoformat(
        row.created_at
    )
    return max(0, int(span.total_seconds() * 1000))
