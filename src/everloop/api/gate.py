"""The HTTP front of a process that is still starting: it answers before the app is built.

``everloop serve`` binds its port once the app database is migrated and the admin token exists,
then builds the rest (services, the FastAPI app, the durable engine) in the background. While
that runs, this gate answers:

- ``GET /healthz``: 200 at once (the process is alive);
- ``GET /readyz``: 503 until the app is ready, then the app's own check (database and engine);
- any other request: held until the app is ready, then handed to it; 503 if start-up failed.

Once the app is ready every request goes straight to it. Plain ASGI, cheap to import.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("everloop.startup")


class StartupGate:
    """``start`` builds the app after the port is bound; ``stop`` runs at shutdown whether or
    not ``start`` succeeded (after it ended); ``on_failure`` hears of a failed start."""

    def __init__(
        self,
        start: Callable[[], Awaitable[ASGIApp]],
        stop: Callable[[], Awaitable[None]],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self._start = start
        self._stop = stop
        self._on_failure = on_failure
        self._app: ASGIApp | None = None
        self._failed = False
        self._settled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.held = 0  # requests waiting for the app

    async def wait_settled(self) -> bool:
        """Wait until the start ended; whether the app is ready."""
        await self._settled.wait()
        return self._app is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self._app is not None:
            await self._app(scope, receive, send)
            return
        http = scope["type"] == "http"
        if http and scope.get("path") == "/healthz":
            await _json(send, 200, {"status": "ok"})
            return
        if http and scope.get("path") == "/readyz":
            state = "failed" if self._failed else "starting"
            await _json(send, 503, {"status": "unavailable", "startup": state})
            return
        self.held += 1
        try:
            ready = await self.wait_settled()
        finally:
            self.held -= 1
        if not ready:
            if http:
                error = {"code": "engine_unavailable", "message": "the server failed to start"}
                await _json(send, 503, {"error": error})
            return  # anything else is refused by closing it unanswered
        assert self._app is not None
        await self._app(scope, receive, send)

    async def _run_start(self) -> None:
        try:
            self._app = await self._start()
        except Exception as exc:
            self._failed = True
            log.exception("start-up failed")
            self._on_failure(exc)
        finally:
            self._settled.set()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        # The port is bound only after this completes: start in the background.
        self._task = asyncio.create_task(self._run_start(), name="everloop-startup")
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        if message["type"] != "lifespan.shutdown":
            return
        try:
            await self._task  # a start under way finishes, so that stop closes what it made
            await self._stop()
        except Exception as exc:
            log.exception("shutdown failed")
            await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
