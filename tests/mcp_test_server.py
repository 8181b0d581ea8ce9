"""A real MCP server (the ``mcp`` SDK's ``MCPServer`` over streamable HTTP) for tests.

Tools: ``add`` (arguments), ``fail`` (always an error), ``slow_write`` (slow, not idempotent),
``slow_read`` (slow, declares ``idempotentHint``), ``echo`` (returns its text, which it also
appends to ``received``). A slow tool takes ``slow_seconds`` unless ``release`` is set first;
``entered`` is set when one starts. Every request must carry
``Authorization: Bearer <token>``; ``calls`` counts tool invocations by name. Runs on 127.0.0.1
in a background thread and can be stopped and started again on the same port.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN = "mcp-test-token"


class _RequireToken:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != (
            self._expected
        ):
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"missing or wrong token"})
            return
        await self._app(scope, receive, send)


def build_server(
    calls: Counter[str],
    slow_seconds: float,
    entered: threading.Event,
    release: threading.Event,
    received: list[str],
) -> MCPServer:
    server = MCPServer("everloop-test")

    @server.tool(description="Return the text given.")
    def echo(text: str) -> str:
        calls["echo"] += 1
        received.append(text)
        return f"got {text}"

    async def slowly() -> None:
        entered.set()
        await asyncio.to_thread(release.wait, slow_seconds)

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        calls["add"] += 1
        return a + b

    @server.tool(description="Always fails.")
    def fail(reason: str) -> str:
        calls["fail"] += 1
        raise ToolError(f"failed on purpose: {reason}")

    @server.tool(description="Writes slowly (not idempotent).")
    async def slow_write(text: str) -> str:
        calls["slow_write"] += 1
        await slowly()
        calls["slow_write_done"] += 1
        return f"wrote {text}"

    @server.tool(
        description="Reads slowly (idempotent).",
        annotations=ToolAnnotations(idempotentHint=True, readOnlyHint=True),
    )
    async def slow_read(key: str) -> str:
        calls["slow_read"] += 1
        await slowly()
        calls["slow_read_done"] += 1
        return f"read {key}"

    return server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class McpTestServer:
    """The test MCP server in a thread; ``url`` stays the same across ``stop``/``start``."""

    def __init__(self, *, token: str = TOKEN, slow_seconds: float = 3.0) -> None:
        self.port = free_port()
        self.token = token
        self.calls: Counter[str] = Counter()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.received: list[str] = []
        self._slow = slow_seconds
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self) -> None:
        self.release.clear()
        server = build_server(self.calls, self._slow, self.entered, self.release, self.received)
        app = _RequireToken(server.streamable_http_app(), self.token)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self.release.set()  # no slow call keeps the server from stopping
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
