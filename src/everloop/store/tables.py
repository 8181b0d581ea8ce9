"""The app schema: one set of SQLAlchemy Core tables for SQLite and PostgreSQL.

Timestamps are RFC 3339 strings with millisecond precision in UTC (``2026-11-24T05:13:04.123Z``):
they sort lexicographically, compare the same on both dialects and go on the wire unchanged.
JSON columns are ``JSON`` on SQLite and ``JSONB`` on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from everloop.store.schema_base import Id, Json, Ts
from everloop.store.schema_base import metadata as metadata

organizations = Table(
    "organizations",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),  # UUID hex; principals point at it
    Column("name", String(200), nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("email", String(320), nullable=True),
    UniqueConstraint("email", name="uq_users_email"),
)

principals = Table(
    "principals",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    # user | agent_identity | system | agent_key | end_user
    Column("kind", String(20), nullable=False),
    Column("subject_id", String(32), nullable=True),  # the user id for kind=user
    Column("parent_principal_id", Id, nullable=True),
    Column("name", String(200), nullable=True),
    Column("role", String(20), nullable=False, default="member"),
    Column("created_at", Ts, nullable=False),
    # A member removed from the organization: the principal stays (sessions name it as their
    # owner) but no longer reaches the organization.
    Column("removed_at", Ts, nullable=True),
    UniqueConstraint("organization_id", "kind", "subject_id", name="uq_principals_org_subject"),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_hint", String(24), nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("revoked_at", Ts, nullable=True),
    Column("expires_at", Ts, nullable=True),  # never expires when NULL
)

providers = Table(
    "providers",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("driver", String(32), nullable=False),
    Column("base_url", String(2000), nullable=True),
    Column("credentials_encrypted", Text, nullable=True),  # crypto.SecretBox token
    Column("settings", Json, nullable=False),
    Column("is_built_in", Boolean, nullable=False),
    Column("status", String(16), nullable=False),  # active | disabled
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
)
Index("ix_providers_org", providers.c.organization_id)

models = Table(
    "models",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("provider_id", Id, ForeignKey("providers.id"), nullable=False),
    Column("model_id", String(200), nullable=False),  # the name sent on the wire
    Column("display_name", String(200), nullable=False),
    Column("settings", Json, nullable=False),
    Column("profile", Json, nullable=False),
    Column("is_built_in", Boolean, nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    UniqueConstraint("provider_id", "model_id", name="uq_models_provider_model"),
)
Index("ix_models_org", models.c.organization_id)

_config_columns = (
    "system_prompt",
    "default_model_id",
    "tags",
    "capabilities",
    "initial_files",
    "network_access",
    "mcp_servers",
    "parallel_tool_calls",
)

harnesses = Table(
    "harnesses",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("display_name", String(200), nullable=True),
    Column("description", Text, nullable=True),
    Column("system_prompt", Text, nullable=True),
    Column("parent_harness_id", Id, nullable=True),
    Column("default_model_id", Id, nullable=True),
    Column("tags", Json, nullable=False),
    Column("capabilities", Json, nullable=False),
    Column("initial_files", Json, nullable=False),
    Column("network_access", Json, nullable=True),
    Column("mcp_servers", Json, nullable=False),
    Column("parallel_tool_calls", Boolean, nullable=True),
    Column("embedder_metadata", Json, nullable=False),
    Column("is_built_in", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    Column("archived_at", Ts, nullable=True),
    UniqueConstraint("organization_id", "name", name="uq_harnesses_org_name"),
)

agents = Table(
    "agents",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("display_name", String(200), nullable=True),
    Column("description", Text, nullable=True),
    Column("system_prompt", Text, nullable=False),
    Column("harness_id", Id, nullable=False),
    Column("default_model_id", Id, nullable=True),
    Column("default_version_id", Id, nullable=True),
    Column("tags", Json, nullable=False),
    Column("capabilities", Json, nullable=False),
    Column("tools", Json, nullable=False),
    Column("initial_files", Json, nullable=False),
    Column("network_access", Json, nullable=True),
    Column("mcp_servers", Json, nullable=False),
    Column("max_iterations", Integer, nullable=True),
    Column("parallel_tool_calls", Boolean, nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    Column("archived_at", Ts, nullable=True),
    UniqueConstraint("organization_id", "name", name="uq_agents_org_name"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("harness_id", Id, nullable=False),
    Column("agent_id", Id, nullable=True),
    Column("agent_version_id", Id, nullable=True),
    Column("agent_identity_id", Id, nullable=True),
    Column("owner_principal_id", Id, nullable=False),
    Column("resolved_owner_user_id", String(36), nullable=True),
    Column("title", String(500), nullable=True),
    Column("locale", String(35), nullable=True),
    Column("preview", String(200), nullable=True),
    Column("output_preview", String(200), nullable=True),
    Column("tags", Json, nullable=False),
    Column("model_id", Id, nullable=True),
    Column("capabilities", Json, nullable=False),
    Column("tools", Json, nullable=False),
    Column("mcp_servers", Json, nullable=False),
    Column("system_prompt", Text, nullable=True),
    Column("initial_files", Json, nullable=False),
    Column("hints", Json, nullable=True),
    Column("network_access", Json, nullable=True),
    Column("max_iterations", Integer, nullable=True),
    Column("parallel_tool_calls", Boolean, nullable=True),
    Column("status", String(32), nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    Column("started_at", Ts, nullable=True),
    Column("finished_at", Ts, nullable=True),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("cache_read_tokens", BigInteger, nullable=False, default=0),
    Column("cache_creation_tokens", BigInteger, nullable=False, default=0),
    Column("parent_session_id", Id, nullable=True),
    Column("subagent_name", String(200), nullable=True),
    Column("subagent_task", Text, nullable=True),
    Column("subagent_status", String(32), nullable=True),
    Column("blueprint_id", String(200), nullable=True),
    Column("blueprint_config", Json, nullable=True),
    # Subagents: the root of the session's delegation tree and its depth below it (NULL and 0
    # for a top-level session), and the token usage of all its descendants (kept apart from
    # its own usage above; see services/subagents.py).
    Column("root_session_id", Id, nullable=True),
    # The capabilities a subagent was narrowed to (NULL: all it inherits).
    Column("capability_allowlist", Json, nullable=True),
    Column("subagent_depth", Integer, nullable=False, server_default="0"),
    Column("descendant_input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("descendant_output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("descendant_cache_read_tokens", BigInteger, nullable=False, server_default="0"),
    Column("descendant_cache_creation_tokens", BigInteger, nullable=False, server_default="0"),
    Column("last_sequence", BigInteger, nullable=False, default=0),
    Column("deleted_at", Ts, nullable=True),
    # Lower-cased title for case-insensitive search on both dialects.
    Column("title_search", String(500), nullable=True),
    # Fork lineage (services/session_fork.py): the session this one was forked from and the
    # sequence of its log the fork was taken at (NULL for a session that is not a fork).
    Column("forked_from_session_id", Id, nullable=True),
    Column("forked_from_sequence", BigInteger, nullable=True),
    # The workspace holding the session's files (store/workspaces.py): its automatic one, or a
    # shared one named at creation.
    Column("workspace_id", Id, nullable=True),
)
# Listings (newest first, by keyset) and counts of an organization's live sessions; see
# migrations 0012 and 0016 and store/session_rows.py.
Index(
    "ix_sessions_org_live",
    sessions.c.organization_id,
    sessions.c.created_at,
    sessions.c.id,
    sessions.c.deleted_at,
    sessions.c.parent_session_id,
    sqlite_where=sessions.c.deleted_at.is_(None),
    postgresql_where=sessions.c.deleted_at.is_(None),
)

Index("ix_sessions_parent", sessions.c.parent_session_id)
# A caller's sessions of one agent, most recently active first (the Agent Execution API's
# listing, store/channels.py; migration 0025).
Index(
    "ix_sessions_owner_activity",
    sessions.c.owner_principal_id,
    sessions.c.agent_id,
    sessions.c.updated_at,
)

session_pins = Table(
    "session_pins",
    metadata,
    Column("session_id", Id, ForeignKey("sessions.id"), primary_key=True),
    Column("principal_id", Id, ForeignKey("principals.id"), primary_key=True),
    Column("created_at", Ts, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("session_id", Id, ForeignKey("sessions.id"), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
    Column("ts", Ts, nullable=False),
    Column("turn_id", Id, nullable=True),
    Column("context", Json, nullable=False),
    Column("data", Json, nullable=False),
    Column("metadata", Json, nullable=True),
    Column("tags", Json, nullable=True),
    UniqueConstraint("session_id", "sequence", name="uq_events_session_sequence"),
)
# Also ix_events_generation_model (migration 0019): the llm.generation events of a model by ts,
# an expression index spelled per dialect (see store/models_store.py), so not declared here.

turns = Table(
    "turns",
    metadata,
    Column("id", Id, primary_key=True),
    Column("session_id", Id, ForeignKey("sessions.id"), nullable=False),
    Column("input_message_id", Id, nullable=False),
    # Sequence of the turn's input.message event: the order turns of a session run in.
    Column("input_sequence", BigInteger, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),  # queued|running|completed|failed|cancelled
    Column("created_at", Ts, nullable=False),
    Column("finished_at", Ts, nullable=True),
)
Index("ix_turns_session_status", turns.c.session_id, turns.c.status)
Index("ix_turns_session_order", turns.c.session_id, turns.c.input_sequence)

# Exactly-once record of a turn's steps: each step's database effects commit in one
# transaction with its (turn_id, step_key) row, so a step re-run after a crash finds its
# recorded result instead of writing twice.
turn_effects = Table(
    "turn_effects",
    metadata,
    Column("turn_id", Id, primary_key=True),
    Column("step_key", String(200), primary_key=True),
    Column("result", Json, nullable=True),
    Column("created_at", Ts, nullable=False),
)

# Client-side tool calls a turn waits for; results arrive through POST .../tool-results.
client_tool_calls = Table(
    "client_tool_calls",
    metadata,
    Column("call_id", String(100), primary_key=True),
    Column("turn_id", Id, primary_key=True),
    Column("session_id", Id, nullable=False),
    Column("iteration", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("arguments", Json, nullable=False),
    # pending -> answered|expired|cancelled (an approval: approved|denied|expired|cancelled)
    Column("status", String(16), nullable=False),
    # client (a client-side tool) | question (ask_user) | approval (a call awaiting approval)
    Column("kind", String(16), nullable=False, server_default="client"),
    Column("result", Json, nullable=True),
    Column("error", Text, nullable=True),
    Column("deadline", Ts, nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("answered_at", Ts, nullable=True),
)
Index(
    "ix_client_tool_calls_session_status",
    client_tool_calls.c.session_id,
    client_tool_calls.c.status,
)

# Session tasks: background work a session owns (today: its subagents, kind "subagent"). The
# child session's turn ending settles its task in the same transaction (engine/ending.py).
session_tasks = Table(
    "session_tasks",
    metadata,
    Column("id", Id, primary_key=True),
    Column("session_id", Id, ForeignKey("sessions.id"), nullable=False),
    Column("organization_id", Id, nullable=False),
    Column("root_session_id", Id, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("spec", Json, nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_detail", String(200), nullable=True),
    Column("summary", Text, nullable=True),
    Column("error", Json, nullable=True),
    Column("result", Json, nullable=True),
    Column("child_session_id", Id, nullable=True),
    Column("wake_policy", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("cancel_requested_at", Ts, nullable=True),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    Column("started_at", Ts, nullable=True),
    Column("finished_at", Ts, nullable=True),
    UniqueConstraint("session_id", "display_name", name="uq_session_tasks_name"),
)
Index("ix_session_tasks_root_state", session_tasks.c.root_session_id, session_tasks.c.state)
Index("ix_session_tasks_child", session_tasks.c.child_session_id)
Index("ix_session_tasks_org_created", session_tasks.c.organization_id, session_tasks.c.created_at)

session_task_messages = Table(
    "session_task_messages",
    metadata,
    Column("id", Id, primary_key=True),
    Column("task_id", Id, ForeignKey("session_tasks.id"), nullable=False),
    Column("direction", String(16), nullable=False),  # inbound|outbound
    Column("content", Json, nullable=False),
    Column("in_reply_to", String(100), nullable=True),
    Column("created_at", Ts, nullable=False),
)
Index("ix_session_task_messages_task", session_task_messages.c.task_id, session_task_messages.c.id)

CONFIG_COLUMNS = _config_columns

# The feature tables live beside these; every table is importable from here.
from everloop.store.tables_features import *  # noqa: E402,F403
