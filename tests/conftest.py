"""Shared fixtures: real databases in temp dirs (and PostgreSQL when configured), the real app.

Set ``EVERLOOP_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1/<db>`` to run the
database-backed tests on PostgreSQL instead of SQLite; ``.ci/run`` runs the suite both ways.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, text

from everloop.api.app import create_app
from everloop.bootstrap import Services, build_services, prepare_storage
from everloop.config import Settings
from everloop.store.migrate import sync_url
from everloop.store.tables import metadata

POSTGRES_URL = os.environ.get("EVERLOOP_TEST_POSTGRES_URL")


def _reset_postgres(url: str) -> None:
    engine = create_engine(sync_url(url))
    with engine.begin() as conn:
        names = ", ".join(t.name for t in reversed(metadata.sorted_tables))
        exists = conn.execute(text("SELECT to_regclass('public.sessions')")).scalar()
        if exists:
            conn.execute(text(f"TRUNCATE {names} CASCADE"))
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    values: dict[str, object] = {"data_dir": tmp_path / "data", "model_retry_base_seconds": 0.01}
    if POSTGRES_URL:
        values["database_url"] = POSTGRES_URL
    s = Settings(**values)  # type: ignore[arg-type]
    prepare_storage(s)
    if POSTGRES_URL:
        _reset_postgres(POSTGRES_URL)
    yield s


@dataclass
class Api:
    """An in-process app with an admin token: ``api.client`` sends authenticated requests."""

    services: Services
    client: httpx.AsyncClient
    token: str
    org_id: str

    def anonymous(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.client._transport, base_url=str(self.client.base_url)
        )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    svc = build_services(settings)
    yield svc
    await svc.close()


# Building the app (a few hundred routes, their models) takes about 0.6 s, most of an API
# test's setup. The app holds no state of its own but ``state.services`` and the limits its
# middleware took from the settings, so one app per set of those limits serves every test,
# each with its own services.
_APPS: dict[tuple[object, ...], FastAPI] = {}


def _app_for(services: Services) -> FastAPI:
    s = services.settings
    key = (s.max_body_bytes, s.max_json_depth, s.max_json_bytes, s.debug_counters)
    app = _APPS.get(key)
    if app is None:
        app = _APPS[key] = create_app(services)
    app.state.services = services
    return app


@pytest.fixture
async def api(services: Services) -> AsyncIterator[Api]:
    boot = await services.auth.bootstrap()
    await services.seed_org(boot.organization_id)
    assert boot.token is not None
    app = _app_for(services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://everloop.test/api",
        headers={"Authorization": f"Bearer {boot.token}"},
    ) as client:
        yield Api(services, client, boot.token, boot.organization_id)
