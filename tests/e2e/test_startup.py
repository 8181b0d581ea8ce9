"""Start-up of a real ``everloop serve``: older databases are migrated, the engine comes up
behind ``/readyz``, and ``everloop token create`` works beside a server or without one."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from everloop.config import Settings
from everloop.store import migrate

from .conftest import POSTGRES_URL, Server, everloop_command, free_port, wait_for

pytestmark = pytest.mark.slow


def _database_url(server: Server) -> str:
    url = server.env.get("EVERLOOP_DATABASE_URL")
    return url or Settings(data_dir=server.data_dir).app_database_url


def _revisions(url: str) -> set[str]:
    engine = create_engine(migrate.sync_url(url))
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    finally:
        engine.dispose()


def _at_revision_0003(server: Server) -> None:
    from alembic import command

    engine = create_engine(migrate.sync_url(_database_url(server)))
    try:
        with engine.begin() as connection:
            cfg = migrate.alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0003")
    finally:
        engine.dispose()


def _ready(server: Server) -> bool:
    return httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 200


def test_serve_migrates_an_older_database(start_server: Callable[..., Server]) -> None:
    server = start_server(prepare=_at_revision_0003)
    assert _revisions(_database_url(server)) == set(migrate.HEADS)
    wait_for(lambda: _ready(server), timeout=60, what="/readyz")
    with server.client() as client:
        providers = client.get("providers")
        assert providers.status_code == 200, providers.text
        assert any(p["driver"] == "llmsim" for p in providers.json()["data"])
        assert client.get("durable/workers").status_code == 200  # a table of revision 0009


def _token_create(server: Server, name: str) -> str:
    args = ["token", "create", "--name", name, "--data-dir", str(server.data_dir)]
    done = subprocess.run(
        [*everloop_command(), *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _authenticates(server: Server, token: str) -> bool:
    response = httpx.get(
        f"{server.api_url}/v1/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return response.status_code == 200


def test_token_create_beside_a_server_and_without_one(server: Server) -> None:
    beside = _token_create(server, "beside")
    assert _authenticates(server, beside)

    server.terminate()
    assert server.wait_exit(15) is not None
    alone = _token_create(server, "alone")
    server.start()
    assert _authenticates(server, alone)
    assert _authenticates(server, beside)
    assert _authenticates(server, server.token)


def test_a_failure_after_binding_ends_the_process(tmp_path: Path) -> None:
    # Blueprints load with the services, after the port is bound: a bad directory still stops
    # the server, with exit code 1 and the reason in its output.
    if POSTGRES_URL:
        pytest.skip("SQLite is enough: the failure is the same on either database")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
    env["EVERLOOP_BLUEPRINTS_DIR"] = str(tmp_path / "missing")
    args = ["serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(
        [*everloop_command(), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "blueprints directory" in done.stdout + done.stderr
    assert (tmp_path / "data" / "admin-token").exists()
