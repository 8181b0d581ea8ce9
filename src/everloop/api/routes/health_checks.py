"""Agent health-check routes: trigger a run, list runs, the latest run, one run (thin: parse,
call ``services.health_checks``, shape the answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from everloop.api.deps import CallerDep, services
from everloop.api.health_check_schemas import (
    HealthCheckCaseResultResponse,
    HealthCheckRunResponse,
    HealthCheckSummaryResponse,
    LatestHealthCheckRunResponse,
    TriggerHealthCheckRequest,
)
from everloop.services.health_checks import HealthCheckRunView

router = APIRouter(tags=["agents"])


def run_out(view: HealthCheckRunView) -> HealthCheckRunResponse:
    run = view.run
    return HealthCheckRunResponse(
        id=run.id,
        agent_id=run.agent_id,
        config_hash=run.config_hash,
        status=run.status,
        model_id=run.judge_model_id,
        results=[HealthCheckCaseResultResponse(**r.to_json()) for r in view.results] or None,
        summary=HealthCheckSummaryResponse(**run.summary) if run.summary else None,
        error_message=run.error_message,
        created_at=run.created_at,
        completed_at=run.completed_at,
    )


@router.post("/v1/agents/{agent_id}/health-checks", response_model=HealthCheckRunResponse)
async def trigger_health_check(
    request: Request,
    caller: CallerDep,
    agent_id: str,
    body: TriggerHealthCheckRequest | None = None,
) -> HealthCheckRunResponse:
    """Start a health-check run of the agent's cases (its ``health_check`` capability's
    config): each case a session of the agent, scored deterministically and by a judge model.
    The run starts ``pending``; poll ``GET .../health-checks/{run_id}``."""
    judge = body.judge_model_id if body is not None else None
    view = await services(request).health_checks.trigger(caller, agent_id, judge_model_id=judge)
    return run_out(view)


@router.get("/v1/agents/{agent_id}/health-checks", response_model=list[HealthCheckRunResponse])
async def list_health_checks(
    request: Request,
    caller: CallerDep,
    agent_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[HealthCheckRunResponse]:
    """The agent's health-check runs, newest first (``limit``/``offset`` page them)."""
    views = await services(request).health_checks.list(caller, agent_id, limit=limit, offset=offset)
    return [run_out(view) for view in views]


@router.get(
    "/v1/agents/{agent_id}/health-checks/latest", response_model=LatestHealthCheckRunResponse
)
async def get_latest_health_check(
    request: Request, caller: CallerDep, agent_id: str
) -> LatestHealthCheckRunResponse:
    """The agent's newest run (None if never checked), and ``config_changed``: whether the
    agent's resolved config differs from the one that run checked."""
    latest = await services(request).health_checks.latest(caller, agent_id)
    return LatestHealthCheckRunResponse(
        run=run_out(latest.run) if latest.run is not None else None,
        config_changed=latest.config_changed,
    )


@router.get("/v1/agents/{agent_id}/health-checks/{run_id}", response_model=HealthCheckRunResponse)
async def get_health_check(
    request: Request, caller: CallerDep, agent_id: str, run_id: str
) -> HealthCheckRunResponse:
    """One health-check run of the agent, with the results of the cases done so far."""
    return run_out(await services(request).health_checks.get(caller, agent_id, run_id))
