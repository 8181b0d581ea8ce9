"""Health-check runs and their cases (``services.health_checks``).

Every move of a case is a guarded update (``WHERE status = ...``): exactly one writer claims a
pending case (and creates its session in that transaction) and exactly one records its result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.store.tables import events, health_check_cases, health_check_runs, sessions

TERMINAL_EVENTS = ("turn.completed", "turn.failed", "turn.cancelled", "turn.sealed")


@dataclass(frozen=True, slots=True)
class RunRow:
    id: str
    organization_id: str
    agent_id: str
    config_hash: str
    status: str
    judge_model_id: str | None
    cases: list[dict[str, Any]]
    summary: dict[str, Any] | None
    error_message: str | None
    principal_id: str
    user_id: str
    principal_role: str
    principal_kind: str
    created_at: str
    completed_at: str | None


@dataclass(frozen=True, slots=True)
class CaseRow:
    run_id: str
    case_index: int
    status: str
    session_id: str | None
    turn_id: str | None
    started_at: str | None
    result: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """What a case's session holds about its turn: its terminal event (type and data), the
    text of its last agent message, its model calls and the session's tokens."""

    terminal_type: str | None
    terminal_data: dict[str, Any]
    answer: str
    generations: int
    input_tokens: int
    output_tokens: int


def _run(row: Any) -> RunRow:
    return RunRow(**{key: getattr(row, key) for key in RunRow.__slots__})


def _case(row: Any) -> CaseRow:
    return CaseRow(**{key: getattr(row, key) for key in CaseRow.__slots__})


async def insert_run(conn: AsyncConnection, values: dict[str, Any], case_count: int) -> None:
    await conn.execute(insert(health_check_runs).values(**values))
    await conn.execute(
        insert(health_check_cases),
        [
            {"run_id": values["id"], "case_index": index, "status": "pending"}
            for index in range(case_count)
        ],
    )


async def get_run(
    conn: AsyncConnection, run_id: str, *, org_id: str | None = None, agent_id: str | None = None
) -> RunRow | None:
    query = select(health_check_runs).where(health_check_runs.c.id == run_id)
    if org_id is not None:
        query = query.where(health_check_runs.c.organization_id == org_id)
    if agent_id is not None:
        query = query.where(health_check_runs.c.agent_id == agent_id)
    row = (await conn.execute(query)).first()
    return _run(row) if row else None


async def list_runs(
    conn: AsyncConnection, org_id: str, agent_id: str, *, limit: int, offset: int
) -> list[RunRow]:
    """Newest first."""
    query = (
        select(health_check_runs)
        .where(
            health_check_runs.c.organization_id == org_id,
            health_check_runs.c.agent_id == agent_id,
        )
        .order_by(health_check_runs.c.created_at.desc(), health_check_runs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_run(row) for row in await conn.execute(query)]


async def unfinished_run_ids(conn: AsyncConnection) -> list[str]:
    query = (
        select(health_check_runs.c.id)
        .where(health_check_runs.c.status.in_(("pending", "running")))
        .order_by(health_check_runs.c.created_at)
    )
    return [str(value) for value in (await conn.execute(query)).scalars()]


async def cases_of(conn: AsyncConnection, run_ids: Sequence[str]) -> list[CaseRow]:
    if not run_ids:
        return []
    query = (
        select(health_check_cases)
        .where(health_check_cases.c.run_id.in_(list(run_ids)))
        .order_by(health_check_cases.c.run_id, health_check_cases.c.case_index)
    )
    return [_case(row) for row in await conn.execute(query)]


async def get_case(conn: AsyncConnection, run_id: str, index: int) -> CaseRow | None:
    query = select(health_check_cases).where(
        health_check_cases.c.run_id == run_id, health_check_cases.c.case_index == index
    )
    row = (await conn.execute(query)).first()
    return _case(row) if row else None


async def claim_case(
    conn: AsyncConnection, run_id: str, index: int, *, session_id: str, turn_id: str, ts: str
) -> bool:
    """Pending -> running with the session and turn about to be created in this transaction;
    False when another writer claimed it first (on PostgreSQL the row lock makes it wait for
    that writer's commit, then see the case running)."""
    result = await conn.execute(
        update(health_check_cases)
        .where(
            health_check_cases.c.run_id == run_id,
            health_check_cases.c.case_index == index,
            health_check_cases.c.status == "pending",
        )
        .values(status="running", session_id=session_id, turn_id=turn_id, started_at=ts)
    )
    return result.rowcount == 1


async def finish_case(
    conn: AsyncConnection, run_id: str, index: int, result: dict[str, Any]
) -> bool:
    """Pending (a case that could not start) or running -> done with its result; False when
    it was recorded already."""
    updated = await conn.execute(
        update(health_check_cases)
        .where(
            health_check_cases.c.run_id == run_id,
            health_check_cases.c.case_index == index,
            health_check_cases.c.status.in_(("pending", "running")),
        )
        .values(status="done", result=result)
    )
    return updated.rowcount == 1


async def move_run(
    conn: AsyncConnection, run_id: str, from_statuses: Sequence[str], values: dict[str, Any]
) -> bool:
    result = await conn.execute(
        update(health_check_runs)
        .where(
            health_check_runs.c.id == run_id,
            health_check_runs.c.status.in_(list(from_statuses)),
        )
        .values(**values)
    )
    return result.rowcount == 1


async def turn_record(conn: AsyncConnection, session_id: str, turn_id: str) -> TurnRecord:
    wanted = (*TERMINAL_EVENTS, "output.message.completed", "llm.generation")
    query = (
        select(events.c.type, events.c.data)
        .where(
            events.c.session_id == session_id,
            events.c.turn_id == turn_id,
            events.c.type.in_(wanted),
        )
        .order_by(events.c.sequence)
    )
    terminal_type: str | None = None
    terminal_data: dict[str, Any] = {}
    answer = ""
    generations = 0
    for kind, data in await conn.execute(query):
        if kind in TERMINAL_EVENTS:
            terminal_type, terminal_data = kind, dict(data or {})
        elif kind == "llm.generation":
            generations += 1
        else:
            answer = _message_text((data or {}).get("message") or {})
    usage = (
        await conn.execute(
            select(sessions.c.input_tokens, sessions.c.output_tokens).where(
                sessions.c.id == session_id
            )
        )
    ).first()
    return TurnRecord(
        terminal_type,
        terminal_data,
        answer,
        generations,
        int(usage.input_tokens) if usage else 0,
        int(usage.output_tokens) if usage else 0,
    )


def _message_text(message: dict[str, Any]) -> str:
    parts = message.get("content") or []
    return "".join(
        str(part.get("text") or "")
        for part in parts
        if isinstance(part, dict) and part.get("type") == "text"
    )
