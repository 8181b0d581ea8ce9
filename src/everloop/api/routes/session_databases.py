"""Routes of a session's SQL databases (``sql_database`` capability): list, create, inspect,
delete. The agent changes them through its tools; there is no SQL over REST."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from everloop.api.capability_schemas import (
    CreateDatabaseRequest,
    DatabaseInfoResponse,
    SchemaResponse,
)
from everloop.api.deps import CallerDep, services
from everloop.api.schemas import ListResponse
from everloop.domain.resources import DatabaseInfo
from everloop.sql_sandbox import PAGE_SIZE

router = APIRouter(tags=["session-databases"])


def database_out(info: DatabaseInfo) -> DatabaseInfoResponse:
    return DatabaseInfoResponse(
        name=info.name,
        size_bytes=info.size_bytes,
        page_count=info.size_bytes // PAGE_SIZE,
        created_at=info.created_at,
        updated_at=info.updated_at,
    )


@router.get(
    "/v1/sessions/{session_id}/databases", response_model=ListResponse[DatabaseInfoResponse]
)
async def list_databases(
    request: Request, caller: CallerDep, session_id: str
) -> ListResponse[DatabaseInfoResponse]:
    """List the session's SQL databases."""
    found = await services(request).session_databases.list_for(caller, session_id)
    return ListResponse(data=[database_out(d) for d in found], total=len(found))


@router.post(
    "/v1/sessions/{session_id}/databases",
    response_model=DatabaseInfoResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_database(
    request: Request, caller: CallerDep, session_id: str, body: CreateDatabaseRequest
) -> DatabaseInfoResponse:
    """Create an empty SQL database in the session."""
    created = await services(request).session_databases.create_for(caller, session_id, body.name)
    return database_out(created)


@router.get("/v1/sessions/{session_id}/databases/{name}", response_model=DatabaseInfoResponse)
async def get_database(
    request: Request, caller: CallerDep, session_id: str, name: str
) -> DatabaseInfoResponse:
    """Get one of the session's SQL databases by name (size, table count, times)."""
    return database_out(await services(request).session_databases.get_for(caller, session_id, name))


@router.delete("/v1/sessions/{session_id}/databases/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_database(
    request: Request, caller: CallerDep, session_id: str, name: str
) -> Response:
    """Delete one of the session's SQL databases."""
    await services(request).session_databases.delete_for(caller, session_id, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/sessions/{session_id}/databases/{name}/schema", response_model=SchemaResponse)
async def get_database_schema(
    request: Request, caller: CallerDep, session_id: str, name: str
) -> SchemaResponse:
    """The tables and columns of one of the session's SQL databases."""
    tables = await services(request).session_databases.schema_for(caller, session_id, name)
    return SchemaResponse.model_validate({"database": name, "tables": tables})
