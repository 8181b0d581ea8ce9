"""Composition root: settings -> database, store, engine, capabilities, services.

The only module that picks concrete implementations. Nothing is built at import time.
"""

from __future__ import annotations

import functools
import platform
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text

from everloop.bootstrap_admin import prepare_storage as prepare_storage  # re-exported
from everloop.bootstrap_admin import revocation_marker
from everloop.capabilities.agent_instructions import build_agent_instructions_capability
from everloop.capabilities.base import CapabilityRegistry
from everloop.capabilities.compaction import build_compaction_capability
from everloop.capabilities.current_time import build_current_time_capability
from everloop.capabilities.file_system import build_file_system_capability
from everloop.capabilities.guardrails import build_guardrails_capability
from everloop.capabilities.health_check import build_health_check_capability
from everloop.capabilities.human_input import (
    build_ask_user_capability,
    build_tool_approval_capability,
)
from everloop.capabilities.key_value import build_key_value_capability
from everloop.capabilities.leased_resources import build_leased_resources_capability
from everloop.capabilities.loop_detection import build_loop_detection_capability
from everloop.capabilities.mcp import McpConnector, McpToolset
from everloop.capabilities.memory import build_memory_capability
from everloop.capabilities.schedules import SchedulePort, build_schedules_capability
from everloop.capabilities.secrets import build_secrets_capability
from everloop.capabilities.session import build_session_capability
from everloop.capabilities.sql_database import build_sql_database_capability
from everloop.capabilities.subagents import SubagentPort, build_subagents_capability
from everloop.capabilities.test_math import build_test_math_capability
from everloop.capabilities.test_weather import build_test_weather_capability
from everloop.capabilities.todo_list import build_todo_list_capability
from everloop.capabilities.tool_call_repair import build_tool_call_repair_capability
from everloop.capabilities.tool_output_persistence import build_tool_output_persistence_capability
from everloop.capabilities.web_fetch import build_web_fetch_capability
from everloop.config import Settings
from everloop.crypto import SecretBox
from everloop.egress import EgressGuard
from everloop.engine.assembly import Assembler
from everloop.engine.local import LocalEngine
from everloop.engine.ports import TurnEngine
from everloop.engine.runner import RunnerSettings, TurnRunner
from everloop.engine.signals import Signals
from everloop.engine.workers import WorkerLifecycle
from everloop.llm.clients import SdkDrivers
from everloop.services.agent_channels import AgentChannelService
from everloop.services.agent_documents import AgentDocumentService
from everloop.services.agent_identities import AgentIdentityService
from everloop.services.agent_stats import AgentStatsService
from everloop.services.agent_versions import AgentVersionService
from everloop.services.audit import AuditService
from everloop.services.auth import AuthService
from everloop.services.auth_failures import FailedAuthLimiter
from everloop.services.blueprints import BlueprintService, load_blueprints
from everloop.services.budget_meter import BudgetMeter
from everloop.services.budgets import BudgetService
from everloop.services.channel_auth import ChannelAuthService
from everloop.services.channels import ChannelService
from everloop.services.config_resources import AgentService, HarnessService
from everloop.services.connections import ConnectionService
from everloop.services.event_feed import EventFanout
from everloop.services.executors import ExecutorService
from everloop.services.files import FileLimits, FileService
from everloop.services.health_check_runs import HealthCheckRunner, RunLimits
from everloop.services.health_checks import HealthCheckService
from everloop.services.human_input import HumanInputService
from everloop.services.idempotency import IdempotencyService
from everloop.services.mcp_servers import McpServerService
from everloop.services.memories import MemoryService, MemorySyncTimer
from everloop.services.memory_git import GitFetcher
from everloop.services.model_seeds import ANTHROPIC, OPENAI
from everloop.services.model_views import ModelViews
from everloop.services.models import ModelService, ProviderService
from everloop.services.observability import MetricsService
from everloop.services.orgs import OrgService
from everloop.services.runtime_agents import RuntimeAgentService
from everloop.services.schedule_firing import ScheduleTimer
from everloop.services.schedules import ScheduleLimits, ScheduleService
from everloop.services.session_databases import SessionDatabaseService
from everloop.services.session_fork import SessionForkService
from everloop.services.session_storage import SecretVault, SessionStorageService
from everloop.services.session_tasks import SessionTaskService
from everloop.services.sessions import SessionService
from everloop.services.subagents import SubagentLimits, SubagentService
from everloop.services.turns import TurnService
from everloop.services.version_recorder import VersionRecorder
from everloop.services.workspaces import WorkspaceService
from everloop.sql_pool import SqlWorkerPool
from everloop.sql_sandbox import Limits as SqlLimits
from everloop.store import notifications
from everloop.store.db import Database
from everloop.store.memory_files import MemoryLimits
from everloop.store.models_store import ModelStore
from everloop.store.notifications import EventListener
from everloop.store.sql import Store
from everloop.telemetry import metrics, tracing


@dataclass
class Services:
    settings: Settings
    db: Database
    signals: Signals
    fanout: EventFanout
    capabilities: CapabilityRegistry
    engine: TurnEngine
    runner: TurnRunner
    auth: AuthService
    providers: ProviderService
    models: ModelService
    model_views: ModelViews
    harnesses: HarnessService
    agents: AgentService
    sessions: SessionService
    session_fork: SessionForkService
    turns: TurnService
    human_input: HumanInputService
    subagents: SubagentService
    schedules: ScheduleService
    schedule_timer: ScheduleTimer
    session_tasks: SessionTaskService
    idempotency: IdempotencyService
    egress: EgressGuard
    session_databases: SessionDatabaseService
    files: FileService
    workspaces: WorkspaceService
    storage: SessionStorageService
    blueprints: BlueprintService
    agent_versions: AgentVersionService
    runtime_agents: RuntimeAgentService
    mcp_servers: McpServerService
    memories: MemoryService
    memory_sync: MemorySyncTimer
    agent_identities: AgentIdentityService
    budgets: BudgetService
    executors: ExecutorService
    agent_stats: AgentStatsService
    agent_documents: AgentDocumentService
    connections: ConnectionService
    agent_channels: AgentChannelService
    channel_auth: ChannelAuthService
    channels: ChannelService
    health_checks: HealthCheckService
    health_check_runner: HealthCheckRunner
    observability: MetricsService
    orgs: OrgService
    audit: AuditService
    drivers: SdkDrivers | None = None
    owns_tracing: bool = False
    workers: WorkerLifecycle | None = None
    listener: EventListener | None = None

    async def seed_org(self, org_id: str) -> None:
        """Reconcile the built-in harnesses, provider and model into an organization, and the
        providers of the API keys in the environment (``services.model_seeds``)."""
        await seed_organization(self.settings, self.harnesses, self.providers, org_id)

    async def start_engine(self, *, execute: bool = True, role: str = "serve") -> int:
        """Connect to the durable engine (and run turns here when ``execute``, heartbeating
        as an executor); start recorded turns that were never started. Returns how many."""
        if execute:
            # Only workers take turns from the queue that API-only processes feed; `serve`
            # runs the turns it accepts itself. (On PostgreSQL the queue poll of a serve
            # process measurably delayed its own turns: docs/benchmarks.md.)
            await self.engine.launch(self.runner, listen_queue=role == "worker")
            self.workers = WorkerLifecycle(
                self.db,
                self.engine,
                self.runner,
                role=role,
                heartbeat_seconds=self.settings.worker_heartbeat_seconds,
                dead_after_seconds=self.settings.worker_dead_after_seconds,
            )
            await self.workers.start()
            self.schedule_timer.start_timer()
            self.memory_sync.start()
        self.storage.start_lease_sweeper(self.settings.lease_sweep_seconds)
        if self.settings.is_postgres:
            # Events written by other processes wake this process's streams at once.
            self.listener = EventListener(self.settings.app_database_url, self._notified)
            self.listener.start()
        await self.engine.connect()
        recorded = await self.turns.enqueue_recorded()
        metrics.TURNS_RECOVERED.inc(recorded)
        if execute:
            # Like due schedules: the health-check runs a killed process left go on here.
            await self.health_check_runner.resume()
        return recorded

    def _notified(self, payload: str) -> None:
        """Events committed by some process (this one included): wake what waits for them."""
        session_id, sequence = notifications.parse(payload)
        self.signals.events_appended(session_id)
        self.fanout.notified(session_id, sequence)

    async def ready(self) -> dict[str, str]:
        """Whether the app database and the engine's system database answer."""
        checks: dict[str, str] = {}
        try:
            async with self.db.read() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        checks["engine"] = "ok" if await self.engine.ping() else "unavailable"
        return checks

    async def close(self) -> None:
        await self.fanout.close()
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        if self.workers is not None:
            await self.workers.stop()
            self.workers = None
        await self.storage.stop_lease_sweeper()
        await self.schedule_timer.stop_timer()
        await self.memory_sync.stop()
        await self.health_check_runner.stop()
        await self.engine.close()
        await self.session_databases.close()
        if self.drivers is not None:
            await self.drivers.aclose()
        await self.db.close()
        if self.owns_tracing:
            tracing.shutdown()


def build_capabilities(
    settings: Settings,
    egress: EgressGuard,
    session_databases: SessionDatabaseService,
    subagents: SubagentPort,
    schedules: SchedulePort,
) -> CapabilityRegistry:
    registry = CapabilityRegistry()
    registry.register(build_current_time_capability())
    registry.register(build_test_math_capability())
    registry.register(build_file_system_capability(file_limits(settings)))
    registry.register(build_key_value_capability())
    registry.register(build_ask_user_capability())
    registry.register(build_tool_approval_capability())
    registry.register(build_secrets_capability(SecretVault(SecretBox.from_settings(settings))))
    registry.register(build_leased_resources_capability())
    registry.register(build_test_weather_capability())
    registry.register(
        build_web_fetch_capability(
            egress,
            max_bytes=settings.web_fetch_max_bytes,
            max_chars=settings.web_fetch_max_chars,
        )
    )
    registry.register(build_sql_database_capability(session_databases))
    registry.register(build_subagents_capability(subagents))
    registry.register(build_schedules_capability(schedules))
    registry.register(build_memory_capability(memory_limits(settings)))
    registry.register(build_compaction_capability())
    registry.register(build_tool_output_persistence_capability(file_limits(settings)))
    registry.register(build_loop_detection_capability())
    registry.register(build_tool_call_repair_capability())
    registry.register(build_session_capability())
    registry.register(build_todo_list_capability())
    registry.register(build_agent_instructions_capability())
    registry.register(build_health_check_capability())
    registry.register(build_guardrails_capability())
    return registry


def file_limits(settings: Settings) -> FileLimits:
    return FileLimits(settings.file_max_bytes, settings.session_files_max_bytes)


def memory_limits(settings: Settings) -> MemoryLimits:
    """Memories take the session files' limits: per file, and per memory as per session."""
    return MemoryLimits(settings.file_max_bytes, settings.session_files_max_bytes)


def build_egress(settings: Settings) -> EgressGuard:
    return EgressGuard(
        allowed_private_networks=settings.egress_private_networks,
        timeout_seconds=settings.egress_timeout_seconds,
        max_redirects=settings.egress_max_redirects,
    )


def build_session_databases(
    db: Database, store: Store, settings: Settings
) -> SessionDatabaseService:
    limits = SqlLimits(
        timeout_seconds=settings.sql_statement_timeout_seconds,
        max_rows=settings.sql_max_rows,
        max_result_bytes=settings.sql_max_result_bytes,
        max_database_bytes=settings.sql_max_database_bytes,
    )
    return SessionDatabaseService(
        db,
        store,
        limits,
        SqlWorkerPool(settings.sql_workers),
        max_per_session=settings.sql_max_databases_per_session,
    )


def executor_id(settings: Settings) -> str:
    """A stable id for this machine's executor: host name plus a suffix kept in the data dir."""
    if settings.executor_id:
        return settings.executor_id
    path = settings.data_dir / "executor-id"
    if path.exists():
        return path.read_text().strip()
    value = f"{platform.node() or 'host'}-{secrets.token_hex(4)}"
    path.write_text(value + "\n")
    return value


async def seed_organization(
    settings: Settings, harnesses: HarnessService, providers: ProviderService, org_id: str
) -> None:
    """The built-ins of an organization (see ``Services.seed_org``)."""
    await harnesses.seed_built_ins(org_id)
    await providers.seed_built_ins(org_id)
    for seed, key in (
        (OPENAI, settings.openai_api_key),
        (ANTHROPIC, settings.anthropic_api_key),
    ):
        if key is not None and key.get_secret_value():
            await providers.seed_provider(org_id, seed, key.get_secret_value())


def build_services(settings: Settings) -> Services:
    traced = tracing.configure(
        otlp_endpoint=settings.otlp_endpoint,
        trace_file=settings.trace_file,
        content=settings.trace_content,
        service_name="everloop",
        sample_ratio=settings.trace_sample_ratio,
    )
    db = Database(
        settings.app_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
    )
    store = Store()
    signals = Signals()
    db.add_commit_listener(signals.events_committed)
    egress = build_egress(settings)
    session_databases = build_session_databases(db, store, settings)
    subagents = SubagentService(
        db,
        store,
        signals,
        SubagentLimits(
            max_depth=settings.subagent_max_depth,
            max_active=settings.subagent_max_active,
            max_total=settings.subagent_max_total,
            wait_timeout_seconds=settings.subagent_wait_timeout_seconds,
        ),
        file_limits(settings),
    )
    timer = ScheduleTimer(
        db,
        signals,
        executor=executor_id(settings),
        poll_seconds=settings.schedule_poll_seconds,
        missed_after=settings.schedule_missed_after_seconds,
    )
    schedules = ScheduleService(
        db,
        timer,
        ScheduleLimits(
            min_interval_seconds=settings.schedule_min_interval_seconds,
            max_per_session=settings.schedule_max_per_session,
            max_per_org=settings.schedule_max_per_org,
        ),
    )
    capabilities = build_capabilities(settings, egress, session_databases, subagents, schedules)
    blueprints = BlueprintService(load_blueprints(settings.blueprints_dir, capabilities))
    assembler = Assembler(capabilities, blueprints.list())
    model_store = ModelStore()
    providers = ProviderService(db, model_store, SecretBox.from_settings(settings))
    drivers = SdkDrivers(egress)
    models = ModelService(db, model_store, providers, drivers)
    mcp_servers = McpServerService(db, SecretBox.from_settings(settings))
    memories = MemoryService(
        db,
        SecretBox.from_settings(settings),
        memory_limits(settings),
        GitFetcher(egress, max_bytes=max(2 * settings.session_files_max_bytes, 1024 * 1024)),
    )
    vault = SecretVault(SecretBox.from_settings(settings))
    connections = ConnectionService(db, SecretBox.from_settings(settings), vault)
    mcp_tools = McpToolset(
        mcp_servers,
        McpConnector(
            egress,
            timeout_seconds=settings.mcp_timeout_seconds,
            call_timeout_seconds=settings.mcp_call_timeout_seconds,
        ),
        cache_seconds=settings.mcp_tools_cache_seconds,
    )
    runner = TurnRunner(
        db,
        signals,
        capabilities,
        models,
        RunnerSettings(
            default_max_iterations=settings.default_max_iterations,
            retry_attempts=settings.model_retry_attempts,
            retry_base_seconds=settings.model_retry_base_seconds,
            client_tool_timeout_seconds=settings.client_tool_timeout_seconds,
            approval_timeout_seconds=settings.approval_timeout_seconds,
            max_concurrent_model_calls=settings.max_concurrent_model_calls,
        ),
        assembler=assembler,
        remote_tools=mcp_tools,
        secrets=vault,
        budgets=BudgetMeter(db),
    )
    # DBOS where processes share the work (PostgreSQL); turns as tasks of the one process on
    # the embedded default (see engine/local.py for why).
    engine: TurnEngine
    if settings.is_postgres:
        from everloop.engine.durable import DurableEngine  # DBOS is imported only when used

        engine = DurableEngine(
            system_database_url=settings.dbos_database_url,
            application_version=settings.application_version,
            executor_id=executor_id(settings),
            queue_poll_seconds=settings.queue_poll_seconds,
            worker_concurrency=settings.worker_concurrency,
            pool_size=settings.dbos_pool_size,
        )
    else:
        engine = LocalEngine(
            executor_id=executor_id(settings), application_version=settings.application_version
        )
    auth = AuthService(
        db,
        store,
        revocations=revocation_marker(settings),
        failures=FailedAuthLimiter(settings.auth_failure_limit),
    )
    harnesses = HarnessService(db, store, models, capabilities, mcp_servers.scoped)
    recorder = VersionRecorder(assembler)
    agents = AgentService(db, store, harnesses, models, capabilities, mcp_servers.scoped, recorder)

    def features_of(refs: Sequence[str]) -> tuple[str, ...]:
        found = {f for ref in refs if ref in capabilities for f in capabilities.get(ref).features}
        return tuple(sorted(found))

    sessions = SessionService(
        db,
        store,
        harnesses,
        agents,
        features_of,
        models,
        known_capabilities=capabilities,
        assembler=assembler,
        blueprints=blueprints,
        file_limits=file_limits(settings),
        mcp_headers=mcp_servers.scoped,
        subagents=subagents,
        connections=connections,
    )
    fanout = EventFanout(db, poll_seconds=settings.sse_poll_seconds)
    subagents.connect(assembler=assembler, blueprints=blueprints, queue=engine)
    timer.connect(engine)
    turns = TurnService(db, sessions, engine, signals, fanout, subagents)
    health_check_runner = HealthCheckRunner(
        db,
        sessions,
        models,
        signals,
        RunLimits(
            max_parallel=settings.health_check_max_parallel,
            case_timeout_seconds=settings.health_check_case_timeout_seconds,
            poll_seconds=settings.health_check_poll_seconds,
        ),
    )
    health_check_runner.connect(engine, turns)
    return Services(
        settings=settings,
        db=db,
        signals=signals,
        fanout=fanout,
        capabilities=capabilities,
        engine=engine,
        runner=runner,
        auth=auth,
        providers=providers,
        models=models,
        model_views=ModelViews(db, model_store, models),
        harnesses=harnesses,
        agents=agents,
        sessions=sessions,
        session_fork=SessionForkService(db, store, sessions),
        turns=turns,
        human_input=HumanInputService(db, signals),
        subagents=subagents,
        schedules=schedules,
        schedule_timer=timer,
        session_tasks=SessionTaskService(db, sessions, subagents),
        idempotency=IdempotencyService(db),
        egress=egress,
        session_databases=session_databases,
        files=FileService(db, sessions, file_limits(settings)),
        workspaces=WorkspaceService(db, file_limits(settings)),
        storage=SessionStorageService(db, sessions, vault),
        drivers=drivers,
        blueprints=blueprints,
        agent_versions=AgentVersionService(db, store, agents, recorder),
        runtime_agents=RuntimeAgentService(
            db, assembler, harnesses, sessions, models, mcp_tools, tokens=runner.tokens
        ),
        mcp_servers=mcp_servers,
        memories=memories,
        memory_sync=MemorySyncTimer(memories, poll_seconds=settings.memory_sync_poll_seconds),
        agent_identities=AgentIdentityService(db),
        budgets=BudgetService(db, engine, signals),
        executors=ExecutorService(db),
        agent_stats=AgentStatsService(db, agents),
        agent_documents=AgentDocumentService(db, agents, harnesses),
        connections=connections,
        agent_channels=AgentChannelService(
            db, store, tokens=auth.tokens, revocations=auth.revocations
        ),
        channel_auth=ChannelAuthService(
            db, auth, runtime_ttl_seconds=settings.runtime_token_ttl_seconds
        ),
        channels=ChannelService(sessions, agents),
        health_checks=HealthCheckService(db, agents, models, assembler, health_check_runner),
        health_check_runner=health_check_runner,
        observability=MetricsService(
            db,
            auth,
            lambda: fanout.counters()["subscribers"],
            settings.metrics_networks,
        ),
        owns_tracing=traced,
        audit=AuditService(db, retention_days=settings.audit_retention_days),
        orgs=OrgService(
            db,
            store,
            auth,
            seed=functools.partial(seed_organization, settings, harnesses, providers),
        ),
    )
