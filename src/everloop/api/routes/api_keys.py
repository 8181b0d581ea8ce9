"""Personal access tokens.

``/v1/auth/api-keys``, as Everruns: the caller's own tokens; list, create (the token is shown
once, it may expire), delete (revoke: it stops authenticating at once).

``/v1/admin/api-keys``: an organization's admin lists the tokens of every member of the
organization, revoked ones included, and revokes any of them; a token of a user who is not a
member is a 404 there, and a caller who is not an admin gets 403.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from everloop.api.deps import CallerDep, services
from everloop.api.schemas import ErrorResponse, WireModel
from everloop.domain.resources import AccessToken
from everloop.errors import InvalidInput

router = APIRouter(tags=["auth"])

ALL_SCOPES = "*"
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The caller is not an admin of the organization"}
}


class CreateApiKeyRequest(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    scopes: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=20)] = []
    expires_in_days: Annotated[int | None, Field(ge=1, le=36_500)] = None
    expires_at: Annotated[
        datetime | None,
        Field(description="When the token stops working (RFC 3339; without a zone, UTC)."),
    ] = None


class ApiKeyListItem(BaseModel):
    id: str
    name: str
    key_prefix: str
    scopes: list[str]
    expires_at: str | None
    last_used_at: Annotated[str | None, Field(description="Not tracked: always null.")]
    created_at: str


class OrgApiKeyListItem(ApiKeyListItem):
    user_id: str
    revoked_at: str | None


class ApiKeyResponse(BaseModel):
    id: str
    name: str
    key: str
    key_prefix: str
    scopes: list[str]
    expires_at: str | None
    created_at: str


def _item(token: AccessToken) -> ApiKeyListItem:
    return ApiKeyListItem(
        id=token.id,
        name=token.name,
        key_prefix=token.hint,
        scopes=[ALL_SCOPES],
        expires_at=token.expires_at,
        last_used_at=None,
        created_at=token.created_at,
    )


def _expiry(body: CreateApiKeyRequest) -> datetime | None:
    if body.expires_in_days is None:
        return body.expires_at
    if body.expires_at is not None:
        raise InvalidInput("give expires_at or expires_in_days, not both", field="expires_at")
    return datetime.now(UTC) + timedelta(days=body.expires_in_days)


@router.get("/v1/auth/api-keys", response_model=list[ApiKeyListItem])
async def list_api_keys(request: Request, caller: CallerDep) -> list[ApiKeyListItem]:
    """The caller's tokens that are not revoked, expired ones too (never the tokens
    themselves: a prefix to recognise them)."""
    return [_item(t) for t in await services(request).auth.list_tokens(caller)]


@router.post(
    "/v1/auth/api-keys", response_model=ApiKeyResponse, status_code=status.HTTP_201_CREATED
)
async def create_api_key(
    request: Request, caller: CallerDep, body: CreateApiKeyRequest
) -> ApiKeyResponse:
    """Mint a token for the caller's user; ``key`` is in this response only. It expires at
    ``expires_at`` or after ``expires_in_days`` (which must be in the future), else never."""
    if any(scope != ALL_SCOPES for scope in body.scopes):
        raise InvalidInput("only the scope '*' (everything) is supported", field="scopes")
    record, token = await services(request).auth.create_api_key(caller, body.name, _expiry(body))
    return ApiKeyResponse(
        id=record.id,
        name=record.name,
        key=token,
        key_prefix=record.hint,
        scopes=[ALL_SCOPES],
        expires_at=record.expires_at,
        created_at=record.created_at,
    )


@router.delete("/v1/auth/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_api_key(request: Request, caller: CallerDep, key_id: str) -> Response:
    """Revoke one of the caller's tokens (this one too, if it is the one sending this)."""
    await services(request).auth.revoke_token(caller, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/admin/api-keys", response_model=list[OrgApiKeyListItem], responses=_FORBIDDEN)
async def list_org_api_keys(request: Request, caller: CallerDep) -> list[OrgApiKeyListItem]:
    """Every token of the organization's members, revoked and expired ones included (admins
    only)."""
    tokens = await services(request).auth.list_org_tokens(caller)
    return [
        OrgApiKeyListItem(**_item(t).model_dump(), user_id=t.user_id, revoked_at=t.revoked_at)
        for t in tokens
    ]


@router.delete(
    "/v1/admin/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_FORBIDDEN,
)
async def revoke_org_api_key(request: Request, caller: CallerDep, key_id: str) -> Response:
    """Revoke a token of any member of the organization (admins only)."""
    await services(request).auth.revoke_org_token(caller, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
