"""Wire schemas: the request and response bodies of the v1 API (Everruns-compatible).

Requests ignore unknown fields (newer clients send more than we know) but validate every field
we read; a failure is a 422 that names the field. Every value of a request must also be one
the store keeps and the API returns unchanged (``api.json_values``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from everloop.api.json_values import JsonObject, JsonValue, storable
from everloop.domain.mcp import public_mcp_servers

NAME_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
ResourceName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NAME_PATTERN)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
Title = Annotated[str, StringConstraints(max_length=500)]
LongText = Annotated[str, StringConstraints(max_length=200_000)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Tags = Annotated[list[Tag], Field(max_length=50)]
IdText = Annotated[str, StringConstraints(min_length=1, max_length=100)]

_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-[A-Za-z0-9]{5,8})*$")


def _check_locale(value: str) -> str:
    if not _BCP47.match(value):
        raise ValueError("must be a BCP 47 language tag such as 'en' or 'uk-UA'")
    return value


Locale = Annotated[str, StringConstraints(max_length=35), AfterValidator(_check_locale)]


class WireModel(BaseModel):
    """A request body (or a part of one): every field, and every extra field a model allows,
    is checked to be storable (no lone surrogates, bounded depth and numbers). A model that
    allows extra fields types them ``JsonValue``, which checks them too."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    _storable = field_validator("*", mode="after")(storable)


def not_null(value: Any) -> Any:
    # In a PATCH, leaving a field out keeps it; null would clear a field that must have a value.
    if value is None:
        raise ValueError("may be left out but not set to null")
    return value


class AgentCapabilityConfig(WireModel):
    ref: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    config: JsonObject | None = None


class CapabilityConfigOut(BaseModel):
    """``AgentCapabilityConfig`` in a response: a stored value, not held to request limits."""

    ref: str
    config: dict[str, Any] | None = None


class InitialFile(WireModel):
    path: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    content: Annotated[str, StringConstraints(max_length=10 * 1024 * 1024)]
    encoding: Literal["text", "base64"] = "text"
    is_readonly: bool = False


class NetworkAccessList(WireModel):
    allowed: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=500)]], Field(max_length=200)
    ] = []
    blocked: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=500)]], Field(max_length=200)
    ] = []


class ToolDefinition(WireModel):
    """A tool the agent may call: ``client_side`` (the API caller runs it and posts the result)
    or ``builtin`` (names a tool of a registered capability)."""

    type: Literal["client_side", "builtin"] = "client_side"
    name: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: Annotated[str, StringConstraints(max_length=10_000)] = ""
    parameters: JsonObject = Field(default_factory=lambda: {"type": "object", "properties": {}})
    display_name: ShortText | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=7 * 24 * 3600)] | None = None

    @model_validator(mode="after")
    def _parameters_are_a_schema(self) -> ToolDefinition:
        try:
            validator_for(self.parameters).check_schema(self.parameters)
        except SchemaError as exc:
            raise ValueError(
                f"tool '{self.name}': parameters is not a valid JSON Schema: {exc.message}"
            ) from None
        if self.parameters.get("type", "object") != "object":
            raise ValueError(f"tool '{self.name}': parameters must describe an object")
        return self


class ToolDefinitionOut(BaseModel):
    """``ToolDefinition`` in a response: a stored value, not held to request limits."""

    type: Literal["client_side", "builtin"] = "client_side"
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    display_name: str | None = None
    timeout_seconds: float | None = None


class McpServerConfig(WireModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    headers: dict[str, str] | None = None


McpServers = dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], McpServerConfig]
# A stored ``mcpServers`` map in a response: header names, never their values (``domain.mcp``).
PublicMcpServers = Annotated[dict[str, Any], AfterValidator(public_mcp_servers)]
MaxIterations = Annotated[int, Field(ge=1, le=10_000)]


class TokenUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int


class PrincipalSummary(BaseModel):
    id: str
    kind: Literal["user", "agent_identity", "system", "agent_key", "end_user"]
    subject_id: str | None


# -- harnesses --------------------------------------------------------------------------------


class CreateHarnessRequest(WireModel):
    id: IdText | None = None
    name: ResourceName
    display_name: ShortText | None = None
    description: LongText | None = None
    system_prompt: LongText | None = None
    parent_harness_id: IdText | None = None
    default_model_id: IdText | None = None
    tags: Tags = []
    capabilities: Annotated[list[AgentCapabilityConfig], Field(max_length=100)] = []
    initial_files: Annotated[list[InitialFile], Field(max_length=500)] = []
    network_access: NetworkAccessList | None = None
    mcp_servers: McpServers = Field(default_factory=dict, alias="mcpServers")
    parallel_tool_calls: bool | None = None
    embedder_metadata: dict[str, Annotated[str, StringConstraints(max_length=1000)]] = {}


class UpdateHarnessRequest(WireModel):
    name: ResourceName | None = None
    display_name: ShortText | None = None
    description: LongText | None = None
    system_prompt: LongText | None = None
    parent_harness_id: IdText | None = None
    default_model_id: IdText | None = None
    tags: Tags | None = None
    capabilities: Annotated[list[AgentCapabilityConfig], Field(max_length=100)] | None = None
    initial_files: Annotated[list[InitialFile], Field(max_length=500)] | None = None
    network_access: NetworkAccessList | None = None
    mcp_servers: McpServers | None = Field(default=None, alias="mcpServers")
    parallel_tool_calls: bool | None = None
    embedder_metadata: dict[str, Annotated[str, StringConstraints(max_length=1000)]] | None = None
    status: Literal["active", "archived"] | None = None

    _required = field_validator(
        "name",
        "tags",
        "capabilities",
        "initial_files",
        "mcp_servers",
        "embedder_metadata",
        "status",
        mode="before",
    )(not_null)


class HarnessExampleResponse(BaseModel):
    """A read-only harness example defined in code (``GET /v1/harness-examples``)."""

    name: str = Field(description="Unique slug, e.g. `data-analyst`.")
    display_name: str
    description: str
    tags: list[str]
    capabilities: list[CapabilityConfigOut] = Field(
        description="The capabilities the example assigns, with their config."
    )
    parent_name: str | None = Field(
        description="The harness it inherits from, by name (resolved per organization)."
    )
    dev_only: bool = Field(
        description="Meant for development and testing (its capabilities are demo tools)."
    )


class HarnessResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str
    organization_id: str
    name: str
    display_name: str | None
    description: str | None
    system_prompt: str | None
    parent_harness_id: str | None
    default_model_id: str | None
    tags: list[str]
    capabilities: list[CapabilityConfigOut]
    initial_files: list[InitialFile]
    network_access: NetworkAccessList | None
    mcp_servers: PublicMcpServers = Field(alias="mcpServers")
    parallel_tool_calls: bool | None
    embedder_metadata: dict[str, str]
    is_built_in: bool
    status: Literal["active", "archived"]
    created_at: str
    updated_at: str
    archived_at: str | None


# -- agents -----------------------------------------------------------------------------------


class CreateAgentRequest(WireModel):
    id: IdText | None = None
    name: ResourceName
    system_prompt: LongText
    display_name: ShortText | None = None
    description: LongText | None = None
    harness_id: IdText | None = None
    harness_name: ResourceName | None = None
    default_model_id: IdText | None = None
    tags: Tags = []
    capabilities: Annotated[list[AgentCapabilityConfig], Field(max_length=100)] = []
    tools: Annotated[list[ToolDefinition], Field(max_length=200)] = []
    initial_files: Annotated[list[InitialFile], Field(max_length=500)] = []
    network_access: NetworkAccessList | None = None
    mcp_servers: McpServers = Field(default_factory=dict, alias="mcpServers")
    max_iterations: MaxIterations | None = None
    parallel_tool_calls: bool | None = None


class UpdateAgentRequest(WireModel):
    name: ResourceName | None = None
    system_prompt: LongText | None = None
    display_name: ShortText | None = None
    description: LongText | None = None
    harness_id: IdText | None = None
    harness_name: ResourceName | None = None
    default_model_id: IdText | None = None
    tags: Tags | None = None
    capabilities: Annotated[list[AgentCapabilityConfig], Field(max_length=100)] | None = None
    tools: Annotated[list[ToolDefinition], Field(max_length=200)] | None = None
    initial_files: Annotated[list[InitialFile], Field(max_length=500)] | None = None
    network_access: NetworkAccessList | None = None
    mcp_servers: McpServers | None = Field(default=None, alias="mcpServers")
    max_iterations: MaxIterations | None = None
    parallel_tool_calls: bool | None = None
    status: Literal["active", "archived"] | None = None

    _required = field_validator(
        "name",
        "system_prompt",
        "tags",
        "capabilities",
        "tools",
        "initial_files",
        "mcp_servers",
        "status",
        mode="before",
    )(not_null)


class AgentResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str
    organization_id: str
    name: str
    display_name: str | None
    description: str | None
    system_prompt: str
    harness_id: str
    default_model_id: str | None
    default_version_id: str | None
    tags: list[str]
    capabilities: list[CapabilityConfigOut]
    tools: list[ToolDefinitionOut]
    initial_files: list[InitialFile]
    network_access: NetworkAccessList | None
    mcp_servers: PublicMcpServers = Field(alias="mcpServers")
    max_iterations: int | None
    parallel_tool_calls: bool | None
    status: Literal["active", "archived"]
    created_at: str
    updated_at: str
    archived_at: str | None


# -- sessions ---------------------------------------------------------------------------------


class CreateSessionRequest(WireModel):
    id: IdText | None = None
    harness_id: IdText | None = None
    harness_name: ResourceName | None = None
    agent_id: IdText | None = None
    agent_name: ResourceName | None = None
    agent_identity_id: IdText | None = None
    title: Title | None = None
    locale: Locale | None = None
    tags: Tags = []
    model_id: IdText | None = None
    capabilities: Annotated[list[AgentCapabilityConfig], Field(max_length=100)] = []
    tools: Annotated[list[ToolDefinition], Field(max_length=200)] = []
    mcp_servers: McpServers = Field(default_factory=dict, alias="mcpServers")
    system_prompt: LongText | None = None
    initial_files: Annotated[list[InitialFile], Field(max_length=500)] | None = None
    hints: JsonObject | None = None
    network_access: NetworkAccessList | None = None
    max_iterations: MaxIterations | None = None
    parallel_tool_calls: bool | None = None
    blueprint_id: Annotated[str, StringConstraints(max_length=200)] | None = None
    blueprint_config: JsonObject | None = None
    workspace_id: IdText | None = Field(
        default=None,
        description="Run in this existing workspace (same organization) so several sessions "
        "share one file area; left out: the session gets its own automatic workspace.",
    )


class UpdateSessionRequest(WireModel):
    title: Title | None = None
    agent_id: IdText | None = Field(
        default=None,
        description="Rebind to this agent (null: none); the session captures its default "
        "(else latest) version and runs that from the next turn.",
    )
    tags: Tags | None = None
    locale: Locale | None = None
    agent_identity_id: IdText | None = None


class ForkSessionRequest(WireModel):
    at_sequence: int | None = Field(
        default=None,
        ge=1,
        le=2**63 - 1,
        description="Copy the parent's events up to and including this sequence (default: all "
        "of them). It must end a whole turn, before any turn still in progress.",
    )
    title: Title | None = Field(
        default=None, description="The fork's title; default: the parent's, with ' (fork)'."
    )
    tags: Tags | None = Field(default=None, description="The fork's tags; default: the parent's.")


class SessionResponse(BaseModel):
    """Every field of the seed ``Session`` struct, null where not yet known."""

    model_config = ConfigDict(populate_by_name=True)
    id: str
    organization_id: str
    harness_id: str
    agent_id: str | None
    agent_version_id: str | None
    agent_identity_id: str | None
    owner_principal_id: str
    resolved_owner_user_id: str | None
    owner: PrincipalSummary | None
    effective_owner: PrincipalSummary | None
    title: str | None
    locale: str | None
    preview: str | None
    output_preview: str | None
    tags: list[str]
    model_id: str | None
    capabilities: list[CapabilityConfigOut]
    tools: list[ToolDefinitionOut]
    mcp_servers: PublicMcpServers = Field(alias="mcpServers")
    system_prompt: str | None
    initial_files: list[InitialFile]
    hints: dict[str, Any] | None
    network_access: NetworkAccessList | None
    max_iterations: int | None
    parallel_tool_calls: bool | None
    status: Literal["started", "active", "idle", "waitingfortoolresults", "paused"]
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    usage: TokenUsage | None
    is_pinned: bool | None
    active_schedule_count: int | None
    features: list[str]
    parent_session_id: str | None
    subagent_name: str | None
    subagent_task: str | None
    subagent_status: (
        Literal[
            "spawning",
            "running",
            "completed",
            "failed",
            "cancelled",
            "max_iterations_reached",
            "sealed",
        ]
        | None
    )
    blueprint_id: str | None
    blueprint_config: dict[str, Any] | None
    tree_usage: TokenUsage | None = Field(
        default=None,
        description=(
            "`usage` plus that of every subagent below this session (their own `usage` "
            "stays theirs): the delegation tree's total from here down."
        ),
    )
    forked_from_session_id: str | None = Field(
        default=None,
        description=(
            "The session this one was forked from (`POST /v1/sessions/{id}/fork`); null for a "
            "session that is not a fork. Fork lineage, not nesting (see `parent_session_id`)."
        ),
    )
    forked_from_sequence: int | None = Field(
        default=None,
        description="The sequence of the parent's event log the fork was taken at (its last "
        "copied event); null unless this session is a fork.",
    )
    workspace_id: str | None = Field(
        default=None,
        description="The workspace holding the session's files (`/v1/workspaces/{id}/fs`): "
        "its own automatic one, or the shared one it was created in.",
    )


class SessionStatsResponse(BaseModel):
    total: int
    started: int
    active: int
    idle: int
    waiting_for_tool_results: int
    paused: int


T = TypeVar("T")


class PageResponse(BaseModel, Generic[T]):
    data: list[T]
    total: int
    offset: int
    limit: int


class ListResponse(BaseModel, Generic[T]):
    data: list[T]
    total: int


class ErrorDetail(BaseModel):
    """One problem of a request: the field it is in and what is wrong with it."""

    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: list[ErrorDetail] | None = None  # a validation error: every problem, in order
    request_id: str | None = None  # the request's X-Request-Id, as in the access log


class ErrorResponse(BaseModel):
    error: ErrorBody


# -- messages and events ----------------------------------------------------------------------


class ContentPartIn(WireModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)
    type: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    text: str | None = None
    url: Annotated[str, StringConstraints(max_length=20 * 1024 * 1024)] | None = None
    media_type: ShortText | None = None


class MessageIn(WireModel):
    role: Literal["user"] = "user"
    content: Annotated[list[ContentPartIn], Field(min_length=1, max_length=100)]


class Controls(WireModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)
    model_id: IdText | None = None
    locale: Locale | None = None
    hints: JsonObject | None = None
    max_tokens: Annotated[int, Field(ge=1, le=10_000_000)] | None = None


class CreateMessageRequest(WireModel):
    message: MessageIn
    controls: Controls | None = None
    metadata: JsonObject | None = None
    tags: Tags | None = None


class MessageResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    role: Literal["user", "agent", "tool_result", "system"]
    content: list[dict[str, Any]]
    created_at: str
    controls: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    sequence: int | None = None
    turn_id: str | None = None


class EventContextOut(BaseModel):
    turn_id: str | None = None
    input_message_id: str | None = None
    exec_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None


class EventResponse(BaseModel):
    id: str
    type: str
    ts: str
    session_id: str
    sequence: int
    context: EventContextOut
    data: dict[str, Any]
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None


class ToolResultIn(WireModel):
    tool_call_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    result: Any = None
    error: Annotated[str, StringConstraints(max_length=100_000)] | None = None


class SubmitToolResultsRequest(WireModel):
    tool_results: Annotated[list[ToolResultIn], Field(min_length=1, max_length=200)]


class SubmitToolResultsResponse(BaseModel):
    accepted: int
    status: Literal["started", "active", "idle", "waitingfortoolresults", "paused"]


class CancelResponse(BaseModel):
    status: Literal["cancelled", "no_op"]
    turn_id: str | None = None
