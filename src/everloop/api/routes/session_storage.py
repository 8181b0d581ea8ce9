"""Routes of a session's key-values, secrets (``/storage``) and resource registry.

Secret values go in (``PUT /storage/secrets``) and never come out: ``GET`` lists names.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from everloop.api.deps import CallerDep, services
from everloop.api.schemas import ListResponse
from everloop.api.storage_schemas import (
    BatchSetSecretsRequest,
    BatchSetSecretsResponse,
    KeyValueInfo,
    SecretInfo,
    SessionResourceEntry,
)

router = APIRouter(tags=["session-storage"])


@router.get("/v1/sessions/{session_id}/storage/keys", response_model=ListResponse[KeyValueInfo])
async def list_keys(
    request: Request, caller: CallerDep, session_id: str
) -> ListResponse[KeyValueInfo]:
    """List the session's key-value entries, with their values."""
    found = await services(request).storage.list_keys(caller, session_id)
    return ListResponse(
        data=[
            KeyValueInfo(
                key=kv.key, value=kv.value, created_at=kv.created_at, updated_at=kv.updated_at
            )
            for kv in found
        ],
        total=len(found),
    )


@router.get("/v1/sessions/{session_id}/storage/secrets", response_model=ListResponse[SecretInfo])
async def list_secrets(
    request: Request, caller: CallerDep, session_id: str
) -> ListResponse[SecretInfo]:
    """List the names of the session's secrets (never their values)."""
    found = await services(request).storage.list_secrets(caller, session_id)
    return ListResponse(
        data=[
            SecretInfo(name=s.name, created_at=s.created_at, updated_at=s.updated_at) for s in found
        ],
        total=len(found),
    )


@router.put("/v1/sessions/{session_id}/storage/secrets", response_model=BatchSetSecretsResponse)
async def set_secrets(
    request: Request, caller: CallerDep, session_id: str, body: BatchSetSecretsRequest
) -> BatchSetSecretsResponse:
    """Set several of the session's secrets at once; values are stored sealed and never returned."""
    count = await services(request).storage.set_secrets(caller, session_id, body.secrets)
    return BatchSetSecretsResponse(count=count)


@router.get(
    "/v1/sessions/{session_id}/resources",
    response_model=list[SessionResourceEntry],
    tags=["session-resources"],
)
async def list_resources(
    request: Request, caller: CallerDep, session_id: str
) -> list[SessionResourceEntry]:
    """List the resources the session holds (its leases), with their kind and expiry."""
    leases = await services(request).storage.list_leases(caller, session_id)
    return [
        SessionResourceEntry(
            resource_id=lease.name,
            session_id=lease.session_id,
            kind=lease.kind,
            display_name=lease.name,
            status="active",
            metadata=lease.metadata,
            expires_at=lease.expires_at,
            created_at=lease.created_at,
            updated_at=lease.updated_at,
        )
        for lease in leases
    ]
