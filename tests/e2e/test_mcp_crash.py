"""``kill -9`` of everloop during a slow outside call, counted by the server it reaches: an
interrupted call is repeated only when its tool is safe to repeat (an MCP tool declaring
``idempotentHint``, a ``web_fetch`` GET), and then recorded once; otherwise it is never repeated
and is settled ``in_doubt``: the model and the log are told its outcome is unknown.

The servers are on loopback: the everloop server allows ``127.0.0.0/8`` as its operator would
(``EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS``) and every session names it in ``network_access``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Api, Server
from tests.local_web import LocalWeb
from tests.mcp_test_server import McpTestServer

pytestmark = pytest.mark.slow


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server(EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8")


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    # Slow calls last until released: the kill always lands while one is in flight.
    server = McpTestServer(slow_seconds=30.0)
    server.start()
    yield server
    server.stop()


def run_interrupted(
    server: Server, api: Api, mcp: McpTestServer, tool: str
) -> list[dict[str, Any]]:
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
    assert mcp.entered.wait(30), f"{tool} never started"
    server.kill9()
    mcp.release.set()  # the killed call may finish now; a repeated one answers at once
    api.close()
    server.restart()
    return api.wait_type(session_id, "turn.completed", timeout=60)


def of_type(found: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in found if e["type"] == event_type]


def test_non_idempotent_call_is_not_repeated(
    server: Server, api: Api, mcp_server: McpTestServer
) -> None:
    found = run_interrupted(server, api, mcp_server, "slow_write")
    (done,) = of_type(found, "tool.completed")
    assert done["success"] is False and done["status"] == "error"
    assert done["error_kind"] == "in_doubt"
    assert "in doubt" in str(done["error"])
    (repaired,) = of_type(found, "transcript.repaired")
    assert repaired["tool_call_id"] == done["tool_call_id"]
    assert mcp_server.calls["slow_write"] == 1


def test_idempotent_call_is_retried(server: Server, api: Api, mcp_server: McpTestServer) -> None:
    found = run_interrupted(server, api, mcp_server, "slow_read")
    (done,) = of_type(found, "tool.completed")
    assert done["success"] is True, done
    assert of_type(found, "transcript.repaired") == []
    assert mcp_server.calls["slow_read"] == 2


def test_an_interrupted_fetch_is_repeated_and_recorded_once(server: Server, api: Api) -> None:
    with LocalWeb() as web:
        script = {
            "response": {"type": "echo"},
            "tool_calls": [
                {"when": "go", "name": "web_fetch", "arguments": {"url": web.url + "/held"}}
            ],
        }
        session_id = api.create_session(
            api.llmsim_model(script),
            capabilities=[{"ref": "web_fetch"}],
            network_access={"allowed": [f"{web.url}/"]},
        )
        api.post_message(session_id, "go")
        assert web.entered.wait(30), "the fetch never arrived"
        server.kill9()
        web.release.set()
        api.close()
        server.restart()
        found = api.wait_type(session_id, "turn.completed", timeout=60)
    assert web.requests == ["/held", "/held"]
    (done,) = of_type(found, "tool.completed")
    assert done["success"] is True, done
