"""Scale-out on PostgreSQL (issue 9): 2 API processes + 2 workers on one database.

A worker is killed with ``kill -9`` while turns run; the surviving worker's leader recovers the
dead worker's turns, and every turn completes exactly once. An SSE client reading from API
process 1 reconnects to API process 2 and sees every event exactly once, in order.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.conftest import (
    POSTGRES_URL,
    Server,
    _pg_conninfo,
    free_port,
    iter_frames,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES_URL, reason="scale-out needs PostgreSQL"),
]

SESSIONS = 40
SCRIPT = {
    "response": {"type": "fixed", "text": "done"},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 1, "b": 2}}],
    "latency_ms": 1500,
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    assert POSTGRES_URL
    name = f"everloop_scale_{secrets.token_hex(6)}"
    with psycopg.connect(_pg_conninfo(POSTGRES_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
    base_env.update(
        EVERLOOP_DATABASE_URL=url,
        EVERLOOP_SECRET_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        EVERLOOP_WORKER_HEARTBEAT_SECONDS="0.5",
        EVERLOOP_WORKER_DEAD_AFTER_SECONDS="3",
        EVERLOOP_QUEUE_POLL_SECONDS="0.05",
        # Half the sessions each: a worker may not take every queued turn in one poll (posting
        # the 40 messages now fits in one poll interval).
        EVERLOOP_WORKER_CONCURRENCY=str(SESSIONS // 2),
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
        shared = tmp_path / "api"
        api1 = start("api", 1, shared)  # creates the admin token in the shared data dir
        api2 = start("api", 2, shared)
        workers = [start("worker", i, tmp_path / f"worker{i}") for i in (1, 2)]
        yield {"api1": api1, "api2": api2, "workers": workers}
    finally:
        for server in processes:
            server.stop()
        with psycopg.connect(_pg_conninfo(POSTGRES_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_apis_two_workers_survive_a_worker_kill(cluster: dict[str, Any]) -> None:
    api1: Server = cluster["api1"]
    api2: Server = cluster["api2"]
    first, second = cluster["workers"]
    headers = api1.headers
    with (
        httpx.Client(base_url=api1.api_url + "/v1/", headers=headers, timeout=30) as http1,
        httpx.Client(base_url=api2.api_url + "/v1/", headers=headers, timeout=30) as http2,
    ):
        _scenario(api1, api2, first, second, http1, http2)


def _scenario(
    api1: Server,
    api2: Server,
    first: Server,
    second: Server,
    http1: httpx.Client,
    http2: httpx.Client,
) -> None:
    headers = api1.headers

    llmsim = next(p for p in http1.get("providers").json()["data"] if p["driver"] == "llmsim")
    model = http1.post(
        f"providers/{llmsim['id']}/models",
        json={"model_id": "slow", "settings": {"llmsim": SCRIPT}},
    ).json()
    sessions = [
        http1.post(
            "sessions", json={"model_id": model["id"], "capabilities": [{"ref": "test_math"}]}
        ).json()["id"]
        for _ in range(SESSIONS)
    ]
    turns = {}
    for index, sid in enumerate(sessions):
        client = http1 if index % 2 == 0 else http2
        body = {"message": {"role": "user", "content": [{"type": "text", "text": "add"}]}}
        posted = client.post(f"sessions/{sid}/messages", json=body)
        assert posted.status_code == 201, posted.text
        turns[sid] = posted.json()["turn_id"]

    # An SSE client on API process 1 reads the first session until its tool has run.
    watched = sessions[0]
    seen: list[dict[str, Any]] = []
    with (
        httpx.Client(timeout=httpx.Timeout(30, read=30)) as sse,
        sse.stream("GET", f"{api1.api_url}/v1/sessions/{watched}/sse", headers=headers) as stream,
    ):
        for frame in iter_frames(stream.iter_lines()):
            if frame.event in ("connected", None) or frame.comment is not None:
                continue
            seen.append(frame.json())
            if frame.event == "tool.completed":
                break

    # Kill a worker once it has turns in flight (both took turns from the queue).
    def busy() -> bool:
        listed = http1.get("durable/workers").json()["data"]
        running = {w["executor_id"]: w["running_turns"] for w in listed}
        return running.get("worker-1", 0) > 0 and running.get("worker-2", 0) > 0

    wait_for(busy, timeout=30, what="both workers running turns", interval=0.2)
    first.kill9()

    def all_done() -> bool:
        for sid in sessions:
            kinds = [e["type"] for e in http2.get(f"sessions/{sid}/events").json()["data"]]
            if "turn.completed" not in kinds:
                return False
        return True

    wait_for(all_done, timeout=120, what="every turn to complete", interval=0.5)

    for sid in sessions:
        found = http2.get(f"sessions/{sid}/events").json()["data"]
        kinds = Counter(e["type"] for e in found)
        assert kinds["turn.started"] == 1, (sid, kinds)
        assert kinds["turn.completed"] == 1, (sid, kinds)
        assert kinds["tool.completed"] == 1, (sid, kinds)
        assert kinds["turn.failed"] == 0
        assert [e["sequence"] for e in found] == list(range(1, len(found) + 1))
        assert len({e["id"] for e in found}) == len(found)

    # The watcher resumes on API process 2 from its last id: the rest, exactly once.
    rest: list[dict[str, Any]] = []
    with (
        httpx.Client(timeout=httpx.Timeout(30, read=30)) as sse,
        sse.stream(
            "GET",
            f"{api2.api_url}/v1/sessions/{watched}/sse",
            params={"since_id": seen[-1]["id"]},
            headers=headers,
        ) as stream,
    ):
        for frame in iter_frames(stream.iter_lines()):
            if frame.event in ("connected", None) or frame.comment is not None:
                continue
            rest.append(frame.json())
            if frame.event == "session.idled":
                break
    full = http2.get(f"sessions/{watched}/events").json()["data"]
    assert [e["id"] for e in seen + rest] == [e["id"] for e in full]

    workers = {w["executor_id"]: w for w in http2.get("durable/workers").json()["data"]}
    assert workers["worker-1"]["recovered_by"] == "worker-2"
    assert second.alive()
