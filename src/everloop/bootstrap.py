"""Composition root: settings -> database, store, engine, capabilities, services.

The only module that picks concrete implementations. Nothing is built at import time.
"""

from __future__ import annotations

import platform
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from everloop.capabilities.base import CapabilityRegistry
from everloop.capabilities.current_time import build_current_time_capability
from everloop.capabilities.test_math import build_test_math_capability
from everloop.config import Settings
from everloop.crypto import SecretBox
from everloop.engine.durable import DurableEngine
from everloop.engine.runner import RunnerSettings, TurnRunner
from everloop.engine.signals import Signals
from everloop.services.auth import AuthService
from everloop.services.config_resources import AgentService, HarnessService
from everloop.services.models import ModelService, ProviderService
from everloop.services.sessions import SessionService
from everloop.services.turns import TurnService
from everloop.store import migrate
from everloop.store.db import Database
from everloop.store.models_store import ModelStore
from everloop.store.sql import Store


@dataclass
class Services:
    settings: Settings
    db: Database
    signals: Signals
    capabilities: CapabilityRegistry
    engine: DurableEngine
    runner: TurnRunner
    auth: AuthService
    providers: ProviderService
    models: ModelService
    harnesses: HarnessService
    agents: AgentService
    sessions: SessionService
    turns: TurnService

    async def seed_org(self, org_id: str) -> None:
        """Reconcile the built-in harnesses, provider and model into an organization."""
        await self.harnesses.seed_built_ins(org_id)
        await self.providers.seed_built_ins(org_id)

    async def start_engine(self, *, execute: bool = True) -> int:
        """Connect to the durable engine (and run turns here when ``execute``); enqueue
        recorded turns that were never enqueued. Returns how many were swept."""
        if execute:
            await self.engine.launch(self.runner)
        await self.engine.connect()
        return await self.turns.enqueue_recorded()

    async def close(self) -> None:
        await self.engine.close()
        await self.db.close()


def build_capabilities() -> CapabilityRegistry:
    registry = CapabilityRegistry()
    registry.register(build_current_time_capability())
    registry.register(build_test_math_capability())
    return registry


def prepare_storage(settings: Settings) -> None:
    """Create the data dir and bring the app schema up to date (synchronous, before serving)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.app_database_url)


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


def build_services(settings: Settings) -> Services:
    db = Database(settings.app_database_url)
    store = Store()
    signals = Signals()
    capabilities = build_capabilities()
    model_store = ModelStore()
    providers = ProviderService(db, model_store, SecretBox.from_settings(settings))
    models = ModelService(db, model_store, providers)
    runner = TurnRunner(
        db,
        signals,
        capabilities,
        models,
        RunnerSettings(
            default_max_iterations=settings.default_max_iterations,
            retry_attempts=settings.model_retry_attempts,
            retry_base_seconds=settings.model_retry_base_seconds,
        ),
    )
    engine = DurableEngine(
        system_database_url=settings.dbos_database_url,
        application_version=settings.application_version,
        executor_id=executor_id(settings),
        queue_poll_seconds=settings.queue_poll_seconds,
    )
    auth = AuthService(db, store)
    harnesses = HarnessService(db, store, models)
    agents = AgentService(db, store, harnesses, models)

    def features_of(refs: Sequence[str]) -> tuple[str, ...]:
        found = {f for ref in refs if ref in capabilities for f in capabilities.get(ref).features}
        return tuple(sorted(found))

    sessions = SessionService(db, store, harnesses, agents, features_of, models)
    turns = TurnService(db, sessions, engine, signals)
    return Services(
        settings,
        db,
        signals,
        capabilities,
        engine,
        runner,
        auth,
        providers,
        models,
        harnesses,
        agents,
        sessions,
        turns,
    )
