"""Session schedules and their executions (tables ``session_schedules``, ``schedule_executions``).

An execution's outcome is its turn's, joined on read (``_execution_status``): nothing has to
settle an execution when its turn ends, and it cannot disagree with the turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, case, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.schedules import (
    ExecutionStatus,
    Schedule,
    ScheduleExecution,
    ScheduleStats,
    ScheduleTrigger,
)
from everloop.store.tables import (
    agent_identities,
    schedule_executions,
    session_schedules,
    sessions,
    turns,
)

_S = session_schedules
_E = schedule_executions

# An execution's status: its own when it made no turn (skipped, failed to fire), else its turn's.
_execution_status: ColumnElement[str] = case(
    (_E.c.status != "fired", _E.c.status),
    (turns.c.status == "queued", "pending"),
    (turns.c.status == "running", "running"),
    (turns.c.status == "completed", "completed"),
    else_="failed",
)
_OPEN_TURN = ("queued", "running")


def schedule_of(row: Mapping[Any, Any]) -> Schedule:
    values = {key: row[key] for key in Schedule.__dataclass_fields__}
    values["enabled"] = bool(values["enabled"])
    values["catch_up_missed"] = bool(values["catch_up_missed"])
    return Schedule(**values)


async def insert_schedule(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    await conn.execute(_S.insert().values(**values))


async def get_schedule(
    conn: AsyncConnection, org_id: str, schedule_id: str, *, lock: bool = False
) -> Schedule | None:
    query = select(_S).where(_S.c.organization_id == org_id, _S.c.id == schedule_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return schedule_of(row) if row is not None else None


async def find_by_name(conn: AsyncConnection, session_id: str, name: str) -> Schedule | None:
    query = select(_S).where(_S.c.session_id == session_id, _S.c.name == name)
    row = (await conn.execute(query)).mappings().first()
    return schedule_of(row) if row is not None else None


async def list_schedules(
    conn: AsyncConnection,
    org_id: str,
    *,
    session_id: str | None = None,
    enabled: bool | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[Schedule], int]:
    conditions: list[ColumnElement[bool]] = [_S.c.organization_id == org_id]
    if session_id is not None:
        conditions.append(_S.c.session_id == session_id)
    if enabled is not None:
        conditions.append(_S.c.enabled.is_(enabled))
    total = (await conn.execute(select(func.count()).select_from(_S).where(*conditions))).scalar()
    rows = (
        (
            await conn.execute(
                select(_S).where(*conditions).order_by(_S.c.id).offset(offset).limit(limit)
            )
        )
        .mappings()
        .all()
    )
    return [schedule_of(row) for row in rows], int(total or 0)


async def update_schedule(
    conn: AsyncConnection, schedule_id: str, values: Mapping[str, Any]
) -> None:
    await conn.execute(update(_S).where(_S.c.id == schedule_id).values(**values))


async def delete_schedules(conn: AsyncConnection, schedule_ids: Sequence[str]) -> None:
    """Delete schedules and their executions. Their rows are locked first (in id order): a
    fire in flight holds its schedule's row until it commits an execution, which must be
    there to be deleted, or the schedule's delete fails on its foreign key."""
    if schedule_ids:
        await conn.execute(
            select(_S.c.id).where(_S.c.id.in_(schedule_ids)).order_by(_S.c.id).with_for_update()
        )
        await conn.execute(delete(_E).where(_E.c.schedule_id.in_(schedule_ids)))
        await conn.execute(delete(_S).where(_S.c.id.in_(schedule_ids)))


async def delete_session_schedules(conn: AsyncConnection, session_ids: Sequence[str]) -> None:
    """Delete the schedules (and executions) of deleted sessions."""
    if session_ids:
        found = await conn.execute(select(_S.c.id).where(_S.c.session_id.in_(session_ids)))
        await delete_schedules(conn, [row[0] for row in found])


async def count_enabled(
    conn: AsyncConnection, *, session_id: str | None = None, org_id: str | None = None
) -> int:
    query = select(func.count()).select_from(_S).where(_S.c.enabled)
    if session_id is not None:
        query = query.where(_S.c.session_id == session_id)
    if org_id is not None:
        query = query.where(_S.c.organization_id == org_id)
    return int((await conn.execute(query)).scalar() or 0)


async def lock_org_schedules(conn: AsyncConnection, org_id: str) -> None:
    """Serialize the enabling of an organization's schedules, so two at once cannot both pass
    its limit. SQLite writers are serialized already; on PostgreSQL, a transaction-scoped
    advisory lock."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"schedules:{org_id}"}
        )


# -- the timer ----------------------------------------------------------------------------------


async def earliest_due(conn: AsyncConnection) -> str | None:
    """The next due time of all enabled schedules (one index seek)."""
    query = select(func.min(_S.c.next_trigger_at)).where(_S.c.enabled)
    return cast(str | None, (await conn.execute(query)).scalar())


async def due_ids(conn: AsyncConnection, now: str, limit: int) -> list[str]:
    query = (
        select(_S.c.id)
        .where(_S.c.enabled, _S.c.next_trigger_at <= now)
        .order_by(_S.c.next_trigger_at)
        .limit(limit)
    )
    return [row[0] for row in await conn.execute(query)]


async def claim(conn: AsyncConnection, schedule_id: str, now: str) -> Schedule | None:
    """The schedule, locked for this transaction, if it is still enabled and due; None when it
    is not, or another process holds it (it is firing it: ``SKIP LOCKED``)."""
    query = (
        select(_S)
        .where(_S.c.id == schedule_id, _S.c.enabled, _S.c.next_trigger_at <= now)
        .with_for_update(skip_locked=True)
    )
    row = (await conn.execute(query)).mappings().first()
    return schedule_of(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class FireTarget:
    """What a fire needs of its session: whether it is live, and who it runs as."""

    organization_id: str
    preview: str | None
    locale: str | None
    agent_identity_id: str | None
    identity_principal_id: str | None
    identity_timezone: str | None
    owner_principal_id: str


async def fire_target(conn: AsyncConnection, session_id: str) -> FireTarget | None:
    """The live session a schedule posts into, with its identity; None when it was deleted.
    Not locked here: appending to its log locks its row, after the schedule's (the order every
    transaction that touches both keeps)."""
    query = (
        select(
            sessions.c.organization_id,
            sessions.c.preview,
            sessions.c.locale,
            sessions.c.agent_identity_id,
            sessions.c.owner_principal_id,
            agent_identities.c.principal_id,
            agent_identities.c.timezone,
            agent_identities.c.locale,
        )
        .select_from(
            sessions.outerjoin(
                agent_identities,
                and_(
                    agent_identities.c.id == sessions.c.agent_identity_id,
                    agent_identities.c.organization_id == sessions.c.organization_id,
                ),
            )
        )
        .where(sessions.c.id == session_id, sessions.c.deleted_at.is_(None))
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return FireTarget(
        organization_id=row[0],
        preview=row[1],
        locale=row[2] or row[7],  # the session's, else its identity's
        agent_identity_id=row[3],
        owner_principal_id=row[4],
        identity_principal_id=row[5],
        identity_timezone=row[6],
    )


async def session_owner(conn: AsyncConnection, session_id: str) -> str:
    """The principal owning the session: the owner of schedules its agent creates."""
    query = select(sessions.c.owner_principal_id).where(sessions.c.id == session_id)
    return cast(str, (await conn.execute(query)).scalar_one())


async def identity_timezone(conn: AsyncConnection, session_id: str) -> str | None:
    """The timezone of the session's agent identity: its schedules' default."""
    query = (
        select(agent_identities.c.timezone)
        .select_from(
            sessions.join(agent_identities, agent_identities.c.id == sessions.c.agent_identity_id)
        )
        .where(sessions.c.id == session_id)
    )
    return cast(str | None, (await conn.execute(query)).scalar())


# -- executions ---------------------------------------------------------------------------------


async def insert_execution(
    conn: AsyncConnection,
    *,
    execution_id: str,
    schedule: Schedule,
    trigger: ScheduleTrigger,
    scheduled_at: str,
    started_at: str,
    status: str,
    turn_id: str | None,
    error: str | None,
    claimed_by: str | None,
) -> None:
    await conn.execute(
        _E.insert().values(
            id=execution_id,
            schedule_id=schedule.id,
            organization_id=schedule.organization_id,
            session_id=schedule.session_id,
            trigger=trigger,
            scheduled_at=scheduled_at,
            started_at=started_at,
            status=status,
            turn_id=turn_id,
            error=error,
            claimed_by=claimed_by,
            created_at=started_at,
        )
    )


async def fired_for(conn: AsyncConnection, schedule_id: str, scheduled_at: str) -> bool:
    """Whether the timer has fired (or skipped) the schedule for this due time."""
    query = select(_E.c.id).where(
        _E.c.schedule_id == schedule_id,
        _E.c.scheduled_at == scheduled_at,
        _E.c.trigger != "manual",
    )
    return (await conn.execute(query)).first() is not None


async def open_executions(conn: AsyncConnection, schedule_id: str) -> int:
    """Fires of the schedule whose turn has not ended."""
    query = (
        select(func.count())
        .select_from(_E.join(turns, turns.c.id == _E.c.turn_id))
        .where(_E.c.schedule_id == schedule_id, turns.c.status.in_(_OPEN_TURN))
    )
    return int((await conn.execute(query)).scalar() or 0)


def _executions_select() -> Any:
    return select(
        _E.c.id,
        _E.c.schedule_id,
        _E.c.session_id,
        _E.c.trigger,
        _E.c.scheduled_at,
        _E.c.started_at,
        _execution_status.label("status"),
        _E.c.turn_id,
        turns.c.finished_at,
        _E.c.error,
        turns.c.status.label("turn_status"),
        _E.c.created_at,
    ).select_from(_E.outerjoin(turns, turns.c.id == _E.c.turn_id))


def _execution_of(row: Any) -> ScheduleExecution:
    status = cast(ExecutionStatus, row.status)
    error = row.error
    if error is None and status == "failed":
        error = "the turn was cancelled" if row.turn_status == "cancelled" else "the turn failed"
    return ScheduleExecution(
        id=row.id,
        schedule_id=row.schedule_id,
        session_id=row.session_id,
        trigger=cast(ScheduleTrigger, row.trigger),
        scheduled_at=row.scheduled_at,
        started_at=row.started_at,
        status=status,
        turn_id=row.turn_id,
        completed_at=row.finished_at if status in ("completed", "failed") else None,
        error=error,
        created_at=row.created_at,
    )


async def get_execution(conn: AsyncConnection, execution_id: str) -> ScheduleExecution | None:
    row = (await conn.execute(_executions_select().where(_E.c.id == execution_id))).first()
    return _execution_of(row) if row is not None else None


async def list_executions(
    conn: AsyncConnection,
    schedule_id: str,
    *,
    status: ExecutionStatus | None = None,
    offset: int = 0,
    limit: int = 20,
) -> tuple[list[ScheduleExecution], int]:
    """A schedule's executions, newest first, and how many match."""
    query = _executions_select().where(_E.c.schedule_id == schedule_id)
    counted = (
        select(func.count())
        .select_from(_E.outerjoin(turns, turns.c.id == _E.c.turn_id))
        .where(_E.c.schedule_id == schedule_id)
    )
    if status is not None:
        query = query.where(_execution_status == status)
        counted = counted.where(_execution_status == status)
    query = query.order_by(_E.c.started_at.desc(), _E.c.id.desc()).offset(offset).limit(limit)
    rows = (await conn.execute(query)).all()
    total = int((await conn.execute(counted)).scalar() or 0)
    return [_execution_of(row) for row in rows], total


async def stats(conn: AsyncConnection, schedule_id: str) -> ScheduleStats:
    by_status = (
        await conn.execute(
            select(_execution_status.label("status"), func.count())
            .select_from(_E.outerjoin(turns, turns.c.id == _E.c.turn_id))
            .where(_E.c.schedule_id == schedule_id)
            .group_by(_execution_status)
        )
    ).all()
    counts: dict[str, int] = {row[0]: int(row[1]) for row in by_status}
    ended = (
        await conn.execute(
            _executions_select().where(
                _E.c.schedule_id == schedule_id, turns.c.finished_at.is_not(None)
            )
        )
    ).all()
    durations = [d for d in (_execution_of(row).duration_ms for row in ended) if d is not None]
    latest, _ = await list_executions(conn, schedule_id, limit=1)
    return ScheduleStats(
        total_executions=sum(counts.values()),
        successful_executions=counts.get("completed", 0),
        failed_executions=counts.get("failed", 0),
        skipped_executions=counts.get("skipped", 0),
        avg_duration_ms=sum(durations) // len(durations) if durations else None,
        last_execution_status=latest[0].status if latest else None,
    )
