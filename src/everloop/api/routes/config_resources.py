"""Routes for harnesses and agents (thin: parse, call the service, present)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from everloop.api.deps import CallerDep, services
from everloop.api.schemas import (
    AgentResponse,
    CreateAgentRequest,
    CreateHarnessRequest,
    HarnessExampleResponse,
    HarnessResponse,
    ListResponse,
    PageResponse,
    UpdateAgentRequest,
    UpdateHarnessRequest,
)
from everloop.domain.resources import Agent, Harness

router = APIRouter()

Search = Annotated[str | None, Query(max_length=200)]


def harness_out(harness: Harness) -> HarnessResponse:
    return HarnessResponse.model_validate(asdict(harness))


def agent_out(agent: Agent) -> AgentResponse:
    return AgentResponse.model_validate(asdict(agent))


@router.get("/v1/harnesses", response_model=ListResponse[HarnessResponse], tags=["harnesses"])
async def list_harnesses(
    request: Request, caller: CallerDep, search: Search = None, include_archived: bool = False
) -> ListResponse[HarnessResponse]:
    """List the organization's harnesses (base configurations agents build on); archived ones only
    with ``include_archived``."""
    found = await services(request).harnesses.list(
        caller, search=search, include_archived=include_archived
    )
    return ListResponse(data=[harness_out(h) for h in found], total=len(found))


@router.get("/v1/harness-examples", response_model=list[HarnessExampleResponse], tags=["harnesses"])
async def list_harness_examples(
    request: Request, caller: CallerDep
) -> list[HarnessExampleResponse]:
    """List the built-in harness examples: read-only harness shapes defined in code (the
    built-in `base` and `generic` harnesses among them) to start a harness from. A bare array."""
    return [
        HarnessExampleResponse.model_validate(asdict(example))
        for example in services(request).harnesses.examples()
    ]


@router.post(
    "/v1/harnesses",
    response_model=HarnessResponse,
    status_code=status.HTTP_201_CREATED,
    tags=["harnesses"],
)
async def create_harness(
    request: Request, caller: CallerDep, body: CreateHarnessRequest
) -> HarnessResponse:
    """Create a harness: a system prompt, capabilities, default model and settings agents can
    inherit."""
    created = await services(request).harnesses.create(caller, body.model_dump(exclude_unset=True))
    return harness_out(created)


@router.get("/v1/harnesses/{harness_id}", response_model=HarnessResponse, tags=["harnesses"])
async def get_harness(request: Request, caller: CallerDep, harness_id: str) -> HarnessResponse:
    """Get one harness by id or name."""
    return harness_out(await services(request).harnesses.get(caller, harness_id))


@router.patch("/v1/harnesses/{harness_id}", response_model=HarnessResponse, tags=["harnesses"])
async def update_harness(
    request: Request, caller: CallerDep, harness_id: str, body: UpdateHarnessRequest
) -> HarnessResponse:
    """Change a harness's fields; fields not sent stay as they are."""
    updated = await services(request).harnesses.update(
        caller, harness_id, body.model_dump(exclude_unset=True)
    )
    return harness_out(updated)


@router.delete(
    "/v1/harnesses/{harness_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["harnesses"]
)
async def delete_harness(request: Request, caller: CallerDep, harness_id: str) -> Response:
    """Archive a harness (built-in ones cannot be); it is kept for the sessions that used it."""
    await services(request).harnesses.archive(caller, harness_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/agents", response_model=PageResponse[AgentResponse], tags=["agents"])
async def list_agents(
    request: Request,
    caller: CallerDep,
    search: Search = None,
    include_archived: bool = False,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> PageResponse[AgentResponse]:
    """List the organization's agents, a page at a time; ``search`` filters by name, archived ones
    only with ``include_archived``."""
    found, total = await services(request).agents.list(
        caller, search=search, include_archived=include_archived, offset=offset, limit=limit
    )
    return PageResponse(data=[agent_out(a) for a in found], total=total, offset=offset, limit=limit)


@router.post(
    "/v1/agents",
    response_model=AgentResponse,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "model": AgentResponse,
            "description": "Updated: the org's agent of that id (or, without one, that name)",
        }
    },
    tags=["agents"],
)
async def create_agent(
    request: Request, response: Response, caller: CallerDep, body: CreateAgentRequest
) -> AgentResponse:
    """Create an agent (201); with the ``id`` of an existing agent of the organization, update that
    agent instead (200)."""
    agent, created = await services(request).agents.create(
        caller, body.model_dump(exclude_unset=True)
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return agent_out(agent)


@router.get("/v1/agents/{agent_id}", response_model=AgentResponse, tags=["agents"])
async def get_agent(request: Request, caller: CallerDep, agent_id: str) -> AgentResponse:
    """Get one agent by id or name."""
    return agent_out(await services(request).agents.get(caller, agent_id))


@router.put(
    "/v1/agents/{agent_id}",
    response_model=AgentResponse,
    status_code=status.HTTP_200_OK,
    responses={201: {"model": AgentResponse, "description": "Created"}},
    tags=["agents"],
)
async def put_agent(
    request: Request, response: Response, caller: CallerDep, agent_id: str, body: CreateAgentRequest
) -> AgentResponse:
    """Create or replace the agent with this id: 201 when created, 200 when it existed."""
    fields = body.model_dump(exclude_unset=True)
    fields.pop("id", None)
    agent, created = await services(request).agents.put(caller, agent_id, fields)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return agent_out(agent)


@router.patch("/v1/agents/{agent_id}", response_model=AgentResponse, tags=["agents"])
async def update_agent(
    request: Request, caller: CallerDep, agent_id: str, body: UpdateAgentRequest
) -> AgentResponse:
    """Change an agent's fields; fields not sent stay as they are."""
    updated = await services(request).agents.update(
        caller, agent_id, body.model_dump(exclude_unset=True)
    )
    return agent_out(updated)


@router.delete("/v1/agents/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["agents"])
async def delete_agent(request: Request, caller: CallerDep, agent_id: str) -> Response:
    """Archive an agent; it is kept for the sessions that used it."""
    await services(request).agents.archive(caller, agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
