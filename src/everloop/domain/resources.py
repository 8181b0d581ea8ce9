"""Configuration resources and sessions as plain frozen values.

JSON-valued fields (capabilities, tools, initial files, ...) are kept in their wire form: lists
and dicts of JSON values. The rules that give them meaning live in the services that validate
them and, later, in the RuntimeAgent assembly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JsonObject = dict[str, Any]
JsonList = list[Any]


class ResourceStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class SessionStatus(StrEnum):
    STARTED = "started"
    ACTIVE = "active"
    IDLE = "idle"
    WAITING_FOR_TOOL_RESULTS = "waitingfortoolresults"
    PAUSED = "paused"


class PrincipalKind(StrEnum):
    USER = "user"
    AGENT_IDENTITY = "agent_identity"
    SYSTEM = "system"
    AGENT_KEY = "agent_key"  # an agent key calling its agent's channel without End-User
    END_USER = "end_user"  # an application's end user, per (agent, external id)


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    organization_id: str
    kind: PrincipalKind
    subject_id: str | None
    role: str


@dataclass(frozen=True, slots=True)
class Harness:
    id: str
    organization_id: str
    name: str
    display_name: str | None
    description: str | None
    system_prompt: str | None
    parent_harness_id: str | None
    default_model_id: str | None
    tags: JsonList
    capabilities: JsonList
    initial_files: JsonList
    network_access: JsonObject | None
    mcp_servers: JsonObject
    parallel_tool_calls: bool | None
    embedder_metadata: JsonObject
    is_built_in: bool
    status: ResourceStatus
    created_at: str
    updated_at: str
    archived_at: str | None


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    organization_id: str
    name: str
    display_name: str | None
    description: str | None
    system_prompt: str
    harness_id: str
    default_model_id: str | None
    default_version_id: str | None
    tags: JsonList
    capabilities: JsonList
    tools: JsonList
    initial_files: JsonList
    network_access: JsonObject | None
    mcp_servers: JsonObject
    max_iterations: int | None
    parallel_tool_calls: bool | None
    status: ResourceStatus
    created_at: str
    updated_at: str
    archived_at: str | None


@dataclass(frozen=True, slots=True)
class TokenTotals:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    organization_id: str
    harness_id: str
    agent_id: str | None
    agent_version_id: str | None
    agent_identity_id: str | None
    owner_principal_id: str
    resolved_owner_user_id: str | None
    title: str | None
    locale: str | None
    preview: str | None
    output_preview: str | None
    tags: JsonList
    model_id: str | None
    capabilities: JsonList
    tools: JsonList
    mcp_servers: JsonObject
    system_prompt: str | None
    initial_files: JsonList
    hints: JsonObject | None
    network_access: JsonObject | None
    max_iterations: int | None
    parallel_tool_calls: bool | None
    status: SessionStatus
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    usage: TokenTotals
    parent_session_id: str | None
    subagent_name: str | None
    subagent_task: str | None
    subagent_status: str | None
    blueprint_id: str | None
    blueprint_config: JsonObject | None
    # ``usage`` plus the usage of every descendant (subagents, theirs, ...): the tree's total.
    tree_usage: TokenTotals = field(default_factory=TokenTotals)
    # Fork lineage: the session this one was forked from, and the sequence it was taken at.
    forked_from_session_id: str | None = None
    forked_from_sequence: int | None = None
    # The workspace holding its files: its automatic one, or a shared one it was created in.
    workspace_id: str | None = None
    # Read-time, caller-relative facts (not stored on the session row).
    is_pinned: bool | None = None
    owner_kind: PrincipalKind | None = None
    owner_subject_id: str | None = None
    active_schedule_count: int = 0
    features: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """Which sessions a listing shows (all given conditions hold)."""

    agent_id: str | None = None
    search: str | None = None
    tags: Sequence[str] = ()
    status: str | None = None
    pinned: bool | None = None
    # Subagents: only the children of this session; by default only top-level sessions.
    parent_session_id: str | None = None
    include_subagents: bool = False
    # Only the sessions whose effective owner is this user (a member sees only their own).
    owner_user_id: str | None = None


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A personal access token as it may be shown again: never the token, only its hint.
    It authenticates until ``expires_at`` (never when None) unless ``revoked_at`` is set."""

    id: str
    user_id: str
    name: str
    hint: str
    created_at: str
    expires_at: str | None = None
    revoked_at: str | None = None


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """One of a session's SQL databases (``sql_database`` capability), without its bytes."""

    session_id: str
    name: str
    size_bytes: int
    created_at: str
    updated_at: str
