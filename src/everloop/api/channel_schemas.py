"""Wire schemas of the Agent Execution API (``/v1/channels/{channel_id}``) and of the management
of an agent's channels and keys (``/v1/agents/{agent_id}/channels``, ``.../keys``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from everloop.api.schemas import SessionResponse, ShortText, Title, WireModel


class AgentCardResponse(BaseModel):
    """Who the agent behind a channel is, what input it takes, which credentials reach it."""

    id: Annotated[str, Field(description="The channel's id.")]
    agent_id: str
    name: str
    display_name: str | None
    description: str | None
    status: str
    accepted_input: dict[str, Any]
    input_hints: dict[str, Any]
    conversation_starters: list[str]
    credentials: list[str]


class CreateChannelSessionRequest(WireModel):
    title: Title | None = None


class ChannelSessionResponse(SessionResponse):
    """A session as the management API shows it, with what waits for the caller."""

    end_user: Annotated[
        str | None, Field(description="The End-User the session belongs to, if any.")
    ] = None
    pending_questions: list[dict[str, Any]] = []
    pending_approvals: list[dict[str, Any]] = []


class ChannelSessionPage(BaseModel):
    data: list[ChannelSessionResponse]
    next_page_token: Annotated[
        str | None, Field(description="Pass as `page_token` for the next page; null at the end.")
    ]


class RuntimeAuthResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: Annotated[int, Field(description="Seconds until the token stops working.")]
    virtual_user_id: Annotated[str, Field(description="The end user's principal id.")]


class CreateChannelRequest(WireModel):
    name: ShortText | None = None
    allow_member_tokens: Annotated[
        bool,
        Field(description="Whether members' personal access tokens reach the channel."),
    ] = False


class ChannelResponse(BaseModel):
    id: str
    agent_id: str
    name: str
    allow_member_tokens: bool
    path: Annotated[str, Field(description="The channel's base path: an AgentClient's agent_url.")]
    created_at: str


class CreateAgentKeyRequest(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    permissions: Annotated[
        list[Annotated[str, Field(max_length=40)]],
        Field(max_length=10, description="`end_user`: the key may send `End-User`."),
    ] = []
    expires_at: Annotated[
        datetime | None,
        Field(description="When the key stops working (RFC 3339; without a zone, UTC)."),
    ] = None


class AgentKeyItem(BaseModel):
    id: str
    agent_id: str
    name: str
    key_prefix: str
    permissions: list[str]
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class AgentKeyCreatedResponse(AgentKeyItem):
    key: Annotated[str, Field(description="The key itself: shown in this response only.")]
