"""Routes of agent identities (thin: parse, call the service, present)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from everloop.api.agent_identity_schemas import (
    AgentIdentityResponse,
    CreateAgentIdentityRequest,
    UpdateAgentIdentityRequest,
)
from everloop.api.deps import CallerDep, services
from everloop.api.schemas import ListResponse
from everloop.domain.agent_identities import AgentIdentity

router = APIRouter(tags=["agent-identities"])

Search = Annotated[str | None, Query(max_length=200)]


def identity_out(identity: AgentIdentity) -> AgentIdentityResponse:
    return AgentIdentityResponse(
        id=identity.id,
        name=identity.name,
        display_name=identity.display_name,
        description=identity.description,
        locale=identity.locale,
        timezone=identity.timezone,
        principal_id=identity.principal_id,
        owner_principal_id=identity.owner_principal_id,
        created_at=identity.created_at,
        updated_at=identity.updated_at,
    )


@router.get("/v1/agent-identities", response_model=ListResponse[AgentIdentityResponse])
async def list_agent_identities(
    request: Request, caller: CallerDep, search: Search = None
) -> ListResponse[AgentIdentityResponse]:
    """List the organization's agent identities (the names, avatars and time zones agents present
    as); ``search`` filters by name."""
    found = await services(request).agent_identities.list(caller, search=search)
    return ListResponse(data=[identity_out(i) for i in found], total=len(found))


@router.post(
    "/v1/agent-identities",
    response_model=AgentIdentityResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_agent_identity(
    request: Request, caller: CallerDep, body: CreateAgentIdentityRequest
) -> AgentIdentityResponse:
    """Create an agent identity; it gets a principal of its own, so sessions run under it act as
    it."""
    created = await services(request).agent_identities.create(caller, body.model_dump())
    return identity_out(created)


@router.get("/v1/agent-identities/{identity_id}", response_model=AgentIdentityResponse)
async def get_agent_identity(
    request: Request, caller: CallerDep, identity_id: str
) -> AgentIdentityResponse:
    """Get one agent identity by id."""
    return identity_out(await services(request).agent_identities.get(caller, identity_id))


@router.patch("/v1/agent-identities/{identity_id}", response_model=AgentIdentityResponse)
async def update_agent_identity(
    request: Request, caller: CallerDep, identity_id: str, body: UpdateAgentIdentityRequest
) -> AgentIdentityResponse:
    """Change an agent identity's fields; fields not sent stay as they are."""
    updated = await services(request).agent_identities.update(
        caller, identity_id, body.model_dump(exclude_unset=True)
    )
    return identity_out(updated)


@router.delete("/v1/agent-identities/{identity_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent_identity(request: Request, caller: CallerDep, identity_id: str) -> Response:
    """Delete an agent identity."""
    await services(request).agent_identities.delete(caller, identity_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
