"""The schema's feature tables: identities, schedules, budgets, session storage and databases,
workers, files, leases, agent versions, MCP servers, user connections, agent channels and their
credentials. ``store/tables.py`` re-exports every one, so code imports all tables from there."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from everloop.store.schema_base import Id, Json, Ts, metadata

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


# Session storage (capabilities file_system, key_value, secrets, leased_resources). Rows go
# with their session: SessionService.delete purges them in the delete's transaction.
# Workspaces (services/workspaces.py): an organization's named file areas. Every session has
# one: its automatic workspace (``session_id`` set: made with the session, deleted with it), or
# a shared one named at creation (``session_id`` NULL: outlives the sessions that use it).
workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", String(1000), nullable=True),
    Column("status", String(16), nullable=False),  # active | archived
    Column("owner_principal_id", Id, nullable=False),
    Column("session_id", Id, nullable=True),  # the session it is the automatic workspace of
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    Column("archived_at", Ts, nullable=True),
    Column("deleted_at", Ts, nullable=True),
)
Index(
    "ux_workspaces_org_name",
    workspaces.c.organization_id,
    workspaces.c.name,
    unique=True,
    sqlite_where=workspaces.c.deleted_at.is_(None),
    postgresql_where=workspaces.c.deleted_at.is_(None),
)

# A workspace's file tree (store/files.py, store/workspace_files.py).
workspace_files = Table(
    "workspace_files",
    metadata,
    Column("workspace_id", Id, ForeignKey("workspaces.id"), primary_key=True),
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
    # The session whose tool last wrote the entry (NULL: written through the API).
    Column("updated_by_session_id", Id, nullable=True),
)
Index("ix_workspace_files_parent", workspace_files.c.workspace_id, workspace_files.c.parent_path)

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
    # The session the value was sealed for (its id is in the associated data), when not this
    # one: a fork copies its parent's sealed values as they are (services/session_fork.py).
    Column("sealed_for_session_id", Id, nullable=True),
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

# User connections: a user's API key for an outside provider, per organization, sealed
# (crypto.SecretBox). Sessions the user creates there get each one as a session secret
# (services/connections.py); the primary key serves that read.
user_connections = Table(
    "user_connections",
    metadata,
    Column("organization_id", Id, ForeignKey("organizations.id"), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # api_key
    Column("credentials_encrypted", Text, nullable=False),  # crypto.SecretBox token
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
)

# The Agent Execution API (services/channels.py): an agent's channels (its API endpoints), the
# agent keys that reach them, and the short-lived runtime tokens minted for one end user. Only a
# credential's SHA-256 is stored, as for personal access tokens.
agent_channels = Table(
    "agent_channels",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("agent_id", Id, ForeignKey("agents.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("allow_member_tokens", Boolean, nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("deleted_at", Ts, nullable=True),
    Index("ix_agent_channels_agent", "agent_id"),
)

agent_keys = Table(
    "agent_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("agent_id", Id, ForeignKey("agents.id"), nullable=False),
    # The key's own principal (kind agent_key): it owns the sessions made without End-User.
    Column("principal_id", Id, ForeignKey("principals.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_hint", String(24), nullable=False),
    Column("permissions", Json, nullable=False),  # e.g. ["end_user"]
    Column("created_by_principal_id", Id, nullable=True),
    Column("created_at", Ts, nullable=False),
    Column("expires_at", Ts, nullable=True),  # never expires when NULL
    Column("revoked_at", Ts, nullable=True),
    Index("ix_agent_keys_agent", "agent_id"),
)

runtime_tokens = Table(
    "runtime_tokens",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("channel_id", Id, ForeignKey("agent_channels.id"), nullable=False),
    Column("agent_key_id", Id, ForeignKey("agent_keys.id"), nullable=False),
    Column("principal_id", Id, ForeignKey("principals.id"), nullable=False),  # the end user
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Ts, nullable=False),
    Column("expires_at", Ts, nullable=False),
    Index("ix_runtime_tokens_expires", "expires_at"),
)

# Memories: named, org-scoped file stores agents read across sessions (``capabilities.memory``,
# services/memories.py). ``source`` is the public part of a git source (URL without userinfo);
# the userinfo, if any, is ``source_credentials_encrypted`` (crypto.SecretBox). A memory with a
# git source is read-only: its files come only from a sync.
memories = Table(
    "memories",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("source_type", String(16), nullable=False),  # manual | git | github
    Column("source", Json, nullable=True),
    Column("source_credentials_encrypted", Text, nullable=True),
    Column("status", String(16), nullable=False),  # active | archived
    Column("sync_status", String(16), nullable=False),  # idle | syncing | succeeded | failed
    Column("last_synced_at", Ts, nullable=True),
    Column("last_sync_error", Text, nullable=True),
    Column("synced_commit", String(64), nullable=True),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    Column("archived_at", Ts, nullable=True),
    UniqueConstraint("organization_id", "name", name="uq_memories_org_name"),
)

memory_files = Table(
    "memory_files",
    metadata,
    Column("memory_id", Id, ForeignKey("memories.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),  # normalized: "/a/b.md", never "/"
    Column("parent_path", String(1024), nullable=False),
    Column("is_directory", Boolean, nullable=False),
    Column("content", LargeBinary, nullable=True),  # NULL for directories
    Column("size_bytes", BigInteger, nullable=False),
    Column("content_hash", String(80), nullable=True),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
)
Index("ix_memory_files_parent", memory_files.c.memory_id, memory_files.c.parent_path)

# Agent health checks (services/health_checks.py): a run of an agent's test cases, each case a
# session of the agent. The case row is the run's claim on that session: it is moved from
# pending to running in the transaction that creates the session and its turn, so a case runs
# once whatever crashes. ``cases`` is the config the run was started with; the caller's columns
# let a restarted process create the remaining sessions as that caller.
health_check_runs = Table(
    "health_check_runs",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("agent_id", Id, nullable=False),
    Column("config_hash", String(80), nullable=False),
    Column("status", String(16), nullable=False),  # pending | running | completed | failed
    Column("judge_model_id", Id, nullable=True),
    Column("cases", Json, nullable=False),
    Column("summary", Json, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("principal_id", Id, nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("principal_role", String(32), nullable=False),
    Column("principal_kind", String(32), nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("completed_at", Ts, nullable=True),
    Index("ix_health_check_runs_agent", "agent_id", "created_at"),
    Index("ix_health_check_runs_status", "status"),
)

health_check_cases = Table(
    "health_check_cases",
    metadata,
    Column("run_id", Id, ForeignKey("health_check_runs.id"), primary_key=True),
    Column("case_index", Integer, primary_key=True),
    Column("status", String(16), nullable=False),  # pending | running | done
    Column("session_id", Id, nullable=True),
    Column("turn_id", Id, nullable=True),
    Column("started_at", Ts, nullable=True),
    Column("result", Json, nullable=True),
)

# The audit log (store/audit.py): one record per management change, written in the change's
# own transaction; append-only in the database (UPDATE refused; DELETE refused until a record is
# older than the retention in ``audit_retention``).
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, nullable=False),
    Column("actor_principal_id", Id, nullable=False),
    Column("actor_user_id", String(64), nullable=True),
    Column("actor_kind", String(20), nullable=False),
    Column("action", String(120), nullable=False),
    Column("route", String(200), nullable=False),
    Column("target_type", String(60), nullable=False),
    Column("target_id", String(200), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("changes", Json, nullable=True),
    Column("request_id", String(100), nullable=True),
    Column("client_ip", String(64), nullable=True),
    Column("created_at", Ts, nullable=False),
    Index("ix_audit_events_org_time", "organization_id", "created_at", "id"),
    Index("ix_audit_events_target", "organization_id", "target_id"),
)

audit_retention = Table(
    "audit_retention",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("days", Integer, nullable=False),
)
