"""A server killed (``kill -9``) while management requests are in flight leaves every change
with its audit record and no record without its change (issue 25): the record is written in
the change's own transaction."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from everloop.config import Settings
from everloop.store import migrate
from tests.e2e.conftest import Server, wait_for

pytestmark = pytest.mark.slow


def _creator(server: Server, worker: int, made: list[str], stop: threading.Event) -> None:
    with httpx.Client(base_url=server.api_url, headers=server.headers, timeout=10) as client:
        for n in range(10_000):
            if stop.is_set():
                return
            try:
                answer = client.post(
                    "/v1/agents", json={"name": f"crash-{worker}-{n}", "system_prompt": "p"}
                )
            except httpx.HTTPError:
                return  # the server is gone
            if answer.status_code == 201:
                made.append(answer.json()["id"])


def _database(server: Server) -> dict[str, Any]:
    url = (
        server.env.get("EVERLOOP_DATABASE_URL")
        or Settings(data_dir=server.data_dir).app_database_url
    )
    engine = create_engine(migrate.sync_url(url))
    try:
        with engine.connect() as conn:
            agents = {
                row[0]
                for row in conn.execute(text("SELECT id FROM agents WHERE name LIKE 'crash-%'"))
            }
            audited = [
                row[0]
                for row in conn.execute(
                    text("SELECT target_id FROM audit_events WHERE action = 'agents.create'")
                )
            ]
    finally:
        engine.dispose()
    return {"agents": agents, "audited": audited}


def test_kill9_during_changes_leaves_each_change_with_its_record(start_server: Any) -> None:
    server: Server = start_server()
    made: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_creator, args=(server, w, made, stop), daemon=True)
        for w in range(3)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(made) >= 30 or None, timeout=60, what="30 agents created")
        server.kill9()  # requests are in flight: some committed, some not
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
    found = _database(server)
    # Every answered create is there with its record; whatever else committed before the kill
    # has its record too, and no record names an agent that is not there.
    assert set(made) <= found["agents"]
    assert sorted(found["audited"]) == sorted(found["agents"])
    server.restart()
    with httpx.Client(base_url=server.api_url, headers=server.headers, timeout=10) as client:
        listed = client.get("/v1/audit-events", params={"action": "agents.create", "limit": 1})
        assert listed.status_code == 200, listed.text
        assert listed.json()["data"][0]["target_id"] in found["agents"]
