"""The app schema: one set of SQLAlchemy Core tables for SQLite and PostgreSQL.

Timestamps are RFC 3339 strings with millisecond precision in UTC (``2026-11-24T05:13:04.123Z``):
they sort lexicographically, compare the same on both dialects and go on the wire unchanged.
JSON columns are ``JSON`` on SQLite and ``JSONB`` on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Ts = String(32)
Id = String(48)

organizations = Table(
    "organizations",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Ts, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),  # UUID hex; principals point at it
    Column("name", String(200), nullable=False),
    Column("created_at", Ts, nullable=False),
)

principals = Table(
    "principals",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # user | agent_identity | system
    Column("subject_id", String(32), nullable=True),  # the user id for kind=user
    Column("parent_principal_id", Id, nullable=True),
    Column("name", String(200), nullable=True),
    Column("role", String(20), nullable=False, default="member"),
    Column("created_at", Ts, nullable=False),
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
    Column("status", String(16), nullable=False),  # pending|answered|expired|cancelled
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

# Agent identities: resident principals sessions run as when nobody is watching (schedules,
# subagents). Each has its own principal (kind agent_identity) under its owner's.
agent_identities = Table(
    "agent_identities",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("principal_id", Id, ForeignKey("principals.id"), nullable=False),
    Column("owner_principal_id", Id, nullable=False),
    Column("name", String(200), nullable=False),
    Column("display_name", String(200), nullable=True),
    Column("description", Text, nullable=True),
    Column("locale", String(35), nullable=True),
    Column("timezone", String(64), nullable=True),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    UniqueConstraint("organization_id", "name", name="uq_agent_identities_name"),
)

# Session schedules: messages posted into a session on a clock. The timer claims due rows
# (``next_trigger_at`` past, enabled) and fires each in one transaction with its execution and
# its turn (services/schedules.py).
session_schedules = Table(
    "session_schedules",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("session_id", Id, ForeignKey("sessions.id"), nullable=False),
    Column("owner_principal_id", Id, nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("cron_expression", String(200), nullable=True),  # NULL: one-shot at scheduled_at
    Column("scheduled_at", Ts, nullable=True),
    Column("timezone", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("catch_up_missed", Boolean, nullable=False),
    Column("max_concurrent", Integer, nullable=True),
    Column("next_trigger_at", Ts, nullable=True),
    Column("last_triggered_at", Ts, nullable=True),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_at", Ts, nullable=True),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    UniqueConstraint("session_id", "name", name="uq_session_schedules_name"),
)
# The timer's one query: enabled schedules by due time.
Index(
    "ix_session_schedules_due",
    session_schedules.c.next_trigger_at,
    sqlite_where=text("enabled"),
    postgresql_where=text("enabled"),
)
Index("ix_session_schedules_org", session_schedules.c.organization_id, session_schedules.c.id)

# One row per fire (or skipped fire) of a schedule. Its outcome is its turn's (joined on read);
# ``status`` is stored only for fires that made no turn (skipped, failed to fire). A due time
# fires once: the partial unique index refuses a second execution of it.
schedule_executions = Table(
    "schedule_executions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("schedule_id", Id, ForeignKey("session_schedules.id"), nullable=False),
    Column("organization_id", Id, nullable=False),
    Column("session_id", Id, nullable=False),
    Column("trigger", String(16), nullable=False),  # schedule|catch_up|manual
    Column("scheduled_at", Ts, nullable=False),
    Column("started_at", Ts, nullable=False),
    Column("status", String(16), nullable=False),  # fired|skipped|failed
    Column("turn_id", Id, nullable=True),
    Column("error", Text, nullable=True),
    Column("claimed_by", String(100), nullable=True),
    Column("created_at", Ts, nullable=False),
)
Index(
    "uq_schedule_executions_due",
    schedule_executions.c.schedule_id,
    schedule_executions.c.scheduled_at,
    unique=True,
    sqlite_where=text("trigger <> 'manual'"),
    postgresql_where=text("trigger <> 'manual'"),
)
Index(
    "ix_schedule_executions_schedule",
    schedule_executions.c.schedule_id,
    schedule_executions.c.started_at,
)

# Budgets: spending caps of a subject (session, agent, user, org) in a currency, and their
# append-only ledger (positive: a debit; negative: a credit, a top-up or a period's reset).
# ``balance`` is the ledger's sum from ``limit`` in the current period, kept on the row.
budgets = Table(
    "budgets",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("subject_type", String(16), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("limit", Float, nullable=False),
    Column("soft_limit", Float, nullable=True),
    Column("period", Json, nullable=True),
    Column("period_started_at", Ts, nullable=True),
    Column("balance", Float, nullable=False),
    Column("status", String(16), nullable=False),  # active|paused|exhausted|disabled
    Column("metadata", Json, nullable=True),
    # The period start in which budget.warning was written (once per period).
    Column("warned_period", Ts, nullable=True),
    # The soft limit a resume cleared: the budget pauses again this period only above a higher one.
    Column("resumed_soft_limit", Float, nullable=True),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
)
Index("ix_budgets_subject", budgets.c.organization_id, budgets.c.subject_type, budgets.c.subject_id)

budget_ledger = Table(
    "budget_ledger",
    metadata,
    Column("id", Id, primary_key=True),
    Column("budget_id", Id, ForeignKey("budgets.id"), nullable=False),
    Column("organization_id", Id, nullable=False),
    Column("amount", Float, nullable=False),
    Column("meter_source", String(32), nullable=False),  # llm_tokens|top_up|period_reset
    Column("ref_type", String(32), nullable=True),
    Column("ref_id", String(100), nullable=True),
    Column("session_id", Id, nullable=True),
    Column("description", Text, nullable=True),
    Column("created_at", Ts, nullable=False),
)
Index("ix_budget_ledger_budget", budget_ledger.c.budget_id, budget_ledger.c.created_at)
# A generation is charged to a budget once.
Index(
    "uq_budget_ledger_ref",
    budget_ledger.c.budget_id,
    budget_ledger.c.ref_type,
    budget_ledger.c.ref_id,
    unique=True,
    sqlite_where=text("ref_id IS NOT NULL"),
    postgresql_where=text("ref_id IS NOT NULL"),
)

# Idempotency-Key records: the first response to a key is replayed for 24 hours.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("organization_id", Id, primary_key=True),
    Column("principal_id", Id, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # in_progress|done
    Column("response_status", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("created_at", Ts, nullable=False),
)

# The SQLite databases of the sql_database capability, each held whole as bytes (serialized by
# sqlite3) so that any worker can open it; see everloop.sql_sandbox.
session_databases = Table(
    "session_databases",
    metadata,
    Column("session_id", Id, ForeignKey("sessions.id"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("content", LargeBinary, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
)

# Executors (serve / worker processes) and their heartbeats; the reaper recovers the turns of
# executors that went silent.
workers = Table(
    "workers",
    metadata,
    Column("executor_id", String(200), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("application_version", String(100), nullable=False),
    Column("started_at", Ts, nullable=False),
    Column("heartbeat_at", Ts, nullable=False),
    Column("running_turns", Integer, nullable=False),
    Column("stopped_at", Ts, nullable=True),
    Column("recovered_at", Ts, nullable=True),
    Column("recovered_by", String(200), nullable=True),
)

CONFIG_COLUMNS = _config_columns

# Session storage (capabilities file_system, key_value, secrets, leased_resources). Rows go
# with their session: SessionService.delete purges them in the delete's transaction.
session_files = Table(
    "session_files",
    metadata,
    Column("session_id", Id, ForeignKey("sessions.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),  # normalized: "/a/b.txt", never "/"
    Column("parent_path", String(1024), nullable=False),  # "/" for top-level entries
    Column("id", String(36), nullable=False),  # UUID text, the wire "id"
    Column("is_directory", Boolean, nullable=False),
    Column("is_readonly", Boolean, nullable=False),
    Column("content", LargeBinary, nullable=True),  # NULL for directories
    Column("size_bytes", BigInteger, nullable=False),
    Column("content_hash", String(80), nullable=True),  # "sha256:<hex>"
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
)
Index("ix_session_files_parent", session_files.c.session_id, session_files.c.parent_path)

session_kv = Table(
    "session_kv",
    metadata,
    Column("session_id", Id, ForeignKey("sessions.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
)

session_secrets = Table(
    "session_secrets",
    metadata,
    Column("session_id", Id, ForeignKey("sessions.id"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("value_encrypted", Text, nullable=False),  # crypto.SecretBox token
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
)

session_leases = Table(
    "session_leases",
    metadata,
    Column("session_id", Id, ForeignKey("sessions.id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("metadata", Json, nullable=True),
    Column("expires_at", Ts, nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
)
Index("ix_session_leases_expires", session_leases.c.expires_at)

# Immutable snapshots of an agent's configuration; sessions run the one they captured.
agent_versions = Table(
    "agent_versions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("agent_id", Id, ForeignKey("agents.id"), nullable=False),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("version_number", Integer, nullable=False),
    Column("semver_major", Integer, nullable=False),
    Column("semver_minor", Integer, nullable=False),
    Column("semver_patch", Integer, nullable=False),
    Column("version", String(50), nullable=False),
    Column("config_hash", String(80), nullable=False),
    Column("authored_config", Json, nullable=False),
    Column("resolved_config", Json, nullable=False),
    Column("change_kind", String(16), nullable=False),
    Column("summary", Text, nullable=True),
    Column("parent_version_id", Id, nullable=True),
    Column("source_version_id", Id, nullable=True),
    Column("is_published", Boolean, nullable=False),
    Column("created_by_principal_id", Id, nullable=True),
    Column("created_at", Ts, nullable=False),
    UniqueConstraint("agent_id", "version_number", name="uq_agent_versions_agent_number"),
)

mcp_servers = Table(
    "mcp_servers",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=True),
    Column("url", String(2000), nullable=False),
    Column("transport_type", String(16), nullable=False),  # http (streamable HTTP)
    Column("headers_encrypted", Text, nullable=True),  # crypto.SecretBox token of a JSON object
    Column("header_names", Json, nullable=False),  # the names only, for responses
    Column("status", String(16), nullable=False),  # active | disabled
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    UniqueConstraint("organization_id", "name", name="uq_mcp_servers_org_name"),
)
