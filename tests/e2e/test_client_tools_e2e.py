"""Client-side tools against a real ``everloop serve`` (issue 4): the everruns-sdk flow, and a
wait that survives ``kill -9``.

While the server process is down, a POST of tool results is refused (the connection is refused:
nothing is listening); the client posts again once the server is back, and the result is
applied exactly once. With a separate API process and a worker (scale-out, PostgreSQL), results
posted to the API process reach the turn parked on the worker, and results posted while the
worker is down are stored and applied when it returns.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from everruns_sdk import Everruns
from everruns_sdk.models import ContentPart, extract_tool_calls
from sqlalchemy.engine import make_url

from tests.e2e.conftest import POSTGRES_URL, Api, Server, _pg_conninfo, free_port

pytestmark = pytest.mark.slow

LOCATE = {
    "type": "client_side",
    "name": "get_location",
    "description": "Where the user is.",
    "parameters": {"type": "object", "properties": {}},
}
SCRIPT = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "where", "name": "get_location", "arguments": {}}],
}


def test_client_tool_round_trip_with_the_sdk(server: Server, api: Api) -> None:
    model_id = api.llmsim_model(SCRIPT)
    session_id = api.create_session(model_id, tools=[LOCATE])

    async def run() -> str:
        async with Everruns(api_key=server.token, base_url=server.api_url) as client:
            await client.messages.create(session_id, "where am I?")
            async for event in client.events.stream(session_id):
                if event.type == "tool.call_requested":
                    calls = extract_tool_calls(event.data)
                    assert [c.name for c in calls] == ["get_location"]
                    parts = [
                        ContentPart(type="tool_result", tool_call_id=c.id, result={"city": "Lviv"})
                        for c in calls
                    ]
                    submitted = await client.messages.create_tool_results(session_id, parts)
                    assert submitted.accepted == 1
                if event.type == "turn.completed":
                    break
            messages = await client.messages.list(session_id)
            return str(messages[-1].content[0].text)

    final = asyncio.run(asyncio.wait_for(run(), timeout=60))
    assert 'get_location: {"city": "Lviv"}' in final


def test_a_waiting_turn_survives_kill_9_and_gets_its_result_once(server: Server, api: Api) -> None:
    model_id = api.llmsim_model(SCRIPT)
    session_id = api.create_session(model_id, tools=[LOCATE])
    api.post_message(session_id, "where am I?")
    found = api.wait_type(session_id, "tool.call_requested")
    call_id = next(e for e in found if e["type"] == "tool.call_requested")["data"]["tool_calls"][0][
        "id"
    ]
    before = [e["id"] for e in found]

    server.kill9()
    api.close()
    with pytest.raises(httpx.ConnectError):
        httpx.post(
            f"{server.api_url}/v1/sessions/{session_id}/tool-results",
            json={"tool_results": [{"tool_call_id": call_id, "result": "down"}]},
            headers=server.headers,
            timeout=5,
        )
    server.restart()
    session = api.ok(api.http.get(f"sessions/{session_id}"))
    assert session["status"] == "waitingfortoolresults"
    body = {"tool_results": [{"tool_call_id": call_id, "result": "after restart"}]}
    accepted = api.ok(api.http.post(f"sessions/{session_id}/tool-results", json=body))
    assert accepted == {"accepted": 1, "status": "active"}
    again = api.http.post(f"sessions/{session_id}/tool-results", json=body)
    assert again.status_code in (409, 422)

    found = api.wait_type(session_id, "turn.completed")
    kinds = Counter(e["type"] for e in found)
    assert kinds["tool.completed"] == 1
    assert kinds["tool.call_requested"] == 1
    assert kinds["turn.completed"] == 1
    assert [e["id"] for e in found[: len(before)]] == before
    assert [e["sequence"] for e in found] == list(range(1, len(found) + 1))
    final = [e for e in found if e["type"] == "output.message.completed"][-1]
    text = final["data"]["message"]["content"][0]["text"]
    assert 'get_location: "after restart"' in text
    assert api.ok(api.http.get(f"sessions/{session_id}"))["status"] == "idle"


@pytest.fixture
def api_and_worker(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """An API-only process and a worker on their own PostgreSQL database."""
    assert POSTGRES_URL
    name = f"everloop_client_tools_{secrets.token_hex(6)}"
    with psycopg.connect(_pg_conninfo(POSTGRES_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
    env.update(
        EVERLOOP_DATABASE_URL=make_url(POSTGRES_URL)
        .set(database=name)
        .render_as_string(hide_password=False),
        EVERLOOP_SECRET_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        EVERLOOP_QUEUE_POLL_SECONDS="0.05",
        EVERLOOP_LOG_LEVEL="INFO",
    )
    api = Server(tmp_path / "api", free_port(), {**env, "EVERLOOP_EXECUTOR_ID": "api-1"}, "api")
    worker = Server(
        tmp_path / "worker", free_port(), {**env, "EVERLOOP_EXECUTOR_ID": "worker-1"}, "worker"
    )
    try:
        api.start()
        worker.start()
        yield api, worker
    finally:
        worker.stop()
        api.stop()
        with psycopg.connect(_pg_conninfo(POSTGRES_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.skipif(not POSTGRES_URL, reason="scale-out needs PostgreSQL")
def test_results_posted_to_an_api_process_reach_the_turn_parked_on_a_worker(
    api_and_worker: tuple[Server, Server],
) -> None:
    """The turn runs on the worker; the caller posts its results to the API process: once
    while the worker waits (its wait wakes on the database notification), once while the
    worker is down (stored, and applied when the restarted worker recovers the turn)."""
    server, worker = api_and_worker
    api = Api(server)
    try:
        session_id = api.create_session(api.llmsim_model(SCRIPT), tools=[LOCATE])
        for turn, worker_down in ((1, False), (2, True)):
            api.post_message(session_id, "where am I?")
            found = api.wait_type(session_id, "tool.call_requested", count=turn)
            requested = [e for e in found if e["type"] == "tool.call_requested"][-1]
            call_id = requested["data"]["tool_calls"][0]["id"]
            if worker_down:
                worker.kill9()
            body = {"tool_results": [{"tool_call_id": call_id, "result": f"turn {turn}"}]}
            accepted = api.ok(api.http.post(f"sessions/{session_id}/tool-results", json=body))
            assert accepted == {"accepted": 1, "status": "active"}
            if worker_down:
                worker.restart()
            found = api.wait_type(session_id, "turn.completed", count=turn, timeout=60)
            final = [e for e in found if e["type"] == "output.message.completed"][-1]
            assert f'get_location: "turn {turn}"' in final["data"]["message"]["content"][0]["text"]

        kinds = Counter(e["type"] for e in api.events(session_id))
        assert kinds["tool.call_requested"] == kinds["tool.completed"] == 2
        assert kinds["turn.completed"] == 2 and kinds["turn.failed"] == 0
        assert api.ok(api.http.get(f"sessions/{session_id}"))["status"] == "idle"
    finally:
        api.close()
