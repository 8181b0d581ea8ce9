"""Routes of the MCP server registry (thin: parse, call the service, present)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from everloop.api.deps import CallerDep, services
from everloop.api.mcp_schemas import (
    CreateMcpServerRequest,
    McpServerResponse,
    UpdateMcpServerRequest,
)
from everloop.api.schemas import ListResponse
from everloop.domain.mcp import McpServer

router = APIRouter(tags=["mcp-servers"])


def server_out(server: McpServer) -> McpServerResponse:
    return McpServerResponse(
        id=server.id,
        name=server.name,
        description=server.description,
        url=server.url,
        transport_type=server.transport_type,
        status=server.status,
        header_names=list(server.header_names),
        api_key_set=any(n.lower() == "authorization" for n in server.header_names),
        capability_ref=server.capability_ref,
        created_at=server.created_at,
        updated_at=server.updated_at,
    )


@router.get("/v1/mcp-servers", response_model=ListResponse[McpServerResponse])
async def list_mcp_servers(
    request: Request, caller: CallerDep, search: str | None = None
) -> ListResponse[McpServerResponse]:
    """List the organization's registered MCP servers; ``search`` filters by name."""
    found = await services(request).mcp_servers.list(caller, search=search)
    return ListResponse(data=[server_out(s) for s in found], total=len(found))


@router.post(
    "/v1/mcp-servers", response_model=McpServerResponse, status_code=status.HTTP_201_CREATED
)
async def create_mcp_server(
    request: Request, caller: CallerDep, body: CreateMcpServerRequest
) -> McpServerResponse:
    """Register an MCP server (its URL, transport and headers); header values are stored sealed and
    never returned."""
    created = await services(request).mcp_servers.create(caller, body.model_dump())
    return server_out(created)


@router.get("/v1/mcp-servers/{server_id}", response_model=McpServerResponse)
async def get_mcp_server(request: Request, caller: CallerDep, server_id: str) -> McpServerResponse:
    """Get one registered MCP server by id (header names only, never their values)."""
    return server_out(await services(request).mcp_servers.get(caller, server_id))


@router.patch("/v1/mcp-servers/{server_id}", response_model=McpServerResponse)
async def update_mcp_server(
    request: Request, caller: CallerDep, server_id: str, body: UpdateMcpServerRequest
) -> McpServerResponse:
    """Change a registered MCP server; fields not sent stay as they are."""
    updated = await services(request).mcp_servers.update(
        caller, server_id, body.model_dump(exclude_unset=True)
    )
    return server_out(updated)


@router.delete("/v1/mcp-servers/{server_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_mcp_server(request: Request, caller: CallerDep, server_id: str) -> Response:
    """Remove a registered MCP server."""
    await services(request).mcp_servers.delete(caller, server_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
