"""A schedule fires exactly once across processes (issue 15): one API process and two workers
on one PostgreSQL database, each worker running the schedule timer, and a schedule due every
second for 20 s.

Every due time fires at most once (one execution, one ``input.message``, one turn that starts
and completes once) and, once the first has fired, every later one fires: the executions are
consecutive seconds. Which worker fired which is not exposed and not asserted.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from everloop.domain.timestamps import format_ts
from tests.e2e.conftest import POSTGRES_URL, Server, _pg_conninfo, free_port
from tests.e2e.test_schedules_e2e import (
    EVERY_SECOND,
    QUICK,
    assert_fires_sound,
    create_schedule,
    session_events,
    settled_executions,
    wait_until,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not POSTGRES_URL, reason="several processes on one database need PostgreSQL"
    ),
]

FIRING_SECONDS = 20


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Server, list[Server]]]:
    """An API process and two workers (``worker-1``, ``worker-2``) on a fresh database."""
    assert POSTGRES_URL
    name = f"everloop_sched_{secrets.token_hex(6)}"
    with psycopg.connect(_pg_conninfo(POSTGRES_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
    base_env.update(
        EVERLOOP_DATABASE_URL=make_url(POSTGRES_URL)
        .set(database=name)
        .render_as_string(hide_password=False),
        EVERLOOP_SECRET_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        EVERLOOP_SCHEDULE_MIN_INTERVAL_SECONDS="1",
        EVERLOOP_LOG_LEVEL="INFO",
    )
    processes: list[Server] = []

    def start(role: str, index: int, data_dir: Path) -> Server:
        env = {**base_env, "EVERLOOP_EXECUTOR_ID": f"{role}-{index}"}
        server = Server(data_dir, free_port(), env, role=role)
        processes.append(server)
        server.start()
        return server

    try:
        api = start("api", 1, tmp_path / "api")
        workers = [start("worker", i, tmp_path / f"worker{i}") for i in (1, 2)]
        yield api, workers
    finally:
        for server in processes:
            server.stop()
        with psycopg.connect(_pg_conninfo(POSTGRES_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_workers_fire_each_due_time_once(cluster: tuple[Server, list[Server]]) -> None:
    api, workers = cluster
    with httpx.Client(base_url=f"{api.api_url}/v1/", headers=api.headers, timeout=30) as http:
        llmsim = next(p for p in http.get("providers").json()["data"] if p["driver"] == "llmsim")
        model = http.post(
            f"providers/{llmsim['id']}/models",
            json={"model_id": "quick", "settings": {"llmsim": QUICK}},
        )
        assert model.status_code == 201, model.text
        created = http.post("sessions", json={"model_id": model.json()["id"]})
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]

        schedule = create_schedule(http, session_id, "every-second", cron=EVERY_SECOND)
        wait_until(
            datetime.now(UTC) + timedelta(seconds=FIRING_SECONDS), "the schedule to fire a while"
        )
        paused = http.post(f"durable/schedules/{schedule['id']}/pause")
        assert paused.status_code == 200, paused.text
        found = settled_executions(http, schedule["id"], at_least=1, timeout=60)

        for worker in workers:
            assert worker.alive(), f"a worker exited; its log ends:\n{worker.log()[-4000:]}"
        due_times = [e["scheduled_at"] for e in found]
        assert len(set(due_times)) == len(due_times), "a due time fired twice"
        assert len(found) >= FIRING_SECONDS - 5, f"only {len(found)} fires in {FIRING_SECONDS} s"
        assert {e["trigger"] for e in found} == {"schedule"}
        first = datetime.fromisoformat(due_times[0])
        assert due_times == [format_ts(first + timedelta(seconds=i)) for i in range(len(found))]
        assert_fires_sound(session_events(http, session_id), schedule["id"], found)
