"""Organizations, their members, and the caller's own account.

``/v1/orgs``: the organizations the caller belongs to; creating one (the instance's operator,
or anyone with ``EVERLOOP_ANY_USER_CREATES_ORGS``) makes the caller its owner. A route under
``/v1/orgs/{org_id}`` acts in that organization (as ``X-Org-Id`` would); another
organization's id is a 404. Who may call what is in ``api/access.py``; the owner rules (only an
owner grants or removes the owner role, one owner always stays) in ``services/orgs.py``.

``/v1/users``: the members of the caller's organization, and the caller's own profile.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from everloop.api.deps import CallerDep, KnownQuery, services
from everloop.api.org_schemas import (
    AddedMemberResponse,
    AddMemberRequest,
    AuditEvent,
    AuditEventPage,
    ChangeRoleRequest,
    CreateOrganizationRequest,
    DeleteAccountResponse,
    MemberResponse,
    OrganizationResponse,
    ProfileResponse,
    UpdateOrganizationRequest,
    UpdateProfileRequest,
    User,
    member_response,
    membership_response,
    org_response,
    user_response,
)
from everloop.api.schemas import ListResponse
from everloop.domain.timestamps import format_ts
from everloop.errors import InvalidInput
from everloop.services.audit import AuditFilter
from everloop.services.auth import Caller
from everloop.services.orgs import MemberRow, public_user_id

router = APIRouter(tags=["organizations"])


@router.get("/v1/orgs", response_model=ListResponse[OrganizationResponse])
async def list_orgs(request: Request, caller: CallerDep) -> ListResponse[OrganizationResponse]:
    """The organizations the caller belongs to, with their role in each."""
    found = await services(request).orgs.list_orgs(caller)
    return ListResponse(data=[membership_response(m) for m in found], total=len(found))


@router.post("/v1/orgs", response_model=OrganizationResponse, status_code=status.HTTP_201_CREATED)
async def create_org(
    request: Request, caller: CallerDep, body: CreateOrganizationRequest
) -> OrganizationResponse:
    """Create an organization with the caller as its owner (the instance's operator only,
    unless ``EVERLOOP_ANY_USER_CREATES_ORGS``); it starts with the built-in harnesses and
    ``llmsim``. Act in it with ``X-Org-Id``."""
    org = await services(request).orgs.create_org(caller, body.name)
    return org_response(org, "owner")


@router.get("/v1/orgs/{org_id}", response_model=OrganizationResponse)
async def get_org(request: Request, caller: CallerDep, org_id: str) -> OrganizationResponse:
    """One of the caller's organizations (any other is a 404)."""
    return org_response(await services(request).orgs.get_org(caller), caller.role)


@router.patch("/v1/orgs/{org_id}", response_model=OrganizationResponse)
async def update_org(
    request: Request, caller: CallerDep, org_id: str, body: UpdateOrganizationRequest
) -> OrganizationResponse:
    """Rename the organization (owners)."""
    return org_response(await services(request).orgs.rename_org(caller, body.name), caller.role)


@router.get("/v1/orgs/{org_id}/members", response_model=ListResponse[MemberResponse])
async def list_members(
    request: Request, caller: CallerDep, org_id: str
) -> ListResponse[MemberResponse]:
    """The organization's members and their roles, in the order they joined."""
    found = await services(request).orgs.list_members(caller)
    return ListResponse(data=[member_response(m) for m in found], total=len(found))


@router.post(
    "/v1/orgs/{org_id}/members",
    response_model=AddedMemberResponse,
    status_code=status.HTTP_201_CREATED,
)
async def add_member(
    request: Request, caller: CallerDep, org_id: str, body: AddMemberRequest
) -> AddedMemberResponse:
    """Add a person by e-mail address with a role (admins; only owners add owners). A person
    with no user yet gets one, and ``token``, their first token, is in this response only."""
    added = await services(request).orgs.add_member(caller, body.email, body.role, body.name)
    return AddedMemberResponse(**member_response(added.member).model_dump(), token=added.token)


@router.patch("/v1/orgs/{org_id}/members/{user_id}", response_model=MemberResponse)
async def change_member_role(
    request: Request, caller: CallerDep, org_id: str, user_id: str, body: ChangeRoleRequest
) -> MemberResponse:
    """Change a member's role (admins; only owners grant or take the owner role; the last
    owner keeps it). Their tokens carry the new role from their next request."""
    changed = await services(request).orgs.change_role(caller, user_id, body.role)
    return member_response(changed)


@router.delete("/v1/orgs/{org_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(request: Request, caller: CallerDep, org_id: str, user_id: str) -> None:
    """Remove a member (admins; only owners remove owners; the last owner stays). Their
    tokens stop reaching the organization at once, and are revoked if it was their last."""
    await services(request).orgs.remove_member(caller, user_id)


@router.get("/v1/users", response_model=ListResponse[User])
async def list_users(request: Request, caller: CallerDep) -> ListResponse[User]:
    """The users of the caller's organization, with their role there."""
    found = await services(request).orgs.list_members(caller)
    return ListResponse(data=[user_response(m) for m in found], total=len(found))


def _profile(me: MemberRow, caller: Caller) -> ProfileResponse:
    return ProfileResponse(
        id=public_user_id(me.user_id),
        email=me.email or "",
        name=me.name,
        organization_id=caller.organization_id,
        role=me.role,
    )


@router.get("/v1/users/me", response_model=ProfileResponse)
async def get_me(request: Request, caller: CallerDep) -> ProfileResponse:
    """The caller: their user, and their organization and role for this request."""
    return _profile(await services(request).orgs.me(caller), caller)


@router.patch("/v1/users/me", response_model=ProfileResponse)
async def update_me(
    request: Request, caller: CallerDep, body: UpdateProfileRequest
) -> ProfileResponse:
    """Change the caller's display name."""
    return _profile(await services(request).orgs.update_me(caller, body.name), caller)


@router.delete("/v1/users/me", response_model=DeleteAccountResponse)
async def delete_me(request: Request, caller: CallerDep) -> DeleteAccountResponse:
    """Close the caller's account: leave every organization and revoke every token (refused
    while they are the last owner of one)."""
    await services(request).orgs.delete_me(caller)
    return DeleteAccountResponse(deleted=True)


@router.get("/v1/audit-events", response_model=AuditEventPage, dependencies=[KnownQuery])
async def list_audit_events(
    request: Request,
    caller: CallerDep,
    actor: Annotated[str | None, Query(description="An actor principal id.")] = None,
    action: Annotated[str | None, Query(description="Such as agents.update.")] = None,
    target_id: str | None = None,
    target_type: str | None = None,
    since: Annotated[str | None, Query(description="RFC 3339: records at or after.")] = None,
    until: Annotated[str | None, Query(description="RFC 3339: records before.")] = None,
    before: Annotated[str | None, Query(description="The next_cursor of a page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditEventPage:
    """The organization's audit log, newest first (admins): one record per management change,
    written with the change itself; secret values are never in it."""
    flt = AuditFilter(
        actor_principal_id=actor,
        action=action,
        target_id=target_id,
        target_type=target_type,
        since=_instant(since, "since"),
        until=_instant(until, "until"),
    )
    rows, following = await services(request).audit.list(caller, flt, before=before, limit=limit)
    return AuditEventPage(data=[AuditEvent(**r) for r in rows], next_cursor=following)


def _instant(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field} must be an RFC 3339 time such as 2026-12-01T00:00:00Z", field=field
        ) from None
    return format_ts(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
