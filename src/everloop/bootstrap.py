"""Composition root: settings -> database, store, services. The only module that picks concrete parts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from everloop.config import Settings
from everloop.services.auth import AuthService
from everloop.services.config_resources import AgentService, HarnessService
from everloop.services.sessions import SessionService
from everloop.store import migrate
from everloop.store.db import Database
from everloop.store.sql import Store


@dataclass
class Services:
    settings: Settings
    db: Database
    auth: AuthService
    harnesses: HarnessService
    agents: AgentService
    sessions: SessionService

    async def close(self) -> None:
        await self.db.close()


def _no_features(_refs: Sequence[str]) -> tuple[str, ...]:
    return ()


def prepare_storage(settings: Settings) -> None:
    """Create the data dir and bring the app schema up to date (synchronous, before serving)."""
    if not settings.is_postgres:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.app_database_url)


def build_services(settings: Settings) -> Services:
    db = Database(settings.app_database_url)
    store = Store()
    auth = AuthService(db, store)
    harnesses = HarnessService(db, store)
    agents = AgentService(db, store, harnesses)
    sessions = SessionService(db, store, harnesses, agents, _no_features)
    return Services(settings, db, auth, harnesses, agents, sessions)
