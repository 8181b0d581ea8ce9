"""Agent routes beside CRUD: copy, stats and analysis (thin: parse, call the service, present).

Registered before ``config_resources`` so a literal path (``/v1/agents/analyze``) is never
taken for an agent id.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request, status

from everloop.api.agent_schemas import (
    AgentAnalysisResponse,
    FindingLocation,
    FindingOut,
    ResourceStatsResponse,
)
from everloop.api.deps import CallerDep, services
from everloop.api.routes.config_resources import agent_out
from everloop.api.runtime_schemas import PreviewAgentRequest
from everloop.api.schemas import AgentResponse
from everloop.domain.agent_checks import Finding

router = APIRouter(tags=["agents"])


def finding_out(finding: Finding) -> FindingOut:
    location = (
        FindingLocation(field=finding.field, start=finding.start, end=finding.end)
        if finding.field
        else None
    )
    return FindingOut(
        rule_id=finding.rule_id,
        severity=finding.severity,
        category=finding.category,
        message=finding.message,
        source="builtin",
        location=location,
    )


@router.post(
    "/v1/agents/analyze",
    response_model=AgentAnalysisResponse,
    summary="Run advisory checks against a draft agent",
    description="Assembles the draft as a preview does (harness chain, capabilities applied) "
    "and returns the built-in rules' findings. Nothing is saved.",
)
async def analyze_agent(
    request: Request, caller: CallerDep, body: PreviewAgentRequest
) -> AgentAnalysisResponse:
    findings = await services(request).runtime_agents.analyze_agent(caller, body.model_dump())
    return AgentAnalysisResponse(findings=[finding_out(f) for f in findings])


@router.post(
    "/v1/agents/{agent_id}/copy",
    response_model=AgentResponse,
    status_code=status.HTTP_201_CREATED,
    summary="Copy an agent",
    description="Creates a new agent with the same configuration, named `{name}-copy`.",
)
async def copy_agent(request: Request, caller: CallerDep, agent_id: str) -> AgentResponse:
    return agent_out(await services(request).agents.copy(caller, agent_id))


@router.get(
    "/v1/agents/{agent_id}/stats",
    response_model=ResourceStatsResponse,
    summary="An agent's usage statistics",
    description="Its live sessions by status, their turns (executions), tokens, estimated cost "
    "and durations.",
)
async def agent_stats(request: Request, caller: CallerDep, agent_id: str) -> ResourceStatsResponse:
    stats = await services(request).agent_stats.stats(caller, agent_id)
    return ResourceStatsResponse(
        **asdict(stats),
        total_actual_cost_usd=None,
        total_cost_usd=stats.total_estimated_cost_usd,
    )
