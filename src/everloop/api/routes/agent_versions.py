"""Routes for agent versions: list, save, choose the default, diff, roll back, fork."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request

from everloop.api.deps import CallerDep, services
from everloop.api.routes.config_resources import agent_out
from everloop.api.runtime_schemas import (
    AgentVersionDiffResponse,
    AgentVersionResponse,
    CreateAgentVersionRequest,
    ForkAgentVersionRequest,
    RollbackAgentVersionRequest,
    SetDefaultAgentVersionRequest,
)
from everloop.api.schemas import AgentResponse
from everloop.domain.agent_versions import AgentVersion

router = APIRouter(tags=["agents"])


def version_out(version: AgentVersion) -> AgentVersionResponse:
    values = asdict(version)
    values.pop("organization_id")
    return AgentVersionResponse.model_validate(values)


@router.get("/v1/agents/{agent_id}/versions", response_model=list[AgentVersionResponse])
async def list_agent_versions(
    request: Request, caller: CallerDep, agent_id: str
) -> list[AgentVersionResponse]:
    """List an agent's saved versions, each a snapshot of its configuration."""
    found = await services(request).agent_versions.list(caller, agent_id)
    return [version_out(v) for v in found]


@router.post("/v1/agents/{agent_id}/versions", response_model=AgentVersionResponse)
async def create_agent_version(
    request: Request, caller: CallerDep, agent_id: str, body: CreateAgentVersionRequest
) -> AgentVersionResponse:
    """Save the agent's current configuration as a new version, with an optional ``change_kind`` and
    ``summary``."""
    created = await services(request).agent_versions.create(
        caller, agent_id, change_kind=body.change_kind, summary=body.summary
    )
    return version_out(created)


@router.post("/v1/agents/{agent_id}/versions/default", response_model=AgentResponse)
async def set_default_agent_version(
    request: Request, caller: CallerDep, agent_id: str, body: SetDefaultAgentVersionRequest
) -> AgentResponse:
    """Make one of the agent's versions the one new sessions use; returns the agent."""
    agent = await services(request).agent_versions.set_default(caller, agent_id, body.version_id)
    return agent_out(agent)


@router.get(
    "/v1/agents/{agent_id}/versions/{from_version_id}/diff/{to_version_id}",
    response_model=AgentVersionDiffResponse,
)
async def diff_agent_versions(
    request: Request, caller: CallerDep, agent_id: str, from_version_id: str, to_version_id: str
) -> AgentVersionDiffResponse:
    """What changed, field by field, between two versions of an agent."""
    diff = await services(request).agent_versions.diff(
        caller, agent_id, from_version_id, to_version_id
    )
    return AgentVersionDiffResponse.model_validate(diff)


@router.post("/v1/agents/{agent_id}/versions/{version_id}/rollback", response_model=AgentResponse)
async def rollback_agent_version(
    request: Request,
    caller: CallerDep,
    agent_id: str,
    version_id: str,
    body: RollbackAgentVersionRequest,
) -> AgentResponse:
    """Restore the agent's configuration from one of its versions; ``save_version`` also records the
    result as a new version. Returns the agent."""
    agent = await services(request).agent_versions.rollback(
        caller, agent_id, version_id, save_version=body.save_version, summary=body.summary
    )
    return agent_out(agent)


@router.post("/v1/agents/{agent_id}/versions/{version_id}/fork", response_model=AgentResponse)
async def fork_agent_version(
    request: Request,
    caller: CallerDep,
    agent_id: str,
    version_id: str,
    body: ForkAgentVersionRequest,
) -> AgentResponse:
    """Create a new agent from one of an agent's saved versions: its authored configuration
    (prompt, harness, capabilities, tools, files, network access, MCP servers, limits) under a
    new ``name``, with the version's display name and description unless given. The new
    agent's first version has change kind ``fork`` and ``source_version_id`` the forked version.
    A name the organization uses is a 409. Returns the new agent."""
    agent = await services(request).agent_versions.fork(
        caller,
        agent_id,
        version_id,
        name=body.name,
        display_name=body.display_name,
        description=body.description,
    )
    return agent_out(agent)
