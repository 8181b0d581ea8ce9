"""When a schedule fires: cron expressions read in an IANA zone, as pure functions of instants.

A schedule is either one-shot (a ``scheduled_at`` instant) or recurring (a cron expression and a
``timezone``). Cron is evaluated on the zone's wall clock (``croniter`` over naive local times,
``zoneinfo`` to place each on the timeline), with two rules where that clock is not a line:

- a local time that does not exist (the hour skipped when clocks go forward) fires at the same
  distance past the gap: ``30 2 * * *`` in New York on the spring change fires at 03:30 EDT;
- a local time that happens twice (the hour repeated when clocks go back) fires once, the
  first time.

Expressions have 5 fields (``min hour day month weekday``), 6 (seconds first) or 7 (seconds
first, year last), as Everruns accepts. Every instant here is an aware ``datetime`` in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from everloop.errors import InvalidInput

MAX_EXPRESSION_CHARS: Final = 200
# Candidates looked at for one next fire. A local hour repeated by a clock change costs at most
# 3,600 of them (a per-second expression); anything past the bound has no upcoming fire.
_MAX_CANDIDATES: Final = 20_000
# Fires looked at to find a recurring schedule's shortest interval.
_INTERVAL_SAMPLE: Final = 100


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression that parsed and has an upcoming fire."""

    expression: str  # whitespace collapsed
    seconds: bool  # 6 or 7 fields: the first is seconds

    def local_after(self, start: datetime) -> croniter:
        """An iterator of naive local fire times after naive local ``start``."""
        return croniter(self.expression, start, second_at_beginning=self.seconds)


def parse_cron(expression: str, *, field: str = "cron_expression") -> Cron:
    """The expression as a ``Cron``; ``InvalidInput`` naming ``field`` when it is not one or
    never fires."""
    text = " ".join(expression.split())
    if not text:
        raise InvalidInput("a cron expression is required", field=field)
    if len(text) > MAX_EXPRESSION_CHARS:
        raise InvalidInput(
            f"a cron expression is at most {MAX_EXPRESSION_CHARS} characters", field=field
        )
    count = len(text.split(" "))
    if count not in (5, 6, 7):
        raise InvalidInput(
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"or 6 or 7 with seconds first (and a year last); got {count}",
            field=field,
        )
    cron = Cron(text, seconds=count > 5)
    try:
        cron.local_after(datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidInput(f"the cron expression {text!r} never fires", field=field) from None
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        raise InvalidInput(f"not a valid cron expression: {exc}", field=field) from None
    return cron


def parse_zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """An IANA zone by name (``UTC``, ``Europe/Vilnius``); ``InvalidInput`` naming ``field``."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise InvalidInput(f"unknown timezone {name!r}: use an IANA name such as UTC", field=field)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown timezone {name!r}: use an IANA name such as UTC or America/New_York",
            field=field,
        ) from None


def _placed(local: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: a repeated local time is its first occurrence; a skipped one keeps the offset
    # before the change, which places it past the gap by the same distance.
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def next_fire(cron: Cron, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first fire strictly after ``after``; None when there is none (a past year)."""
    start = after.astimezone(zone).replace(tzinfo=None)
    candidates = cron.local_after(start)
    for _ in range(_MAX_CANDIDATES):
        try:
            local = candidates.get_next(datetime)
        except CroniterBadDateError:
            return None
        placed = _placed(local, zone)
        if placed > after:
            return placed
    return None


def last_fire(cron: Cron, zone: ZoneInfo, at_or_before: datetime) -> datetime | None:
    """The latest fire at or before ``at_or_before``; None when there is none."""
    moment = at_or_before + timedelta(microseconds=1)
    start = moment.astimezone(zone).replace(tzinfo=None)
    candidates = cron.local_after(start)
    for _ in range(_MAX_CANDIDATES):
        try:
            local = candidates.get_prev(datetime)
        except CroniterBadDateError:
            return None
        placed = _placed(local, zone)
        if placed <= at_or_before:
            return placed
    return None


def shortest_interval(cron: Cron, zone: ZoneInfo, start: datetime) -> float | None:
    """The shortest time in seconds between two of the next fires after ``start``; None when
    fewer than two fires remain."""
    shortest: float | None = None
    previous = next_fire(cron, zone, start)
    for _ in range(_INTERVAL_SAMPLE):
        if previous is None:
            break
        following = next_fire(cron, zone, previous)
        if following is None:
            break
        gap = (following - previous).total_seconds()
        shortest = gap if shortest is None else min(shortest, gap)
        previous = following
    return shortest


def parse_instant(text: str, *, field: str) -> datetime:
    """An RFC 3339 instant with an offset, as UTC; ``InvalidInput`` naming ``field``."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not an RFC 3339 time (2026-12-24T09:00:00Z)", field=field
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput(
            f"{text!r} has no offset: say Z or +hh:mm (2026-12-24T09:00:00Z)", field=field
        )
    return moment.astimezone(UTC)


ScheduleTrigger = Literal["schedule", "catch_up", "manual"]
ExecutionStatus = Literal["pending", "running", "completed", "failed", "skipped"]
TARGET_TYPE: Final = "workflow"
TARGET_NAME: Final = "session.run"  # post `message` into `session_id` as a turn


@dataclass(frozen=True, slots=True)
class Schedule:
    """A session schedule: ``message`` posted into ``session_id`` at ``scheduled_at`` (one-shot)
    or on ``cron_expression`` in ``timezone``. ``next_trigger_at`` is None when it is paused or
    has no fire left."""

    id: str
    organization_id: str
    session_id: str
    owner_principal_id: str
    name: str
    description: str | None
    cron_expression: str | None
    scheduled_at: str | None
    timezone: str
    message: str
    enabled: bool
    catch_up_missed: bool
    max_concurrent: int | None
    next_trigger_at: str | None
    last_triggered_at: str | None
    created_at: str
    updated_at: str

    @property
    def kind(self) -> Literal["cron", "once"]:
        return "once" if self.cron_expression is None else "cron"


@dataclass(frozen=True, slots=True)
class ScheduleExecution:
    """One fire of a schedule (or one it skipped). A fire's outcome is its turn's."""

    id: str
    schedule_id: str
    session_id: str
    trigger: ScheduleTrigger
    scheduled_at: str  # the due time it fired for (the moment, for a manual trigger)
    started_at: str
    status: ExecutionStatus
    turn_id: str | None
    completed_at: str | None
    error: str | None
    created_at: str

    @property
    def duration_ms(self) -> int | None:
        if self.completed_at is None:
            return None
        started = parse_instant(self.started_at, field="started_at")
        ended = parse_instant(self.completed_at, field="completed_at")
        return max(0, int((ended - started).total_seconds() * 1000))


@dataclass(frozen=True, slots=True)
class ScheduleStats:
    total_executions: int
    successful_executions: int
    failed_executions: int
    skipped_executions: int
    avg_duration_ms: int | None
    last_execution_status: ExecutionStatus | None
