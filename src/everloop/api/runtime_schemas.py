"""Wire schemas of the RuntimeAgent views: context report, previews, agent versions, blueprints."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from everloop.api.schemas import (
    AgentCapabilityConfig,
    CapabilityConfigOut,
    IdText,
    InitialFile,
    LongText,
    MaxIterations,
    McpServers,
    NetworkAccessList,
    PublicMcpServers,
    ResourceName,
    ShortText,
    TokenUsage,
    ToolDefinition,
    WireModel,
)
from everloop.domain.mcp import public_config, public_diff

ChangeKind = Literal["auto", "manual", "patch", "minor", "major", "import", "rollback", "fork"]
Summary = Annotated[str, StringConstraints(max_length=10_000)]

# -- the RuntimeAgent ------------------------------------------------------------------------


class RuntimeCapability(BaseModel):
    ref: str
    config: dict[str, Any] | None
    implicit: bool = Field(description="Added as another capability's dependency.")


class RuntimeToolOut(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]
    source: Literal["capability", "builtin", "client_side", "mcp"]
    capability_id: str | None = Field(
        default=None,
        description="The capability that gives the tool; `mcp:{server_id}` for a registered "
        "MCP server's tool, null for a scoped (`mcpServers`) one.",
    )


class RuntimeModel(BaseModel):
    id: str | None = Field(description="The model id the layers chose; null: the org default.")
    name: str | None = Field(description="The resolved model's wire name; null if unresolvable.")
    provider_id: str | None = None
    error: str | None = None


class RuntimeLimits(BaseModel):
    max_iterations: int
    parallel_tool_calls: bool


class NetworkAccessOut(BaseModel):
    allowed: list[str] | None = Field(description="null: no layer restricts (open).")
    blocked: list[str]


class ContextReportSection(BaseModel):
    """One part of the next model call's prompt with its tokens (before calibration)."""

    key: str = Field(
        description="Stable: `system_prompt`, `tools`, `mcp_tools` (when the session reaches "
        "MCP servers), `compacted_summary`, `history`. Joins contributions."
    )
    label: str
    tokens: int
    items: int = Field(
        description="Tool definitions, messages (`history`), or 0/1 (`system_prompt`, "
        "`compacted_summary`)."
    )


class ContextReportContribution(BaseModel):
    """What one source adds to a section: a tool (its name), a capability's system prompt
    addition (its id), AGENTS.md (`agent_instructions`), the compaction summary (the
    checkpoint id), a turn (its id; the newest 50 each, older ones as one `older_turns`)."""

    section_key: str
    source_id: str
    label: str
    tokens: int


class CompactionOut(BaseModel):
    """How close the session is to compacting its history (capability `compaction`)."""

    active: bool = Field(description="The session has the `compaction` capability.")
    threshold_tokens: int | None = Field(
        description="Compaction runs before a model call whose calibrated prompt is over this "
        "(the capability's `threshold` of `context_window_tokens`); null when not active or "
        "the model's window is unknown. Compare with `estimated_input_tokens`."
    )
    last_checkpoint_id: str | None = Field(
        description="The newest `context.compacted` checkpoint the next turn reads from."
    )
    last_checkpoint_at: str | None = None


class McpToolListingOut(BaseModel):
    """What the report knows of one MCP server's tools."""

    server: str = Field(description="The server's name (tool names are `mcp_{server}__{tool}`).")
    server_id: str | None = Field(description="A registered server's id; null for a scoped one.")
    status: Literal["cached", "discovered", "unreachable", "unknown"] = Field(
        description="`cached`: from the tool cache, no network call; `discovered`: listed for "
        "this report (and cached for the next turn); `unreachable`: listing failed (`detail` "
        "says why; the turn offers none of its tools); `unknown`: not cached and not listed "
        "(`discover=false`): its tools are unknown until the first turn lists them."
    )
    tools: list[str] | None = Field(
        description="The model-facing names of its tools; null when unknown or unreachable."
    )
    detail: str | None = None


class RuntimeAgentView(BaseModel):
    """The assembled RuntimeAgent a turn runs."""

    model_config = ConfigDict(populate_by_name=True)
    system_prompt: str
    capabilities: list[RuntimeCapability]
    tools: list[RuntimeToolOut]
    model: RuntimeModel
    limits: RuntimeLimits
    hints: dict[str, Any]
    network_access: NetworkAccessOut
    locale: str | None
    mcp_servers: PublicMcpServers = Field(alias="mcpServers")
    initial_files: list[str] = Field(description="Normalized paths of the merged initial files.")
    features: list[str]
    estimated_prompt_tokens: int = Field(
        description="The system prompt and tool definitions, about four characters a token; in "
        "the context report, its `system_prompt` and `tools` sections as counted there."
    )
    findings: list[dict[str, Any]] = []


class SessionContextReport(RuntimeAgentView):
    """``GET /v1/sessions/{id}/context-report``: what the session's next model call would carry,
    in tokens counted for its resolved model, by section and source. The history is the one a
    new turn would start with (the newest compaction summary, then the turns after it
    verbatim); the user message that starts that turn is not counted."""

    session_id: str
    agent_version_id: str | None
    blueprint_id: str | None
    estimated_input_tokens: int = Field(
        description="The sections' sum, calibrated by `calibration_ratio` (what compaction "
        "compares with `compaction.threshold_tokens`)."
    )
    token_count_method: str = Field(
        description="How tokens were counted: the model's byte-pair encoding (`o200k_base`, "
        "`cl100k_base`) for OpenAI models, else `estimate` (four characters a token)."
    )
    calibration_ratio: float = Field(
        description="Provider-reported over counted input tokens for this model, as observed "
        "by this process's compaction step (1.0: no report yet); scales "
        "`estimated_input_tokens`, not the sections."
    )
    context_window_tokens: int | None = Field(
        description="The model's context window from its profile; null if unknown."
    )
    cumulative_usage: TokenUsage = Field(description="The session's usage so far.")
    compaction: CompactionOut
    sections: list[ContextReportSection]
    contributions: list[ContextReportContribution]
    mcp_tool_listings: list[McpToolListingOut] = Field(
        description="Each MCP server the session can reach (registered `mcp:{id}` capabilities "
        "and the `mcpServers` map) with what is known of its tools; they are in `tools` too."
    )


class PreviewAgentRequest(WireModel):
    system_prompt: LongText
    harness_id: IdText | None = None
    harness_name: ResourceName | None = None
    default_model_id: IdText | None = None
    capabilities: Annotated[list[AgentCapabilityConfig], Field(max_length=100)] = []
    tools: Annotated[list[ToolDefinition], Field(max_length=200)] = []
    initial_files: Annotated[list[InitialFile], Field(max_length=500)] = []
    network_access: NetworkAccessList | None = None
    mcp_servers: McpServers = Field(default_factory=dict, alias="mcpServers")
    max_iterations: MaxIterations | None = None
    parallel_tool_calls: bool | None = None


class PreviewHarnessRequest(WireModel):
    system_prompt: LongText | None = None
    parent_harness_id: IdText | None = None
    default_model_id: IdText | None = None
    capabilities: Annotated[list[AgentCapabilityConfig], Field(max_length=100)] = []
    initial_files: Annotated[list[InitialFile], Field(max_length=500)] = []
    network_access: NetworkAccessList | None = None
    mcp_servers: McpServers = Field(default_factory=dict, alias="mcpServers")
    parallel_tool_calls: bool | None = None


# -- agent versions --------------------------------------------------------------------------


class AgentVersionResponse(BaseModel):
    id: str
    agent_id: str
    version_number: int
    semver_major: int
    semver_minor: int
    semver_patch: int
    version: str
    is_published: bool
    change_kind: ChangeKind
    config_hash: str
    authored_config: Annotated[dict[str, Any], AfterValidator(public_config)]
    resolved_config: Annotated[dict[str, Any], AfterValidator(public_config)]
    summary: str | None
    parent_version_id: str | None
    source_version_id: str | None
    created_by_principal_id: str | None
    created_at: str


class CreateAgentVersionRequest(WireModel):
    change_kind: ChangeKind | None = None
    summary: Summary | None = None


class SetDefaultAgentVersionRequest(WireModel):
    version_id: IdText


class RollbackAgentVersionRequest(WireModel):
    save_version: bool = False
    summary: Summary | None = None


class ForkAgentVersionRequest(WireModel):
    name: ResourceName = Field(description="The new agent's name (unique in the organization).")
    display_name: ShortText | None = Field(
        default=None, description="The new agent's display name; left out: the version's."
    )
    description: LongText | None = Field(
        default=None, description="The new agent's description; left out: the version's."
    )


class AgentVersionDiffResponse(BaseModel):
    from_version_id: str
    to_version_id: str
    authored_diff: Annotated[dict[str, Any], AfterValidator(public_diff)]
    resolved_diff: Annotated[dict[str, Any], AfterValidator(public_diff)]


# -- blueprints ------------------------------------------------------------------------------


class BlueprintResponse(BaseModel):
    id: str
    name: str
    description: str
    system_prompt: str
    capabilities: list[CapabilityConfigOut]
    tools: list[dict[str, Any]]
    model_id: str | None
    max_iterations: int | None
    config_schema: dict[str, Any]
    is_built_in: bool
