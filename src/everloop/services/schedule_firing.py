"""A schedule's fire: its message posted into its session as a queued turn, its execution
recorded, and its next due time, all in one transaction; and the timer that finds due fires.

**Exactly once across processes.** The timer of every executing process (``everloop serve``,
each ``everloop worker``) looks for due schedules. A fire *claims* its schedule by locking its
row with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite has one writer), re-checks that it is
still due, and in the same transaction records the execution, the ``input.message`` event and
the queued turn, and advances ``next_trigger_at``. The claim is the transaction: it ends at
commit, rollback or the death of the connection (a ``kill -9`` of the process), so it cannot
outlive its holder and needs no lease to expire; another process that looks meanwhile skips the
locked row, and after the commit sees the next due time. The partial unique index on
(schedule, due time) refuses a second execution of one due time whatever happens.

**Late and missed fires.** A fire up to ``missed_after`` late fires for its due time, and the
next due time follows it (a short stall catches up fire by fire). Later than that (everything
was down), the due times that passed are collapsed: one catch-up fire for the latest of them,
or, with ``catch_up_missed`` false, one ``skipped`` execution; then the next due time after now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.messages import Message, TextPart
from everloop.domain.schedules import (
    Schedule,
    ScheduleTrigger,
    last_fire,
    next_fire,
    parse_cron,
    parse_instant,
    parse_zone,
)
from everloop.domain.timestamps import format_ts
from everloop.engine import events as ev
from everloop.engine.signals import Signals
from everloop.store import schedules as store
from everloop.store import turns as turn_store
from everloop.store.db import Database
from everloop.store.event_log import append_events
from everloop.telemetry import metrics

log = logging.getLogger(__name__)

_BATCH = 50
_RECHECK = 0.02
_BACKOFF = 30.0  # seconds before a schedule whose fire failed is tried again


class TurnStarter(Protocol):
    async def enqueue_turn(self, session_id: str, turn_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Fired:
    """What a fire left to do after its commit: start the turn it queued (if it made one)."""

    execution_id: str
    session_id: str
    turn_id: str | None


def utc_now() -> datetime:
    return datetime.now(UTC)


def following_fire(schedule: Schedule, after: datetime) -> datetime | None:
    """The schedule's next due time after ``after`` (None for a one-shot: it fires once)."""
    if schedule.cron_expression is None:
        return None
    return next_fire(parse_cron(schedule.cron_expression), parse_zone(schedule.timezone), after)


async def record_fire(
    conn: AsyncConnection,
    schedule: Schedule,
    *,
    trigger: ScheduleTrigger,
    due: datetime,
    now: datetime,
    executor: str | None,
) -> Fired:
    """Post the schedule's message into its session as a queued turn and record the execution,
    inside the caller's transaction (which holds the schedule's row). A fire of a deleted
    session, or one past ``max_concurrent``, records an execution that made no turn."""
    execution_id = ids.new_id("schedexec")
    started = format_ts(now)
    scheduled_at = format_ts(due)

    async def without_turn(status: str, error: str) -> Fired:
        await store.insert_execution(
            conn,
            execution_id=execution_id,
            schedule=schedule,
            trigger=trigger,
            scheduled_at=scheduled_at,
            started_at=started,
            status=status,
            turn_id=None,
            error=error,
            claimed_by=executor,
        )
        return Fired(execution_id, schedule.session_id, None)

    target = await store.fire_target(conn, schedule.session_id)
    if target is None:
        return await without_turn("failed", "the session was deleted")
    if schedule.max_concurrent is not None and trigger != "manual":
        running = await store.open_executions(conn, schedule.id)
        if running >= schedule.max_concurrent:
            return await without_turn(
                "skipped", f"{running} earlier fires still running (max_concurrent)"
            )
    message = Message(ids.new_id("message"), "user", (TextPart(schedule.message),), started)
    turn_id = ids.new_id("turn")
    acting = target.identity_principal_id or schedule.owner_principal_id
    provenance: dict[str, Any] = {
        "initiator": "schedule",
        "schedule_id": schedule.id,
        "schedule_name": schedule.name,
        "schedule_execution_id": execution_id,
        "trigger": trigger,
        "scheduled_at": scheduled_at,
        "fired_at": started,
        "acting_principal_id": acting,
        "agent_identity_id": target.agent_identity_id,
    }
    data = ev.input_message(message=message)
    wire = data["message"]
    assert isinstance(wire, dict)
    wire["metadata"] = {
        "source": "schedule",
        "schedule_id": schedule.id,
        "scheduled_at": scheduled_at,
        "timezone": schedule.timezone,
        "locale": target.locale,
    }
    values: dict[str, Any] = {"updated_at": started}
    if target.preview is None:
        values["preview"] = ev.preview(schedule.message)
    context = EventContext(turn_id=turn_id, input_message_id=message.id, trace_id=turn_id)
    stored = await append_events(
        conn,
        schedule.session_id,
        [NewEvent("input.message", data, context, metadata=provenance)],
        session_values=values,
    )
    await turn_store.insert_turn(
        conn,
        turn_id=turn_id,
        session_id=schedule.session_id,
        input_message_id=message.id,
        input_sequence=stored[0].sequence,
    )
    await store.insert_execution(
        conn,
        execution_id=execution_id,
        schedule=schedule,
        trigger=trigger,
        scheduled_at=scheduled_at,
        started_at=started,
        status="fired",
        turn_id=turn_id,
        error=None,
        claimed_by=executor,
    )
    return Fired(execution_id, schedule.session_id, turn_id)


async def fire_due_schedule(
    conn: AsyncConnection,
    schedule: Schedule,
    now: datetime,
    *,
    missed_after: float,
    executor: str,
) -> Fired:
    """Fire a claimed, due schedule (see the module's doc for late and missed fires) and move
    it to its next due time; a one-shot is disabled once it has fired."""
    assert schedule.next_trigger_at is not None
    due = parse_instant(schedule.next_trigger_at, field="next_trigger_at")
    if (now - due).total_seconds() <= missed_after:
        fired = await record_fire(
            conn, schedule, trigger="schedule", due=due, now=now, executor=executor
        )
        following = following_fire(schedule, due)
    else:
        latest = due
        if schedule.cron_expression is not None:
            cron, zone = parse_cron(schedule.cron_expression), parse_zone(schedule.timezone)
            latest = last_fire(cron, zone, now) or due
        if schedule.catch_up_missed:
            fired = await record_fire(
                conn, schedule, trigger="catch_up", due=latest, now=now, executor=executor
            )
        else:
            fired = Fired(ids.new_id("schedexec"), schedule.session_id, None)
            await store.insert_execution(
                conn,
                execution_id=fired.execution_id,
                schedule=schedule,
                trigger="catch_up",
                scheduled_at=format_ts(latest),
                started_at=format_ts(now),
                status="skipped",
                turn_id=None,
                error="missed while nothing was running, and catch_up_missed is false",
                claimed_by=executor,
            )
        following = following_fire(schedule, now)
    values: dict[str, Any] = {
        "next_trigger_at": format_ts(following) if following is not None else None,
        "claimed_by": executor,
        "claimed_at": format_ts(now),
    }
    if fired.turn_id is not None:
        values["last_triggered_at"] = format_ts(now)
    if following is None:
        values["enabled"] = False
    await store.update_schedule(conn, schedule.id, values)
    metrics.SCHEDULE_FIRINGS.labels("fired" if fired.turn_id is not None else "skipped").inc()
    return fired


class ScheduleTimer:
    """Fires due schedules: a background task of every process that runs turns.

    Idle, it costs one indexed read per ``poll_seconds`` (to see schedules other processes
    made); between reads it sleeps until the earliest due time it knows of, so a fire starts
    within milliseconds of its due time. ``nudge`` wakes it when this process changed a
    schedule. ``tick(now)`` is one pass, for tests with a clock of their own.
    """

    def __init__(
        self,
        db: Database,
        signals: Signals,
        *,
        executor: str,
        poll_seconds: float,
        missed_after: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = db
        self._starter: TurnStarter | None = None
        self._signals = signals
        self._executor = executor
        self._poll = poll_seconds
        self._missed_after = missed_after
        self._clock = clock
        self._wake = asyncio.Event()
        self._failing: dict[str, datetime] = {}  # schedule id -> when to try it again
        self._task: asyncio.Task[None] | None = None

    def connect(self, starter: TurnStarter) -> None:
        """Where fired turns start (the engine is built after the services that use this)."""
        self._starter = starter

    def nudge(self) -> None:
        self._wake.set()

    async def tick(self, now: datetime) -> float:
        """Fire everything due at ``now``; seconds until the next look. Idle, one read."""
        earliest = await self._earliest()
        backing_off = False
        if earliest is not None and earliest <= now:
            backing_off = await self._fire_due(now)
            earliest = await self._earliest()
        if earliest is None:
            return self._poll
        wait = (earliest - self._clock()).total_seconds()
        if wait <= 0 and backing_off:
            return self._poll  # what is still due failed and waits out its back-off
        # Still due after this pass: another process holds it (firing it); look again shortly.
        return max(_RECHECK, min(self._poll, wait))

    async def _earliest(self) -> datetime | None:
        async with self._db.read() as conn:
            earliest = await store.earliest_due(conn)
        return None if earliest is None else parse_instant(earliest, field="next_trigger_at")

    async def _fire_due(self, now: datetime) -> bool:
        """Fire what is due; whether a schedule was left for its back-off."""
        # Until nothing due is left that this process could claim. A fire moves its schedule's
        # due time forward, so this ends: at the latest when every due time is past ``now``.
        fired_any, backing_off = True, False
        while fired_any:
            fired_any = False
            async with self._db.read() as conn:
                due = await store.due_ids(conn, format_ts(now), _BATCH)
            for schedule_id in due:
                if self._failing.get(schedule_id, now) > now:
                    backing_off = True  # its last fire failed: it waits out its back-off
                    continue
                try:
                    fired = await self._fire(schedule_id, now)
                except Exception:  # one schedule's failure must not hold back the others
                    log.exception(
                        "could not fire schedule %s; trying again in %g s", schedule_id, _BACKOFF
                    )
                    self._failing[schedule_id] = now + timedelta(seconds=_BACKOFF)
                    backing_off = True
                    continue
                self._failing.pop(schedule_id, None)
                if fired is not None:
                    fired_any = True
                    await self.start(fired)
        return backing_off

    async def _fire(self, schedule_id: str, now: datetime) -> Fired | None:
        async with self._db.write() as conn:
            schedule = await store.claim(conn, schedule_id, format_ts(now))
            if schedule is None:
                return None  # fired by another process meanwhile, or changed
            return await fire_due_schedule(
                conn, schedule, now, missed_after=self._missed_after, executor=self._executor
            )

    async def start(self, fired: Fired) -> None:
        """After its commit: wake the session's readers and start the turn a fire queued. If
        starting fails the turn is still recorded; the start-up sweep starts it."""
        if fired.turn_id is None:
            return
        self._signals.events_appended(fired.session_id)
        assert self._starter is not None, "connect() the timer first"
        try:
            await self._starter.enqueue_turn(fired.session_id, fired.turn_id)
        except Exception:
            log.exception("could not start the turn %s of a schedule", fired.turn_id)

    async def run(self) -> None:
        """Fire due schedules until cancelled."""
        while True:
            self._wake.clear()  # before the pass: a nudge during it makes the next one at once
            try:
                delay = await self.tick(self._clock())
            except Exception:  # a failed pass must not end the timer: the next one retries
                log.exception("schedule timer pass failed")
                delay = self._poll
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def start_timer(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="schedule-timer")

    async def stop_timer(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
