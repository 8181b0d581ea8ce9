"""User connections (``/v1/user/connections``), as Everruns: the caller's API keys for outside
providers, write-only. Each becomes a secret of every session the caller creates afterwards
(``services.connections``); responses name the provider and that secret, never the key.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field, StringConstraints

from everloop.api.deps import CallerDep, services
from everloop.api.schemas import ErrorResponse, WireModel
from everloop.domain.connections import Connection, secret_name

router = APIRouter(tags=["user-connections"])

_NO_CONNECTION: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "The caller has no connection to the provider"}
}


class SetConnectionRequest(WireModel):
    api_key: Annotated[
        str,
        StringConstraints(min_length=1, max_length=64 * 1024),
        Field(description="The provider's API key: stored sealed, never returned."),
    ]


class ConnectionResponse(BaseModel):
    """A connection: never its key."""

    provider: str
    secret_name: Annotated[
        str, Field(description="The session secret it becomes in the caller's new sessions.")
    ]
    created_at: str
    updated_at: str


class ConnectionListResponse(BaseModel):
    data: list[ConnectionResponse]


def _response(found: Connection) -> ConnectionResponse:
    return ConnectionResponse(
        provider=found.provider,
        secret_name=secret_name(found.provider),
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


@router.get("/v1/user/connections", response_model=ConnectionListResponse)
async def list_connections(request: Request, caller: CallerDep) -> ConnectionListResponse:
    """List the caller's connections.

    The connections of the caller's user in the organization the request acts for, by provider
    name; never their keys.
    """
    found = await services(request).connections.list(caller)
    return ConnectionListResponse(data=[_response(c) for c in found])


@router.post(
    "/v1/user/connections/{provider}",
    response_model=ConnectionResponse,
    responses={
        200: {"description": "The connection was replaced"},
        201: {"model": ConnectionResponse, "description": "The connection was created"},
    },
)
async def set_connection(
    request: Request,
    response: Response,
    caller: CallerDep,
    provider: str,
    body: SetConnectionRequest,
) -> ConnectionResponse:
    """Set the caller's API key for a provider.

    Creates (201) or replaces (200) the connection. ``provider`` is a slug (``github``,
    ``daytona``); the key is sealed and never returned. Sessions the caller creates from now on
    get it as the secret ``secret_name``.
    """
    found, created = await services(request).connections.set(caller, provider, body.api_key)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return _response(found)


@router.delete(
    "/v1/user/connections/{provider}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_NO_CONNECTION,
)
async def delete_connection(request: Request, caller: CallerDep, provider: str) -> Response:
    """Remove the caller's connection to a provider.

    Sessions created before keep the secret they were given; new ones no longer get it.
    """
    await services(request).connections.remove(caller, provider)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
