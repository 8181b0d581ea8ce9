"""Settings: the only module that reads the environment.

Every setting has the prefix ``EVERLOOP_`` (``EVERLOOP_DATA_DIR``, ``EVERLOOP_DATABASE_URL``, ...).
``Settings`` is loaded once at start and passed down; nothing else looks at ``os.environ``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_RATE_LIMIT = re.compile(
    r"\s*[1-9]\d*\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day|month|year)s?\s*", re.IGNORECASE
)


class Settings(BaseSettings):
    """Runtime configuration of one everloop process."""

    model_config = SettingsConfigDict(env_prefix="EVERLOOP_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".everloop"),
        description="Directory for the embedded SQLite databases and the admin token.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "App database URL. Default: SQLite file `everloop.db` in the data dir. "
            "PostgreSQL: `postgresql+psycopg://user@host/db`."
        ),
    )
    system_database_url: str | None = Field(
        default=None,
        description=(
            "DBOS system database URL. Default: SQLite file `dbos.sqlite` in the data dir, "
            "or the app database (schema `dbos`) when that is PostgreSQL."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    port: int = Field(default=9000, description="Port the HTTP API listens on.")
    audit_retention_days: int = Field(
        default=90,
        ge=1,
        description=(
            "Days the audit log keeps a record; older ones are pruned at start, and the "
            "database refuses to delete a younger one."
        ),
    )
    any_user_creates_orgs: bool = Field(
        default=False,
        description=(
            "Let any user create organizations (`POST /api/v1/orgs`, becoming their owner); by "
            "default only the instance's operator (an admin of the default organization) may."
        ),
    )
    auth_failure_limit: str = Field(
        default="20/minute",
        description=(
            "Failed authentications one client address may make per moving window (`N/second`, "
            "`N/minute`, `N per hour`, ...), counted in each process; beyond it requests from "
            "that address get 429 with Retry-After, without a token lookup (a token that "
            "authenticated in that process within the last hour still works)."
        ),
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description=(
            "Comma-separated addresses or networks of trusted reverse proxies (uvicorn's "
            "`--forwarded-allow-ips`, `*` for any): their X-Forwarded-For gives the client "
            "address. Default: trust none; the client address is the connection's peer."
        ),
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, description="Largest accepted request body, in bytes."
    )
    max_json_depth: int = Field(
        default=32,
        ge=1,
        le=100,
        description="Deepest nesting of objects and arrays in a free-form request value (a "
        "message's metadata, a session's hints, a capability's config, a provider's settings); "
        "deeper is a 422. Any other request value may nest 100 levels: the JSON encoders of "
        "the store and the API refuse values past about 250.",
    )
    max_json_bytes: int = Field(
        default=256 * 1024,
        ge=1,
        description="Largest free-form request value (as for max_json_depth), in bytes as "
        "compact JSON; larger is a 422.",
    )
    sse_heartbeat_seconds: float = Field(
        default=30.0, description="Interval of SSE keep-alive comments."
    )
    sse_cycle_seconds: float = Field(
        default=300.0, description="An SSE stream is closed with `disconnecting` after this long."
    )
    runtime_token_ttl_seconds: int = Field(
        default=900,
        ge=1,
        le=86_400,
        description=(
            "Lifetime of a runtime token minted by `POST /api/v1/channels/{id}/runtime-auth` "
            "(one end user of one agent channel); refused with 401 once past it."
        ),
    )
    sse_poll_seconds: float = Field(
        default=0.5, description="Fallback poll interval of an SSE stream for new events."
    )
    debug_counters: bool = Field(
        default=False,
        description="Serve `GET /api/v1/debug/counters` (hidden): reads and deliveries of the "
        "SSE streams of this process.",
    )
    default_max_iterations: int = Field(
        default=100, description="Model calls per turn when no layer sets max_iterations."
    )
    model_retry_attempts: int = Field(
        default=4, description="Attempts of a model call that fails transiently (429/5xx)."
    )
    model_retry_base_seconds: float = Field(
        default=0.5, description="First back-off interval between model call attempts."
    )
    executor_id: str | None = Field(
        default=None, description="Stable id of this process's DBOS executor."
    )
    application_version: str = Field(
        default="everloop-1",
        description="Pinned DBOS application version; workflows only resume on a match.",
    )
    db_pool_size: int = Field(
        default=20,
        ge=1,
        le=1000,
        description=(
            "App database connections each process keeps open (PostgreSQL; plus "
            "db_max_overflow under load). Each request or turn step holds at most one, for "
            "one transaction, never across a model call, a tool call or a wait; see "
            "docs/operations.md for sizing."
        ),
    )
    db_max_overflow: int = Field(
        default=0,
        ge=0,
        le=1000,
        description=(
            "Extra app database connections under load, closed again when returned (opening "
            "one costs more than waiting for a pooled one: keep it small)."
        ),
    )
    db_pool_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "How long a transaction waits for a free app database connection before failing; "
            "waits queue in order, so a busy pool delays work instead of failing it."
        ),
    )
    dbos_pool_size: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="DBOS system database connections per process (PostgreSQL).",
    )
    queue_poll_seconds: float = Field(
        default=0.1,
        description="How often a worker polls the turn queue fed by API-only processes.",
    )
    egress_timeout_seconds: float = Field(
        default=20.0, description="Timeout of one outbound HTTP request through the egress guard."
    )
    egress_max_redirects: int = Field(
        default=5, description="Redirects the egress guard follows (each one re-checked)."
    )
    egress_allowed_private_networks: str = Field(
        default="",
        description=(
            "Comma-separated CIDRs (`10.0.0.0/8,fd00::/8`) of internal networks that outbound "
            "requests made for tenants (web_fetch, MCP servers, provider base URLs) may reach, "
            "and then only to a host the session's network access names. Default: none; "
            "loopback, private, link-local (cloud metadata), CGNAT, multicast and reserved "
            "addresses, IPv4 and IPv6, are refused whatever a tenant configures."
        ),
    )
    mcp_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Connecting to an MCP server and listing its tools."
    )
    mcp_call_timeout_seconds: float = Field(
        default=300.0, gt=0, description="How long one MCP tool call may run."
    )
    mcp_tools_cache_seconds: float = Field(
        default=24 * 3600.0,
        ge=0,
        description="How long an MCP server's tool listing is reused (a changed server config "
        "is listed again at once).",
    )
    web_fetch_max_bytes: int = Field(
        default=2 * 1024 * 1024, description="Bytes of a response `web_fetch` downloads at most."
    )
    web_fetch_max_chars: int = Field(
        default=50_000, description="Characters of text `web_fetch` returns at most."
    )
    sql_statement_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Time limit of one `sql_query`/`sql_execute` call: past it the worker "
        "process running the statement is killed.",
    )
    sql_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Worker processes per everloop process that run session SQL (kept warm; "
        "at most this many statements run at once, the others wait for a free worker).",
    )
    sql_max_rows: int = Field(default=1000, description="Rows a session SQL query returns at most.")
    sql_max_result_bytes: int = Field(
        default=1024 * 1024, description="Size of a session SQL query result at most, in bytes."
    )
    sql_max_database_bytes: int = Field(
        default=10 * 1024 * 1024, description="Size of one session SQL database at most, in bytes."
    )
    sql_max_databases_per_session: int = Field(
        default=10, description="Session SQL databases one session may have."
    )
    client_tool_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a turn waits for a client-side tool result (a tool may set its own).",
    )
    approval_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "How long a tool call held back by `tool_approval` waits for a decision before it "
            "is denied (the capability's config may set its own)."
        ),
    )
    subagent_wait_timeout_seconds: float = Field(
        default=1800.0,
        gt=0,
        description=(
            "How long a turn waits for a subagent before its tool call returns a timeout error "
            "(the subagent keeps running)."
        ),
    )
    subagent_max_depth: int = Field(
        default=2,
        ge=0,
        description="How deep subagents may nest below the root session (0: no subagents).",
    )
    subagent_max_active: int = Field(
        default=16, ge=1, description="Subagents working at once in one delegation tree."
    )
    subagent_max_total: int = Field(
        default=200, ge=1, description="Subagents one delegation tree may create in all."
    )
    schedule_min_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="The shortest interval a recurring schedule may fire at.",
    )
    schedule_max_per_session: int = Field(
        default=5, ge=0, description="Enabled schedules one session may have."
    )
    schedule_max_per_org: int = Field(
        default=100, ge=0, description="Enabled schedules one organization may have."
    )
    schedule_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description=(
            "How often the schedule timer looks for schedules made by other processes; between "
            "looks it sleeps until the next due time it knows of."
        ),
    )
    health_check_max_parallel: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Cases of one health-check run that run (as sessions) at the same time.",
    )
    health_check_case_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description=(
            "A health-check case whose turn has not ended this long after it started errors "
            "(timed out) and its turn is cancelled."
        ),
    )
    health_check_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description=(
            "How often a health-check run re-reads the turns it waits for (a turn of this "
            "process wakes it at once)."
        ),
    )
    schedule_missed_after_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "A fire later than this (everything was down) is missed: it runs once as a catch-up, "
            "or is skipped when its schedule says catch_up_missed=false."
        ),
    )
    worker_heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="How often an executing process records its heartbeat."
    )
    worker_dead_after_seconds: float = Field(
        default=60.0,
        gt=0,
        description="An executor silent this long is dead: its pending turns move to live ones.",
    )
    worker_concurrency: int = Field(
        default=64, ge=1, description="Turns one worker takes from the queue at a time."
    )
    max_concurrent_model_calls: int = Field(
        default=64, ge=1, description="Model calls one process makes at the same time."
    )
    log_level: str = Field(default="INFO", description="Log level of the server.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`text` (readable lines) or `json` (one object a line): `--log-format`.",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description=(
            "`OTEL_EXPORTER_OTLP_ENDPOINT` (no prefix): when set, traces of turns and requests "
            "are exported there with OTLP over HTTP (the other standard `OTEL_EXPORTER_OTLP_*` "
            "variables apply); unset, nothing is traced."
        ),
    )
    trace_file: Path | None = Field(
        default=None,
        description="Also write every ended span as a JSON line to this file (debugging).",
    )
    trace_sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of traces kept (by trace id: a turn is traced whole or not at all).",
    )
    trace_content: bool = Field(
        default=False,
        description="Put prompts and completions (as stored: secrets redacted) into the spans.",
    )
    metrics_allow_ips: str = Field(
        default="",
        description=(
            "Comma-separated CIDRs of clients that may read `GET /metrics` without a token "
            "(a Prometheus server's); anyone else needs an operator's token."
        ),
    )
    file_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=0, description="Largest file in a workspace."
    )
    session_files_max_bytes: int = Field(
        default=500 * 1024 * 1024,
        ge=0,
        description="Quota of one workspace (a session's own or a shared one): its files' total.",
    )
    memory_sync_poll_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description=(
            "How often a serving process looks for memories whose git source is due for a "
            "sync (sync_interval_secs); 0 turns interval syncs off."
        ),
    )
    blueprints_dir: Path | None = Field(
        default=None,
        description="Directory of blueprint YAML files loaded at start, beside the built-in ones.",
    )
    lease_sweep_seconds: float = Field(
        default=60.0, gt=0, description="How often expired session leases are released."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Base64 of 32 bytes: the AES-256-GCM key that encrypts provider API keys at rest. "
            "Default: generated once into `secret.key` in the data dir (mode 0600). Required "
            "with PostgreSQL when there is no data dir and a key must be stored."
        ),
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="OPENAI_API_KEY",
        description=(
            "`OPENAI_API_KEY` (no prefix): when set, an `openai` provider with current models "
            "is seeded into the org at start, its key stored encrypted."
        ),
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="ANTHROPIC_API_KEY",
        description=(
            "`ANTHROPIC_API_KEY` (no prefix): when set, an `anthropic` provider with current "
            "models is seeded into the org at start, its key stored encrypted."
        ),
    )

    @field_validator("auth_failure_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        # The `limits` grammar, checked here without importing it (it is slow to import).
        if not _RATE_LIMIT.fullmatch(value):
            raise ValueError("EVERLOOP_AUTH_FAILURE_LIMIT must look like '20/minute'")
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                raw = base64.b64decode(value.get_secret_value(), validate=True)
            except binascii.Error as exc:
                raise ValueError("EVERLOOP_SECRET_KEY must be base64") from exc
            if len(raw) != 32:
                raise ValueError("EVERLOOP_SECRET_KEY must decode to 32 bytes")
        return value

    @field_validator("egress_allowed_private_networks")
    @classmethod
    def _check_private_networks(cls, value: str) -> str:
        _networks(value, "EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS")
        return value

    @field_validator("metrics_allow_ips")
    @classmethod
    def _check_metrics_allow_ips(cls, value: str) -> str:
        _networks(value, "EVERLOOP_METRICS_ALLOW_IPS")
        return value

    @property
    def metrics_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``metrics_allow_ips`` parsed."""
        return _networks(self.metrics_allow_ips, "EVERLOOP_METRICS_ALLOW_IPS")

    @property
    def egress_private_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``egress_allowed_private_networks`` parsed."""
        return _networks(
            self.egress_allowed_private_networks, "EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS"
        )

    @property
    def app_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'everloop.db').resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.app_database_url.startswith("postgresql")

    @property
    def dbos_database_url(self) -> str:
        if self.system_database_url:
            return self.system_database_url
        if self.is_postgres:
            return self.app_database_url.replace("+psycopg", "").replace("+asyncpg", "")
        return f"sqlite:///{(self.data_dir / 'dbos.sqlite').resolve()}"


def _networks(text: str, setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated CIDRs (a bare address is a one-address network); ``ValueError`` naming
    the first entry that is not one (host bits set included: ``10.0.0.1/8`` is a typo)."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError as exc:
                raise ValueError(f"{setting}: '{entry}' is not a network ({exc})") from None
    return tuple(networks)
