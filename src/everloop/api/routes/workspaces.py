"""Routes of workspaces: ``/v1/workspaces`` (CRUD) and their files (``/v1/workspaces/{id}/fs``).

A workspace is an organization's named file area; sessions share one by naming it at
creation (``workspace_id``), and every session has its own automatic one otherwise. The file
routes are the sessions' (``routes.files.file_routes``), over the named workspace.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field, StringConstraints

from everloop.api.deps import CallerDep, services
from everloop.api.routes.files import file_routes
from everloop.api.schemas import ListResponse, ResourceName, WireModel
from everloop.services.auth import Caller
from everloop.services.files import Workspace
from everloop.services.workspaces import WorkspaceInfo

Description = Annotated[str, StringConstraints(max_length=1000)]

router = APIRouter(tags=["workspaces"])


class WorkspaceResponse(BaseModel):
    """A workspace: a named file area of the organization."""

    id: str
    organization_id: str
    name: str
    description: str | None
    status: Literal["active", "archived"]
    owner_principal_id: str
    session_id: str | None = Field(
        description="Set for a session's automatic workspace (made and deleted with that "
        "session); null for a shared workspace."
    )
    created_at: str
    updated_at: str
    archived_at: str | None
    deleted_at: str | None


class CreateWorkspaceRequest(WireModel):
    name: ResourceName = Field(description="Unique in the organization (a slug).")
    description: Description | None = None


class UpdateWorkspaceRequest(WireModel):
    name: ResourceName | None = None
    description: Description | None = None
    status: Literal["active", "archived"] | None = None


def _out(row: WorkspaceInfo) -> WorkspaceResponse:
    return WorkspaceResponse(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        description=row.description,
        status=row.status,
        owner_principal_id=row.owner_principal_id,
        session_id=row.session_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        archived_at=row.archived_at,
        deleted_at=row.deleted_at,
    )


@router.get("/v1/workspaces", response_model=ListResponse[WorkspaceResponse])
async def list_workspaces(
    request: Request,
    caller: CallerDep,
    search: Annotated[str | None, Query(max_length=200)] = None,
    include_archived: bool = False,
) -> ListResponse[WorkspaceResponse]:
    """List the organization's workspaces.

    By name; ``search`` matches a part of the name or the description (any case);
    ``include_archived`` lists archived ones too. Sessions' automatic workspaces are listed.
    """
    rows = await services(request).workspaces.list(
        caller, search=search, include_archived=include_archived
    )
    return ListResponse(data=[_out(r) for r in rows], total=len(rows))


@router.post(
    "/v1/workspaces", response_model=WorkspaceResponse, status_code=status.HTTP_201_CREATED
)
async def create_workspace(
    request: Request, caller: CallerDep, body: CreateWorkspaceRequest
) -> WorkspaceResponse:
    """Create a shared workspace.

    Sessions created with its ``workspace_id`` share its files; it outlives them. 409 if the
    name is taken in the organization.
    """
    return _out(await services(request).workspaces.create(caller, body.name, body.description))


@router.get("/v1/workspaces/{workspace_id}", response_model=WorkspaceResponse)
async def get_workspace(
    request: Request, caller: CallerDep, workspace_id: str
) -> WorkspaceResponse:
    """Get a workspace.

    A session's automatic workspace too (its id is the session's ``workspace_id``).
    """
    return _out(await services(request).workspaces.get(caller, workspace_id))


@router.patch("/v1/workspaces/{workspace_id}", response_model=WorkspaceResponse)
async def update_workspace(
    request: Request, caller: CallerDep, workspace_id: str, body: UpdateWorkspaceRequest
) -> WorkspaceResponse:
    """Rename, describe, archive or restore a workspace.

    ``status`` ``archived`` makes its files read-only through the API; a session's automatic
    workspace keeps its name and status (409).
    """
    changes = body.model_dump(exclude_unset=True)
    return _out(await services(request).workspaces.update(caller, workspace_id, changes))


@router.delete("/v1/workspaces/{workspace_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workspace(request: Request, caller: CallerDep, workspace_id: str) -> Response:
    """Archive a workspace.

    Its files stay (readable; writes are a 409 ``workspace_archived``) until it is restored
    with ``PATCH`` ``status: active``. A session's automatic workspace goes only with its
    session (409).
    """
    await services(request).workspaces.archive(caller, workspace_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _workspace_files(
    request: Request, caller: Caller, workspace_id: str, write: bool
) -> AbstractAsyncContextManager[Workspace]:
    return services(request).workspaces.files(caller, workspace_id, write=write)


file_routes(router, "/v1/workspaces", "workspace_id", _workspace_files)
