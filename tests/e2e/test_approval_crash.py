"""``kill -9`` of everloop while a tool call waits for approval: after the restart the call is
still waiting, an approval runs it, and it runs exactly once, counted by the MCP server it
reaches (a tool that is not safe to repeat: a second run would count twice)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Api, Server
from tests.mcp_test_server import McpTestServer

pytestmark = pytest.mark.slow


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server(EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8")


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def slow_mcp() -> Iterator[McpTestServer]:
    # A slow call lasts until released: the kill lands while it is in flight.
    server = McpTestServer(slow_seconds=30.0)
    server.start()
    yield server
    server.stop()


def of_type(found: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in found if e["type"] == event_type]


def test_an_approval_after_a_crash_runs_the_call_once(
    server: Server, api: Api, mcp_server: McpTestServer
) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "go", "name": "mcp_remote__echo", "arguments": {"text": "once"}}],
    }
    session_id = api.create_session(
        api.llmsim_model(script),
        mcpServers={"remote": {"url": mcp_server.url, "headers": mcp_server.headers}},
        network_access={"allowed": [f"http://127.0.0.1:{mcp_server.port}/"]},
        capabilities=[{"ref": "tool_approval", "config": {"patterns": ["mcp_remote__*"]}}],
    )
    api.post_message(session_id, "go")
    found = api.wait_type(session_id, "tool.approval_requested")
    (requested,) = of_type(found, "tool.approval_requested")
    call_id = requested["tool_calls"][0]["id"]
    assert mcp_server.calls["echo"] == 0

    server.kill9()
    api.close()
    server.restart()

    pending = api.ok(api.http.get(f"sessions/{session_id}/pending-input"))
    assert [p["tool_call_id"] for p in pending["pending_approvals"]] == [call_id]
    session = api.ok(api.http.get(f"sessions/{session_id}"))
    assert session["status"] == "waitingfortoolresults"
    decided = api.ok(
        api.http.post(
            f"sessions/{session_id}/tool-approvals",
            json={"decisions": [{"tool_call_id": call_id, "approved": True}]},
        )
    )
    assert decided["status"] == "active"
    found = api.wait_type(session_id, "turn.completed", timeout=60)
    (done,) = of_type(found, "tool.completed")
    assert done["success"] is True, done
    assert mcp_server.calls["echo"] == 1
    assert mcp_server.received == ["once"]
    again = api.http.post(
        f"sessions/{session_id}/tool-approvals",
        json={"decisions": [{"tool_call_id": call_id, "approved": True}]},
    )
    assert again.status_code == 409


def test_a_crash_while_the_approved_call_runs_does_not_repeat_it(
    server: Server, api: Api, slow_mcp: McpTestServer
) -> None:
    """The approval commits and the call starts; the server dies while it runs. After the
    restart the approval is not lost (the turn goes on from it) and the call, not safe to
    repeat, is not run again: it is settled in doubt."""
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "go", "name": "mcp_remote__slow_write", "arguments": {"text": "x"}}
        ],
    }
    session_id = api.create_session(
        api.llmsim_model(script),
        mcpServers={"remote": {"url": slow_mcp.url, "headers": slow_mcp.headers}},
        network_access={"allowed": [f"http://127.0.0.1:{slow_mcp.port}/"]},
        capabilities=[{"ref": "tool_approval", "config": {"tools": ["mcp_remote__slow_write"]}}],
    )
    api.post_message(session_id, "go")
    found = api.wait_type(session_id, "tool.approval_requested")
    call_id = of_type(found, "tool.approval_requested")[0]["tool_calls"][0]["id"]
    assert slow_mcp.calls["slow_write"] == 0
    api.ok(
        api.http.post(
            f"sessions/{session_id}/tool-approvals",
            json={"decisions": [{"tool_call_id": call_id, "approved": True}]},
        )
    )
    assert slow_mcp.entered.wait(30), "the approved call never started"
    server.kill9()
    slow_mcp.release.set()
    api.close()
    server.restart()
    found = api.wait_type(session_id, "turn.completed", timeout=60)
    (done,) = of_type(found, "tool.completed")
    assert done["error_kind"] == "in_doubt", done
    assert slow_mcp.calls["slow_write"] == 1
    assert len(of_type(found, "tool.approval_decided")) == 1
