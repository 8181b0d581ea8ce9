"""Wire schemas of schedules (``/v1/durable/schedules``): Everruns' ``CreateScheduleRequest``,
``UpdateScheduleRequest``, ``ScheduleResponse``, ``ScheduleExecutionResponse``,
``ScheduleStatsResponse`` and ``TriggerResponse``.

A schedule's target is the one everloop runs: ``{"type": "workflow", "name": "session.run",
"input": {"session_id": ..., "message": ...}}``, a message posted into a session as a turn.
Beyond the reference: ``scheduled_at`` makes a one-shot schedule (``cron_expression`` null),
and a response carries ``session_id``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from everloop.api.schemas import WireModel
from everloop.domain.schedules import (
    TARGET_NAME,
    TARGET_TYPE,
    ExecutionStatus,
    Schedule,
    ScheduleExecution,
    ScheduleStats,
)

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=200)]


class ScheduleInputBody(WireModel):
    session_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    message: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]


class ScheduleTargetBody(WireModel):
    type: Text = Field(description='"workflow": the only target type everloop runs.')
    name: Text = Field(description=f'"{TARGET_NAME}": post `input.message` into a session.')
    input: ScheduleInputBody


class CreateScheduleRequest(WireModel):
    name: Name
    cron_expression: Text | None = Field(
        default=None,
        description="5 fields (minute hour day-of-month month day-of-week), or 6/7 with "
        "seconds first (and a year last). Give this or `scheduled_at`.",
    )
    scheduled_at: Text | None = Field(
        default=None, description="Fire once at this RFC 3339 time (everloop's extension)."
    )
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None
    target: ScheduleTargetBody
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    enabled: bool = True
    catch_up_missed: bool = Field(
        default=True,
        description="Fire once for the times missed while nothing ran (default true).",
    )
    max_catch_up: Annotated[int, Field(ge=0)] | None = None
    max_concurrent: Annotated[int, Field(ge=0)] | None = None
    retry_policy: Any = None


class UpdateScheduleRequest(WireModel):
    cron_expression: Text | None = None
    scheduled_at: Text | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None
    target: ScheduleTargetBody | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    enabled: bool | None = None
    catch_up_missed: bool | None = None
    max_catch_up: Annotated[int, Field(ge=0)] | None = None
    max_concurrent: Annotated[int, Field(ge=0)] | None = None
    retry_policy: Any = None


class ScheduleTargetResponse(BaseModel):
    type: str
    name: str
    input: dict[str, Any]


class ScheduleResponse(BaseModel):
    id: str
    name: str
    description: str | None
    cron_expression: str | None
    scheduled_at: str | None
    timezone: str
    target: ScheduleTargetResponse
    session_id: str
    enabled: bool
    catch_up_missed: bool
    max_catch_up: int | None
    max_concurrent: int | None
    retry_policy: Any = None
    next_trigger_at: str | None
    last_triggered_at: str | None
    created_at: str
    updated_at: str


class ScheduleExecutionResponse(BaseModel):
    id: str
    schedule_id: str
    session_id: str
    trigger: str
    scheduled_at: str
    started_at: str
    completed_at: str | None
    duration_ms: int | None
    status: ExecutionStatus
    error: str | None
    turn_id: str | None
    task_id: str | None = None
    workflow_id: str | None
    created_at: str


class ScheduleStatsResponse(BaseModel):
    total_executions: int
    successful_executions: int
    failed_executions: int
    skipped_executions: int
    avg_duration_ms: int | None
    last_execution_status: ExecutionStatus | None


class TriggerResponse(BaseModel):
    execution_id: str
    turn_id: str | None


def schedule_out(schedule: Schedule) -> ScheduleResponse:
    return ScheduleResponse(
        id=schedule.id,
        name=schedule.name,
        description=schedule.description,
        cron_expression=schedule.cron_expression,
        scheduled_at=schedule.scheduled_at,
        timezone=schedule.timezone,
        target=ScheduleTargetResponse(
            type=TARGET_TYPE,
            name=TARGET_NAME,
            input={"session_id": schedule.session_id, "message": schedule.message},
        ),
        session_id=schedule.session_id,
        enabled=schedule.enabled,
        catch_up_missed=schedule.catch_up_missed,
        max_catch_up=1 if schedule.catch_up_missed else 0,
        max_concurrent=schedule.max_concurrent,
        next_trigger_at=schedule.next_trigger_at,
        last_triggered_at=schedule.last_triggered_at,
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )


def execution_out(execution: ScheduleExecution) -> ScheduleExecutionResponse:
    return ScheduleExecutionResponse(
        id=execution.id,
        schedule_id=execution.schedule_id,
        session_id=execution.session_id,
        trigger=execution.trigger,
        scheduled_at=execution.scheduled_at,
        started_at=execution.started_at,
        completed_at=execution.completed_at,
        duration_ms=execution.duration_ms,
        status=execution.status,
        error=execution.error,
        turn_id=execution.turn_id,
        workflow_id=execution.turn_id,  # a turn is its workflow (id = turn id)
        created_at=execution.created_at,
    )


def stats_out(stats: ScheduleStats) -> ScheduleStatsResponse:
    return ScheduleStatsResponse(
        total_executions=stats.total_executions,
        successful_executions=stats.successful_executions,
        failed_executions=stats.failed_executions,
        skipped_executions=stats.skipped_executions,
        avg_duration_ms=stats.avg_duration_ms,
        last_execution_status=stats.last_execution_status,
    )
