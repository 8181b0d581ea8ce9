"""Wire shapes of organizations, members and users (``/v1/orgs``, ``/v1/users``), after the
Everruns v1 ``OrganizationResponse``, ``User`` and ``ProfileResponse``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from everloop.api.schemas import WireModel
from everloop.services.orgs import MemberRow, Membership, OrgRow, public_user_id

RoleName = Literal["owner", "admin", "member"]


class OrganizationResponse(BaseModel):
    id: str
    name: str
    role: Annotated[str | None, Field(description="The caller's role in it.")] = None
    default_provider_per_service: dict[str, str] = {}
    created_at: str
    updated_at: str


class CreateOrganizationRequest(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]


class UpdateOrganizationRequest(WireModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]


class MemberResponse(BaseModel):
    user_id: str
    name: str
    email: str | None
    role: str
    joined_at: str


class AddMemberRequest(WireModel):
    email: Annotated[str, Field(min_length=3, max_length=320)]
    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    role: RoleName = "member"


class AddedMemberResponse(MemberResponse):
    token: Annotated[
        str | None,
        Field(
            description="A new user's first token, shown only here: hand it to them (everloop "
            "sends no mail). Null when the person already had a user."
        ),
    ] = None


class ChangeRoleRequest(WireModel):
    role: RoleName


class User(BaseModel):
    id: str
    email: str
    name: str
    roles: list[str]
    avatar_url: str | None = None
    auth_provider: str | None = None
    created_at: str


class ProfileResponse(BaseModel):
    id: str
    email: str
    name: str
    avatar_url: str | None = None
    organization_id: str
    role: str


class UpdateProfileRequest(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]


class DeleteAccountResponse(BaseModel):
    deleted: bool


def org_response(org: OrgRow, role: str | None = None) -> OrganizationResponse:
    return OrganizationResponse(
        id=org.id, name=org.name, role=role, created_at=org.created_at, updated_at=org.updated_at
    )


def membership_response(membership: Membership) -> OrganizationResponse:
    return org_response(membership.org, membership.role)


def member_response(member: MemberRow) -> MemberResponse:
    return MemberResponse(
        user_id=public_user_id(member.user_id),
        name=member.name,
        email=member.email,
        role=member.role,
        joined_at=member.created_at,
    )


def user_response(member: MemberRow) -> User:
    return User(
        id=public_user_id(member.user_id),
        email=member.email or "",
        name=member.name,
        roles=[member.role],
        created_at=member.user_created_at,
    )


class AuditEvent(BaseModel):
    id: str
    organization_id: str
    actor_principal_id: str
    actor_user_id: str | None
    actor_kind: str
    action: str
    route: str
    target_type: str
    target_id: str | None
    outcome: str
    changes: dict[str, object] | None
    request_id: str | None
    client_ip: str | None
    created_at: str


class AuditEventPage(BaseModel):
    data: list[AuditEvent]
    next_cursor: Annotated[
        str | None, Field(description="Pass as `before` for the next (older) page.")
    ]
