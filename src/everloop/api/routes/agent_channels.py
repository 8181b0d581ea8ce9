"""An agent's channels and agent keys, for the organization's admins.

``/v1/agents/{agent_id}/channels``: the agent's API endpoints (the Agent Execution API serves
each under ``/v1/channels/{channel_id}``). ``/v1/agents/{agent_id}/keys``: agent keys
(``evr_ak_...``) that reach the agent's channels only; the key is in the creating response only,
and a revoked key is refused at once. Another org's agent is a 404; a member who is not an
admin gets 403 (but may list and read channels).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from everloop.api.channel_schemas import (
    AgentKeyCreatedResponse,
    AgentKeyItem,
    ChannelResponse,
    CreateAgentKeyRequest,
    CreateChannelRequest,
)
from everloop.api.deps import CallerDep, services
from everloop.api.schemas import ErrorResponse
from everloop.services.agent_channels import AgentKeyRow, ChannelRow

router = APIRouter(tags=["agent channels"])

_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The caller is not an admin of the organization"}
}


def _channel(channel: ChannelRow) -> ChannelResponse:
    return ChannelResponse(
        id=channel.id,
        agent_id=channel.agent_id,
        name=channel.name,
        allow_member_tokens=channel.allow_member_tokens,
        path=f"/api/v1/channels/{channel.id}",
        created_at=channel.created_at,
    )


def _key(key: AgentKeyRow) -> AgentKeyItem:
    return AgentKeyItem(
        id=key.id,
        agent_id=key.agent_id,
        name=key.name,
        key_prefix=key.token_hint,
        permissions=list(key.permissions),
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )


@router.post(
    "/v1/agents/{agent_id}/channels",
    response_model=ChannelResponse,
    status_code=status.HTTP_201_CREATED,
    responses=_FORBIDDEN,
)
async def create_channel(
    request: Request, caller: CallerDep, agent_id: str, body: CreateChannelRequest
) -> ChannelResponse:
    """Open a channel for the agent (admins only): an endpoint of the Agent Execution API at
    ``path``. ``allow_member_tokens`` lets members' personal tokens reach it too."""
    channel = await services(request).agent_channels.create_channel(
        caller, agent_id, body.name, body.allow_member_tokens
    )
    return _channel(channel)


@router.get("/v1/agents/{agent_id}/channels", response_model=list[ChannelResponse])
async def list_channels(
    request: Request, caller: CallerDep, agent_id: str
) -> list[ChannelResponse]:
    """The agent's channels, oldest first."""
    found = await services(request).agent_channels.list_channels(caller, agent_id)
    return [_channel(c) for c in found]


@router.get("/v1/agents/{agent_id}/channels/{channel_id}", response_model=ChannelResponse)
async def get_channel(
    request: Request, caller: CallerDep, agent_id: str, channel_id: str
) -> ChannelResponse:
    """One of the agent's channels."""
    return _channel(
        await services(request).agent_channels.get_channel(caller, agent_id, channel_id)
    )


@router.delete(
    "/v1/agents/{agent_id}/channels/{channel_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_FORBIDDEN,
)
async def delete_channel(
    request: Request, caller: CallerDep, agent_id: str, channel_id: str
) -> Response:
    """Close a channel (admins only): its routes answer 404 from now on; its sessions stay."""
    await services(request).agent_channels.delete_channel(caller, agent_id, channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/agents/{agent_id}/keys",
    response_model=AgentKeyCreatedResponse,
    status_code=status.HTTP_201_CREATED,
    responses=_FORBIDDEN,
)
async def create_agent_key(
    request: Request, caller: CallerDep, agent_id: str, body: CreateAgentKeyRequest
) -> AgentKeyCreatedResponse:
    """Mint an agent key (admins only); ``key`` is in this response only. It reaches the agent's
    channels and nothing else; ``permissions: ["end_user"]`` lets it send ``End-User``."""
    record, token = await services(request).agent_channels.create_key(
        caller, agent_id, body.name, body.permissions, body.expires_at
    )
    return AgentKeyCreatedResponse(**_key(record).model_dump(), key=token)


@router.get("/v1/agents/{agent_id}/keys", response_model=list[AgentKeyItem], responses=_FORBIDDEN)
async def list_agent_keys(request: Request, caller: CallerDep, agent_id: str) -> list[AgentKeyItem]:
    """The agent's keys, revoked ones included (admins only; never the keys themselves)."""
    return [_key(k) for k in await services(request).agent_channels.list_keys(caller, agent_id)]


@router.delete(
    "/v1/agents/{agent_id}/keys/{agent_key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_FORBIDDEN,
)
async def revoke_agent_key(
    request: Request, caller: CallerDep, agent_id: str, agent_key_id: str
) -> Response:
    """Revoke an agent key (admins only): it is refused at once, with the runtime tokens it
    minted."""
    await services(request).agent_channels.revoke_key(caller, agent_id, agent_key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
