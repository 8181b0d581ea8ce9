"""The caller's personal access tokens, as Everruns' ``/v1/auth/api-keys``: list, create (the
token is shown once), delete (revoke: it stops authenticating at once)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from everloop.api.deps import CallerDep, services
from everloop.api.schemas import WireModel
from everloop.domain.resources import AccessToken
from everloop.errors import InvalidInput

router = APIRouter(tags=["auth"])

ALL_SCOPES = "*"


class CreateApiKeyRequest(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    scopes: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=20)] = []
    expires_in_days: Annotated[int | None, Field(ge=1, le=36_500)] = None


class ApiKeyListItem(BaseModel):
    id: str
    name: str
    key_prefix: str
    scopes: list[str]
    expires_at: str | None
    last_used_at: str | None
    created_at: str


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
        expires_at=None,
        last_used_at=None,
        created_at=token.created_at,
    )


@router.get("/v1/auth/api-keys", response_model=list[ApiKeyListItem])
async def list_api_keys(request: Request, caller: CallerDep) -> list[ApiKeyListItem]:
    """The caller's live tokens (never the tokens themselves: a prefix to recognise them)."""
    return [_item(t) for t in await services(request).auth.list_tokens(caller)]


@router.post(
    "/v1/auth/api-keys", response_model=ApiKeyResponse, status_code=status.HTTP_201_CREATED
)
async def create_api_key(
    request: Request, caller: CallerDep, body: CreateApiKeyRequest
) -> ApiKeyResponse:
    """Mint a token for the caller's user; ``key`` is in this response only."""
    if any(scope != ALL_SCOPES for scope in body.scopes):
        raise InvalidInput("only the scope '*' (everything) is supported", field="scopes")
    if body.expires_in_days is not None:
        raise InvalidInput("tokens do not expire here; revoke one instead", field="expires_in_days")
    record, token = await services(request).auth.create_api_key(caller, body.name)
    return ApiKeyResponse(
        id=record.id,
        name=record.name,
        key=token,
        key_prefix=record.hint,
        scopes=[ALL_SCOPES],
        expires_at=None,
        created_at=record.created_at,
    )


@router.delete("/v1/auth/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_api_key(request: Request, caller: CallerDep, key_id: str) -> Response:
    """Revoke one of the caller's tokens (this one too, if it is the one sending this)."""
    await services(request).auth.revoke_token(caller, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
