"""Routes of schedules (``/v1/durable/schedules``): a session's messages on a clock. Thin:
the body becomes a ``NewSchedule`` or a change set; ``services.schedules`` does the rest."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from everloop.api.deps import CallerDep, services
from everloop.api.schedule_schemas import (
    CreateScheduleRequest,
    ScheduleExecutionResponse,
    ScheduleResponse,
    ScheduleStatsResponse,
    ScheduleTargetBody,
    TriggerResponse,
    UpdateScheduleRequest,
    execution_out,
    schedule_out,
    stats_out,
)
from everloop.api.schemas import ListResponse
from everloop.domain.schedules import TARGET_NAME, TARGET_TYPE, ExecutionStatus
from everloop.errors import InvalidInput
from everloop.services.schedules import NewSchedule

router = APIRouter(tags=["durable-schedules"])

Offset = Annotated[int, Query(ge=0, description="Pagination offset.")]
Limit = Annotated[int, Query(ge=1, le=100, description="Pagination limit (default 20).")]


def _check_target(target: ScheduleTargetBody) -> None:
    if target.type != TARGET_TYPE:
        raise InvalidInput(
            f"everloop schedules run the workflow {TARGET_NAME!r}: type is {TARGET_TYPE!r}",
            field="target.type",
        )
    if target.name != TARGET_NAME:
        raise InvalidInput(
            f"the one workflow a schedule runs is {TARGET_NAME!r} (post input.message into "
            "input.session_id)",
            field="target.name",
        )


def _check_retry_and_catch_up(
    retry_policy: Any, max_catch_up: int | None, catch_up_missed: bool | None
) -> bool | None:
    """The ``catch_up_missed`` that ``max_catch_up`` means (None: unchanged)."""
    if retry_policy is not None:
        raise InvalidInput(
            "retry policies are not supported: a fire whose turn fails is not retried; the "
            "next due time fires again",
            field="retry_policy",
        )
    if max_catch_up is None:
        return catch_up_missed
    if max_catch_up > 1:
        raise InvalidInput(
            "at most one catch-up fire per schedule: max_catch_up is 0 or 1",
            field="max_catch_up",
        )
    if catch_up_missed is not None and catch_up_missed != (max_catch_up == 1):
        raise InvalidInput(
            "max_catch_up contradicts catch_up_missed (1 is on, 0 is off)", field="max_catch_up"
        )
    return max_catch_up == 1


def _max_concurrent(value: int | None) -> int | None:
    if value == 0:
        raise InvalidInput(
            "max_concurrent is at least 1 (or null: no limit)", field="max_concurrent"
        )
    return value


@router.get("/v1/durable/schedules", response_model=ListResponse[ScheduleResponse])
async def list_schedules(
    request: Request,
    caller: CallerDep,
    enabled: bool | None = None,
    target_type: Annotated[str | None, Query(max_length=40)] = None,
    session_id: Annotated[str | None, Query(max_length=100)] = None,
    offset: Offset = 0,
    limit: Limit = 20,
) -> ListResponse[ScheduleResponse]:
    """The organization's schedules (of one session with ``session_id``), oldest first."""
    if target_type is not None and target_type != TARGET_TYPE:
        return ListResponse(data=[], total=0)
    found, total = await services(request).schedules.list_schedules(
        caller, session_id=session_id, enabled=enabled, offset=offset, limit=limit
    )
    return ListResponse(data=[schedule_out(s) for s in found], total=total)


@router.post(
    "/v1/durable/schedules", response_model=ScheduleResponse, status_code=status.HTTP_201_CREATED
)
async def create_schedule(
    request: Request, caller: CallerDep, body: CreateScheduleRequest
) -> ScheduleResponse:
    """Create a schedule: ``target.input.message`` is posted into ``target.input.session_id``
    as a turn at ``scheduled_at``, or each time ``cron_expression`` matches in ``timezone``."""
    _check_target(body.target)
    sent_catch_up = body.catch_up_missed if "catch_up_missed" in body.model_fields_set else None
    catch_up = _check_retry_and_catch_up(body.retry_policy, body.max_catch_up, sent_catch_up)
    spec = NewSchedule(
        session_id=body.target.input.session_id,
        name=body.name,
        message=body.target.input.message,
        cron_expression=body.cron_expression,
        scheduled_at=body.scheduled_at,
        timezone=body.timezone,
        description=body.description,
        enabled=body.enabled,
        catch_up_missed=body.catch_up_missed if catch_up is None else catch_up,
        max_concurrent=_max_concurrent(body.max_concurrent),
        session_field="target.input.session_id",
        message_field="target.input.message",
    )
    return schedule_out(await services(request).schedules.create(caller, spec))


@router.get("/v1/durable/schedules/{schedule_id}", response_model=ScheduleResponse)
async def get_schedule(request: Request, caller: CallerDep, schedule_id: str) -> ScheduleResponse:
    """Get one schedule by id, with its next due time."""
    return schedule_out(await services(request).schedules.get(caller, schedule_id))


@router.patch("/v1/durable/schedules/{schedule_id}", response_model=ScheduleResponse)
async def update_schedule(
    request: Request, caller: CallerDep, schedule_id: str, body: UpdateScheduleRequest
) -> ScheduleResponse:
    """Change a schedule; a change of when it fires (or ``enabled``) moves its next due
    time."""
    sent = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    for key in ("cron_expression", "scheduled_at", "timezone", "description", "enabled"):
        if key in sent:
            if sent[key] is None and key in ("timezone", "enabled"):
                raise InvalidInput(f"{key} cannot be null", field=key)
            changes[key] = sent[key]
    if "cron_expression" in changes and changes["cron_expression"] is not None:
        changes.setdefault("scheduled_at", None)
    if "scheduled_at" in changes and changes["scheduled_at"] is not None:
        changes.setdefault("cron_expression", None)
    catch_up = _check_retry_and_catch_up(
        body.retry_policy, body.max_catch_up, sent.get("catch_up_missed")
    )
    if catch_up is not None:
        changes["catch_up_missed"] = catch_up
    if "max_concurrent" in sent:
        changes["max_concurrent"] = _max_concurrent(body.max_concurrent)
    if body.target is not None:
        _check_target(body.target)
        current = await services(request).schedules.get(caller, schedule_id)
        if body.target.input.session_id != current.session_id:
            raise InvalidInput(
                "a schedule stays with its session: create a new one for another session",
                field="target.input.session_id",
            )
        changes["message"] = body.target.input.message
    updated = await services(request).schedules.update(caller, schedule_id, changes)
    return schedule_out(updated)


@router.delete("/v1/durable/schedules/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_schedule(request: Request, caller: CallerDep, schedule_id: str) -> Response:
    """Delete a schedule; it fires no more."""
    await services(request).schedules.delete(caller, schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/v1/durable/schedules/{schedule_id}/pause", response_model=ScheduleResponse)
async def pause_schedule(request: Request, caller: CallerDep, schedule_id: str) -> ScheduleResponse:
    """Stop firing; kept, with no next due time, until resumed."""
    return schedule_out(await services(request).schedules.pause(caller, schedule_id))


@router.post("/v1/durable/schedules/{schedule_id}/resume", response_model=ScheduleResponse)
async def resume_schedule(
    request: Request, caller: CallerDep, schedule_id: str
) -> ScheduleResponse:
    """Fire again from now on (times passed while paused are not caught up)."""
    return schedule_out(await services(request).schedules.resume(caller, schedule_id))


@router.post("/v1/durable/schedules/{schedule_id}/trigger", response_model=TriggerResponse)
async def trigger_schedule(
    request: Request, caller: CallerDep, schedule_id: str
) -> TriggerResponse:
    """Fire now, paused or not; the next due time stays."""
    execution = await services(request).schedules.trigger(caller, schedule_id)
    return TriggerResponse(execution_id=execution.id, turn_id=execution.turn_id)


@router.get(
    "/v1/durable/schedules/{schedule_id}/executions",
    response_model=ListResponse[ScheduleExecutionResponse],
)
async def list_schedule_executions(
    request: Request,
    caller: CallerDep,
    schedule_id: str,
    status: ExecutionStatus | None = None,
    offset: Offset = 0,
    limit: Limit = 20,
) -> ListResponse[ScheduleExecutionResponse]:
    """The schedule's fires, newest first; each one's status is its turn's."""
    found, total = await services(request).schedules.executions(
        caller, schedule_id, status=status, offset=offset, limit=limit
    )
    return ListResponse(data=[execution_out(e) for e in found], total=total)


@router.get("/v1/durable/schedules/{schedule_id}/stats", response_model=ScheduleStatsResponse)
async def get_schedule_stats(
    request: Request, caller: CallerDep, schedule_id: str
) -> ScheduleStatsResponse:
    """How a schedule's fires went: counts of executions by outcome and their last times."""
    return stats_out(await services(request).schedules.stats(caller, schedule_id))
