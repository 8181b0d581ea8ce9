"""Load on a real ``everloop serve``: many sessions running turns at once, each streamed over
SSE, and not one turn fails (on PostgreSQL this load used to exhaust the connection pool:
turns failed with ``QueuePool limit ... timed out`` and streams answered 500).

Every session's log is then checked whole: gapless sequences from 1, exactly one terminal event
per turn, every turn completed with the tool's result. No timing is asserted (speed is
measured by ``benchmarks/turns.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow

SCRIPT = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
}
TERMINAL = ("turn.completed", "turn.failed", "turn.cancelled")


async def _drive(
    client: httpx.AsyncClient, session_id: str, turns: int, outcomes: list[str]
) -> None:
    """Stream the session and post its turns one after another (the next when the previous
    ended); record each turn's terminal event type, or the request error."""
    ended: asyncio.Queue[str] = asyncio.Queue()

    async def stream() -> None:
        url = f"sessions/{session_id}/sse"
        async with client.stream("GET", url, params={"types": list(TERMINAL)}) as response:
            if response.status_code != 200:
                await ended.put(f"sse {response.status_code}")
                return
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind in TERMINAL:
                    await ended.put(kind)

    reader = asyncio.create_task(stream())
    try:
        for i in range(turns):
            body = {"message": {"role": "user", "content": [{"type": "text", "text": f"add {i}"}]}}
            posted = await client.post(f"sessions/{session_id}/messages", json=body)
            if posted.status_code != 201:
                outcomes.append(f"post {posted.status_code}")
                continue
            async with asyncio.timeout(120):
                outcomes.append(await ended.get())
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def _run_load(server: Server, session_ids: list[str], turns: int) -> list[str]:
    outcomes: list[str] = []
    # Idle connections expire on the client before uvicorn's 5 s keep-alive closes them on
    # the server: otherwise a request sent on a connection the server is just closing races
    # it (a ReadError on the client that says nothing about the server).
    limits = httpx.Limits(max_connections=2 * len(session_ids) + 10, keepalive_expiry=2.0)
    async with httpx.AsyncClient(
        base_url=f"{server.api_url}/v1/", headers=server.headers, timeout=120, limits=limits
    ) as client:
        await asyncio.gather(*(_drive(client, sid, turns, outcomes) for sid in session_ids))
    return outcomes


def _check_log(api: Api, session_id: str, turns: int) -> None:
    log = api.events(session_id)
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))
    terminal = Counter(e["data"]["turn_id"] for e in log if e["type"] in TERMINAL)
    assert len(terminal) == turns and set(terminal.values()) == {1}, terminal
    assert all(e["type"] == "turn.completed" for e in log if e["type"] in TERMINAL)
    results = [e for e in log if e["type"] == "tool.completed"]
    assert len(results) == turns
    for event in results:  # the add tool's answer, as a JSON text part
        (part,) = event["data"]["result"]
        assert json.loads(part["text"]) == {"result": 5}, event["data"]


@pytest.mark.parametrize(("sessions", "turns"), [(32, 3), (128, 2)])
def test_concurrent_sessions_lose_no_turn(
    start_server: Callable[..., Server], sessions: int, turns: int
) -> None:
    server = start_server(EVERLOOP_LOG_LEVEL="WARNING")
    api = Api(server)
    try:
        model = api.llmsim_model(SCRIPT)
        body: dict[str, Any] = {"capabilities": [{"ref": "test_math"}]}
        session_ids = [api.create_session(model, **body) for _ in range(sessions)]

        outcomes = asyncio.run(_run_load(server, session_ids, turns))

        assert Counter(outcomes) == Counter({"turn.completed": sessions * turns})
        for session_id in session_ids:
            _check_log(api, session_id, turns)
        log = server.log()
        assert "TimeoutError" not in log and "Traceback" not in log, log[-4000:]
    finally:
        api.close()
