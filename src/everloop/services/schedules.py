"""Session schedules: create, change, pause, resume, trigger and delete them, through the API
(``/v1/durable/schedules``) and through the agent tools of capability ``session_schedule``
(``SchedulePort``). Firing is ``services.schedule_firing``.

Limits (settings): enabled schedules per session and per organization, and the shortest
interval of a recurring one. A schedule that fires into a session with an agent identity takes
that identity's timezone when it names none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.capabilities.base import ToolContext, ToolError
from everloop.capabilities.schedules import ScheduleRequest
from everloop.domain.messages import JsonValue
from everloop.domain.schedules import (
    ExecutionStatus,
    Schedule,
    ScheduleExecution,
    ScheduleStats,
    next_fire,
    parse_cron,
    parse_instant,
    parse_zone,
    shortest_interval,
)
from everloop.domain.timestamps import format_ts
from everloop.errors import Conflict, EverloopError, InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.services.schedule_firing import ScheduleTimer, record_fire, utc_now
from everloop.store import schedules as store
from everloop.store import turns as turn_store
from everloop.store.db import Database

MAX_MESSAGE_CHARS = 100_000
MAX_DESCRIPTION_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class ScheduleLimits:
    min_interval_seconds: float = 300.0
    max_per_session: int = 5
    max_per_org: int = 100


@dataclass(frozen=True, slots=True)
class NewSchedule:
    """A schedule to create. ``session_field`` and ``message_field`` name those two in errors
    (the API nests them in ``target.input``)."""

    session_id: str
    name: str
    message: str
    cron_expression: str | None = None
    scheduled_at: str | None = None
    timezone: str | None = None
    description: str | None = None
    enabled: bool = True
    catch_up_missed: bool = True
    max_concurrent: int | None = None
    session_field: str = "session_id"
    message_field: str = "message"


class ScheduleService:
    def __init__(self, db: Database, timer: ScheduleTimer, limits: ScheduleLimits) -> None:
        self._db = db
        self._timer = timer
        self._limits = limits

    # -- the API ----------------------------------------------------------------------------

    async def create(self, caller: Caller, spec: NewSchedule) -> Schedule:
        ids.parse("session", spec.session_id, field=spec.session_field)
        async with self._db.write() as conn:
            if (
                await turn_store.session_preview(conn, caller.organization_id, spec.session_id)
                is None
            ):
                raise InvalidInput(
                    f"no session {spec.session_id} in this organization", field=spec.session_field
                )
            schedule = await self._insert(
                conn, caller.organization_id, caller.principal_id, spec, utc_now()
            )
        self._timer.nudge()
        return schedule

    async def get(self, caller: Caller, schedule_id: str) -> Schedule:
        async with self._db.read() as conn:
            return await self._get(conn, caller, schedule_id)

    async def list_schedules(
        self,
        caller: Caller,
        *,
        session_id: str | None = None,
        enabled: bool | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> tuple[list[Schedule], int]:
        async with self._db.read() as conn:
            return await store.list_schedules(
                conn,
                caller.organization_id,
                session_id=session_id,
                enabled=enabled,
                offset=offset,
                limit=limit,
            )

    async def update(
        self, caller: Caller, schedule_id: str, changes: Mapping[str, Any]
    ) -> Schedule:
        """Apply ``changes`` (the fields of ``Schedule`` an update may set; ``enabled`` pauses
        or resumes). A change of when it fires moves its next due time."""
        now = utc_now()
        async with self._db.write() as conn:
            current = await self._get(conn, caller, schedule_id, lock=True)
            changed = replace(current, **dict(changes))
            _check_fields(changed)
            changed = _normalized(changed)
            timing = {"cron_expression", "scheduled_at", "timezone", "enabled"} & set(changes)
            values: dict[str, Any] = {
                key: getattr(changed, key)
                for key in changes
                if key in Schedule.__dataclass_fields__ and key != "enabled"
            }
            if timing:
                if changed.enabled:
                    if not current.enabled:
                        await self._check_room(conn, current.organization_id, current.session_id)
                    if changed.scheduled_at is not None and await store.fired_for(
                        conn, schedule_id, changed.scheduled_at
                    ):
                        raise InvalidInput(
                            f"this schedule fired for {changed.scheduled_at} already: give a "
                            "new scheduled_at to fire it again",
                            field="scheduled_at",
                        )
                    values["next_trigger_at"] = format_ts(self._first_fire(changed, now))
                else:
                    values["next_trigger_at"] = None
                values["enabled"] = changed.enabled
            values["updated_at"] = format_ts(now)
            await store.update_schedule(conn, schedule_id, values)
            updated = await self._get(conn, caller, schedule_id)
        self._timer.nudge()
        return updated

    async def pause(self, caller: Caller, schedule_id: str) -> Schedule:
        return await self.update(caller, schedule_id, {"enabled": False})

    async def resume(self, caller: Caller, schedule_id: str) -> Schedule:
        return await self.update(caller, schedule_id, {"enabled": True})

    async def delete(self, caller: Caller, schedule_id: str) -> None:
        async with self._db.write() as conn:
            await self._get(conn, caller, schedule_id, lock=True)
            await store.delete_schedules(conn, [schedule_id])

    async def trigger(self, caller: Caller, schedule_id: str) -> ScheduleExecution:
        """Fire now, whatever its state; its next due time stays."""
        now = utc_now()
        async with self._db.write() as conn:
            schedule = await self._get(conn, caller, schedule_id, lock=True)
            fired = await record_fire(
                conn, schedule, trigger="manual", due=now, now=now, executor=None
            )
            await store.update_schedule(conn, schedule_id, {"last_triggered_at": format_ts(now)})
        await self._timer.start(fired)
        async with self._db.read() as conn:
            found = await store.get_execution(conn, fired.execution_id)
        assert found is not None
        return found

    async def executions(
        self,
        caller: Caller,
        schedule_id: str,
        *,
        status: ExecutionStatus | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> tuple[list[ScheduleExecution], int]:
        async with self._db.read() as conn:
            await self._get(conn, caller, schedule_id)
            return await store.list_executions(
                conn, schedule_id, status=status, offset=offset, limit=limit
            )

    async def stats(self, caller: Caller, schedule_id: str) -> ScheduleStats:
        async with self._db.read() as conn:
            await self._get(conn, caller, schedule_id)
            return await store.stats(conn, schedule_id)

    # -- the tools (SchedulePort) -------------------------------------------------------------

    async def create_for_session(
        self, conn: AsyncConnection, context: ToolContext, request: ScheduleRequest
    ) -> JsonValue:
        owner = await store.session_owner(conn, context.session_id)
        spec = NewSchedule(
            session_id=context.session_id,
            name=request.name,
            message=request.message,
            cron_expression=request.cron_expression,
            scheduled_at=request.scheduled_at,
            timezone=request.timezone,
            description=request.description,
            catch_up_missed=request.catch_up_missed,
        )
        try:
            async with conn.begin_nested():
                schedule = await self._insert(conn, context.org_id, owner, spec, utc_now())
        except EverloopError as exc:
            raise ToolError(_readable(exc)) from None
        self._timer.nudge()
        return tool_view(schedule)

    async def list_for_session(self, conn: AsyncConnection, context: ToolContext) -> JsonValue:
        found, _ = await store.list_schedules(
            conn, context.org_id, session_id=context.session_id, limit=1000
        )
        return {"schedules": [tool_view(schedule) for schedule in found]}

    async def cancel_for_session(
        self, conn: AsyncConnection, context: ToolContext, ref: str
    ) -> JsonValue:
        schedule = await store.get_schedule(conn, context.org_id, ref, lock=True)
        if schedule is None or schedule.session_id != context.session_id:
            schedule = await store.find_by_name(conn, context.session_id, ref)
        if schedule is None:
            raise ToolError(
                f"this session has no schedule {ref!r}; list_schedules shows its schedules"
            )
        await store.delete_schedules(conn, [schedule.id])
        return {"cancelled": schedule.id, "name": schedule.name}

    # -- shared -------------------------------------------------------------------------------

    async def _get(
        self, conn: AsyncConnection, caller: Caller, schedule_id: str, *, lock: bool = False
    ) -> Schedule:
        ids.parse("sched", schedule_id, field="schedule_id")
        found = await store.get_schedule(conn, caller.organization_id, schedule_id, lock=lock)
        if found is None:
            raise NotFound.of("schedule", schedule_id)
        return found

    async def _insert(
        self, conn: AsyncConnection, org_id: str, owner: str, spec: NewSchedule, now: datetime
    ) -> Schedule:
        timezone = spec.timezone or await store.identity_timezone(conn, spec.session_id) or "UTC"
        stamp = format_ts(now)
        schedule = Schedule(
            id=ids.new_id("sched"),
            organization_id=org_id,
            session_id=spec.session_id,
            owner_principal_id=owner,
            name=spec.name,
            description=spec.description,
            cron_expression=spec.cron_expression,
            scheduled_at=spec.scheduled_at,
            timezone=timezone,
            message=spec.message,
            enabled=spec.enabled,
            catch_up_missed=spec.catch_up_missed,
            max_concurrent=spec.max_concurrent,
            next_trigger_at=None,
            last_triggered_at=None,
            created_at=stamp,
            updated_at=stamp,
        )
        _check_fields(schedule, message_field=spec.message_field)
        schedule = _normalized(schedule)
        first = self._first_fire(schedule, now)
        if spec.enabled:
            schedule = replace(schedule, next_trigger_at=format_ts(first))
            await self._check_room(conn, org_id, spec.session_id)
        if await store.find_by_name(conn, spec.session_id, spec.name) is not None:
            raise Conflict(f"this session already has a schedule named {spec.name!r}", field="name")
        await store.insert_schedule(
            conn, {key: getattr(schedule, key) for key in Schedule.__dataclass_fields__}
        )
        return schedule

    def _first_fire(self, schedule: Schedule, now: datetime) -> datetime:
        """When an enabled ``schedule`` fires first from ``now``; ``InvalidInput`` when never,
        or when it would fire more often than the limit allows."""
        if schedule.cron_expression is None:
            assert schedule.scheduled_at is not None
            moment = parse_instant(schedule.scheduled_at, field="scheduled_at")
            if moment <= now:
                raise InvalidInput(
                    f"scheduled_at {schedule.scheduled_at} is in the past: give a future time",
                    field="scheduled_at",
                )
            return moment
        cron = parse_cron(schedule.cron_expression)
        zone = parse_zone(schedule.timezone)
        first = next_fire(cron, zone, now)
        if first is None:
            raise InvalidInput(
                f"the cron expression {schedule.cron_expression!r} has no fire left",
                field="cron_expression",
            )
        shortest = shortest_interval(cron, zone, now)
        minimum = self._limits.min_interval_seconds
        if shortest is not None and shortest < minimum:
            raise InvalidInput(
                f"the cron expression fires {shortest:g} s apart; a recurring schedule may fire "
                f"at most every {minimum:g} s",
                field="cron_expression",
            )
        return first

    async def _check_room(self, conn: AsyncConnection, org_id: str, session_id: str) -> None:
        """Whether one more enabled schedule fits the session's and the organization's limits
        (the organization's are taken under a lock, so two at once cannot both fit)."""
        await store.lock_org_schedules(conn, org_id)
        limits = self._limits
        if await store.count_enabled(conn, session_id=session_id) >= limits.max_per_session:
            raise InvalidInput(
                f"this session has {limits.max_per_session} active schedules, the most allowed; "
                "pause or delete one first",
                field="enabled",
            )
        if await store.count_enabled(conn, org_id=org_id) >= limits.max_per_org:
            raise InvalidInput(
                f"this organization has {limits.max_per_org} active schedules, the most "
                "allowed; pause or delete one first",
                field="enabled",
            )


def _check_fields(schedule: Schedule, *, message_field: str = "message") -> None:
    if not 1 <= len(schedule.name) <= 200:
        raise InvalidInput("a schedule's name is 1 to 200 characters", field="name")
    if not schedule.message.strip() or len(schedule.message) > MAX_MESSAGE_CHARS:
        raise InvalidInput(
            f"the message is 1 to {MAX_MESSAGE_CHARS} characters", field=message_field
        )
    if schedule.description is not None and len(schedule.description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(
            f"a description is at most {MAX_DESCRIPTION_CHARS} characters", field="description"
        )
    if (schedule.cron_expression is None) == (schedule.scheduled_at is None):
        raise InvalidInput(
            "give either cron_expression (recurring) or scheduled_at (once), not both",
            field="cron_expression",
        )
    if schedule.cron_expression is not None:
        parse_cron(schedule.cron_expression)
    if schedule.scheduled_at is not None:
        parse_instant(schedule.scheduled_at, field="scheduled_at")
    parse_zone(schedule.timezone)
    if schedule.max_concurrent is not None and schedule.max_concurrent < 1:
        raise InvalidInput(
            "max_concurrent is at least 1 (or null: no limit)", field="max_concurrent"
        )


def _normalized(schedule: Schedule) -> Schedule:
    """Its times as stored: a cron expression's whitespace collapsed, an instant in UTC."""
    if schedule.cron_expression is not None:
        expression = parse_cron(schedule.cron_expression).expression
        schedule = replace(schedule, cron_expression=expression)
    if schedule.scheduled_at is not None:
        moment = parse_instant(schedule.scheduled_at, field="scheduled_at")
        schedule = replace(schedule, scheduled_at=format_ts(moment))
    return schedule


def _readable(exc: EverloopError) -> str:
    field = getattr(exc, "field", None)
    return f"{field}: {exc}" if field else str(exc)


def tool_view(schedule: Schedule) -> JsonValue:
    """A schedule as the tools show it to the model."""
    return {
        "schedule_id": schedule.id,
        "name": schedule.name,
        "kind": schedule.kind,
        "cron_expression": schedule.cron_expression,
        "scheduled_at": schedule.scheduled_at,
        "timezone": schedule.timezone,
        "message": schedule.message,
        "enabled": schedule.enabled,
        "next_trigger_at": schedule.next_trigger_at,
        "last_triggered_at": schedule.last_triggered_at,
    }
