"""Wire schemas of agent identities (``/v1/agent-identities``).

``name`` is a slug unique in the organization, like a harness's or an agent's; ``locale`` is a
BCP 47 tag, as on sessions; ``timezone`` an IANA zone name, checked by the service (a 422
naming the field).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, StringConstraints, field_validator

from everloop.api.schemas import (
    Locale,
    LongText,
    ResourceName,
    ShortText,
    WireModel,
    not_null,
)

ZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class CreateAgentIdentityRequest(WireModel):
    name: ResourceName
    display_name: ShortText | None = None
    description: LongText | None = None
    locale: Locale | None = None
    timezone: ZoneName | None = None


class UpdateAgentIdentityRequest(WireModel):
    """Fields left out stay as they are; null clears any but ``name``."""

    name: ResourceName | None = None
    display_name: ShortText | None = None
    description: LongText | None = None
    locale: Locale | None = None
    timezone: ZoneName | None = None

    _required = field_validator("name", mode="before")(not_null)


class AgentIdentityResponse(BaseModel):
    id: str
    name: str
    display_name: str | None
    description: str | None
    locale: str | None
    timezone: str | None
    principal_id: str
    owner_principal_id: str
    created_at: str
    updated_at: str
