"""The start-up gate: alive at once, ready only once the app is built, requests held till then."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from everloop.api.gate import StartupGate


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The application behind the gate: answers every request with its path."""
    body = f"app {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


class Lifespan:
    """Drives a gate's ASGI lifespan as a server does."""

    def __init__(self, gate: StartupGate) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(
            gate({"type": "lifespan"}, self.incoming.get, self.outgoing.put)
        )

    async def send(self, message_type: str) -> str:
        await self.incoming.put({"type": message_type})
        return str((await asyncio.wait_for(self.outgoing.get(), 10))["type"])


@asynccontextmanager
async def started(
    start: Callable[[], Awaitable[Any]], log: list[str], failures: list[BaseException]
) -> AsyncIterator[tuple[StartupGate, httpx.AsyncClient, Lifespan]]:
    async def stop() -> None:
        log.append("stop")

    gate = StartupGate(start, stop, on_failure=failures.append)
    lifespan = Lifespan(gate)
    assert await lifespan.send("lifespan.startup") == "lifespan.startup.complete"
    transport = httpx.ASGITransport(app=gate)
    async with httpx.AsyncClient(transport=transport, base_url="http://gate.test") as client:
        yield gate, client, lifespan


async def _until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (a bounded number of loop turns)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_alive_at_once_ready_and_serving_once_started() -> None:
    release = asyncio.Event()
    log: list[str] = []

    async def start() -> Any:
        await release.wait()
        log.append("started")
        return _app

    async with started(start, log, []) as (gate, client, lifespan):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        readyz = await client.get("/readyz")
        assert readyz.status_code == 503
        assert readyz.json() == {"status": "unavailable", "startup": "starting"}

        held = asyncio.create_task(client.get("/api/v1/sessions"))
        await _until(lambda: gate.held == 1)
        assert not held.done()
        release.set()
        answer = await held
        assert (answer.status_code, answer.text) == (200, "app /api/v1/sessions")
        assert gate.held == 0

        # Ready: everything, /healthz and /readyz too, is the app's.
        assert (await client.get("/readyz")).text == "app /readyz"
        assert (await client.get("/healthz")).text == "app /healthz"
        assert await lifespan.send("lifespan.shutdown") == "lifespan.shutdown.complete"
    assert log == ["started", "stop"]


async def test_a_failed_start_answers_503_and_is_reported() -> None:
    release = asyncio.Event()
    failures: list[BaseException] = []
    log: list[str] = []

    async def start() -> Any:
        await release.wait()
        raise RuntimeError("no database")

    async with started(start, log, failures) as (gate, client, lifespan):
        held = asyncio.create_task(client.post("/api/v1/sessions", json={}))
        await _until(lambda: gate.held == 1)
        release.set()
        answer = await held
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "engine_unavailable"
        assert [str(f) for f in failures] == ["no database"]
        assert (await client.get("/readyz")).json()["startup"] == "failed"
        assert (await client.get("/healthz")).status_code == 200
        assert await lifespan.send("lifespan.shutdown") == "lifespan.shutdown.complete"
    assert log == ["stop"]


async def test_shutdown_during_start_waits_for_it_then_stops() -> None:
    release = asyncio.Event()
    log: list[str] = []

    async def start() -> Any:
        await release.wait()
        log.append("started")
        return _app

    async with started(start, log, []) as (_gate, _client, lifespan):
        await lifespan.incoming.put({"type": "lifespan.shutdown"})
        await _until(lambda: lifespan.incoming.empty())
        assert log == []
        release.set()
        assert (await asyncio.wait_for(lifespan.outgoing.get(), 10))["type"] == (
            "lifespan.shutdown.complete"
        )
    assert log == ["started", "stop"]
