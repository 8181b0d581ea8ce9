"""``kill -9`` of everloop during a slow MCP call: a completed call is never repeated; an
interrupted one is repeated only when the tool declares ``idempotentHint``, otherwise the model
gets an error saying the outcome is unknown.

The MCP server is on loopback: the everloop server allows ``127.0.0.0/8`` as its operator would
(``EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS``) and every session names it in ``network_access``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import Api, Server
from tests.mcp_test_server import McpTestServer

pytestmark = pytest.mark.slow


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server(EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8")


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer(slow_seconds=3.0)
    server.start()
    yield server
    server.stop()


def wait_until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def run_interrupted(server: Server, api: Api, mcp: McpTestServer, tool: str) -> dict[str, object]:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "go", "name": f"mcp_remote__{tool}", "arguments": {}}],
    }
    arguments = {"slow_write": {"text": "x"}, "slow_read": {"key": "k"}}[tool]
    script["tool_calls"][0]["arguments"] = arguments  # type: ignore[index]
    session_id = api.create_session(
        api.llmsim_model(script),
        mcpServers={"remote": {"url": mcp.url, "headers": mcp.headers}},
        network_access={"allowed": [f"http://127.0.0.1:{mcp.port}/"]},
    )
    api.post_message(session_id, "go")
    wait_until(lambda: mcp.calls[tool] == 1, f"{tool} to start")
    server.kill9()
    api.close()
    server.restart()
    found = api.wait_type(session_id, "turn.completed", timeout=60)
    (done,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    return dict(done)


def test_non_idempotent_call_is_not_repeated(
    server: Server, api: Api, mcp_server: McpTestServer
) -> None:
    done = run_interrupted(server, api, mcp_server, "slow_write")
    assert done["success"] is False
    assert "outcome is unknown" in str(done["error"])
    assert mcp_server.calls["slow_write"] == 1


def test_idempotent_call_is_retried(server: Server, api: Api, mcp_server: McpTestServer) -> None:
    done = run_interrupted(server, api, mcp_server, "slow_read")
    assert done["success"] is True, done
    assert mcp_server.calls["slow_read"] == 2
