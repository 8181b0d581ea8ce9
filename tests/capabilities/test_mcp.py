"""MCP tools through real turns: a real MCP server (the ``mcp`` SDK) on 127.0.0.1, llmsim scripts.

The server is on loopback: this module's processes allow ``127.0.0.0/8`` as the operator
(``EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS``) unless a test asks for the default policy, and
every session still allows the server explicitly through ``network_access``; without either the
egress guard refuses it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from mcp.types import ToolAnnotations
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended
from tests.mcp_test_server import McpTestServer

from everloop.capabilities.base import SideEffect
from everloop.capabilities.mcp import side_effect_of_hints
from everloop.config import Settings
from everloop.domain.mcp import tool_name


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The shared settings with the operator's private networks: loopback unless parametrized."""
    networks = getattr(request, "param", "127.0.0.0/8")
    return settings.model_copy(update={"egress_allowed_private_networks": networks})


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer(slow_seconds=0.2)
    server.start()
    yield server
    server.stop()


def allow(server: McpTestServer) -> dict[str, Any]:
    return {"allowed": [f"http://127.0.0.1:{server.port}/"]}


def scoped(server: McpTestServer, name: str = "calc") -> dict[str, Any]:
    return {name: {"url": server.url, "headers": server.headers}}


def calls(*rules: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "response": {"type": "echo"},
        "tool_calls": [{"when": w, "name": n, "arguments": a} for w, n, a in rules],
    }


ADD = ("add", "mcp_calc__add", {"a": 2, "b": 40})
FAIL = ("fail", "mcp_calc__fail", {"reason": "testing"})


async def completed_tools(api: Api, session_id: str, turns: int = 1) -> list[dict[str, Any]]:
    found = await wait_turns_ended(api, session_id, turns)
    assert [e["type"] for e in found].count("turn.completed") == turns, found
    return [e["data"] for e in found if e["type"] == "tool.completed"]


def test_only_a_tool_that_says_so_is_safe_to_repeat() -> None:
    assert side_effect_of_hints(None) is SideEffect.AT_MOST_ONCE
    assert side_effect_of_hints(ToolAnnotations()) is SideEffect.AT_MOST_ONCE
    assert side_effect_of_hints(ToolAnnotations(destructiveHint=False)) is SideEffect.AT_MOST_ONCE
    assert side_effect_of_hints(ToolAnnotations(readOnlyHint=True)) is SideEffect.IDEMPOTENT
    assert side_effect_of_hints(ToolAnnotations(idempotentHint=True)) is SideEffect.IDEMPOTENT


def test_tool_names_are_sanitized_and_bounded() -> None:
    assert tool_name("calc", "add") == "mcp_calc__add"
    assert tool_name("my.server", "ns/tool name") == "mcp_my_server__ns_tool_name"
    long = tool_name("s" * 40, "t" * 40)
    assert len(long) == 64 and long != tool_name("s" * 40, "t" * 41)


async def test_discovery_call_and_error(engine: Api, mcp_server: McpTestServer) -> None:
    sid = await new_session(
        engine,
        calls(ADD, FAIL),
        mcpServers=scoped(mcp_server),
        network_access=allow(mcp_server),
    )
    await send(engine, sid, "add please")
    (added,) = await completed_tools(engine, sid)
    assert added["success"] is True, added
    assert json.loads(added["result"][0]["text"]) in (42, {"result": 42})
    await send(engine, sid, "now fail")
    done = await completed_tools(engine, sid, 2)
    failed = done[-1]
    assert failed["tool_name"] == "mcp_calc__fail" and failed["success"] is False
    assert "failed on purpose: testing" in failed["error"]
    assert mcp_server.calls["add"] == 1 and mcp_server.calls["fail"] == 1


async def test_input_schema_reaches_the_model(engine: Api, mcp_server: McpTestServer) -> None:
    sid = await new_session(
        engine, calls(ADD), mcpServers=scoped(mcp_server), network_access=allow(mcp_server)
    )
    await send(engine, sid, "add")
    found = await wait_turns_ended(engine, sid)
    generation = next(e for e in found if e["type"] == "llm.generation")
    text = json.dumps(generation["data"])
    for name in ("mcp_calc__add", "mcp_calc__fail", "mcp_calc__slow_read"):
        assert name in text
    assert '"a"' in text and '"b"' in text  # add's input schema


async def test_server_stopped_mid_session_then_back(engine: Api, mcp_server: McpTestServer) -> None:
    sid = await new_session(
        engine, calls(ADD), mcpServers=scoped(mcp_server), network_access=allow(mcp_server)
    )
    await send(engine, sid, "add 1")
    assert (await completed_tools(engine, sid))[0]["success"] is True
    mcp_server.stop()
    await send(engine, sid, "add 2")
    down = (await completed_tools(engine, sid, 2))[-1]
    assert down["success"] is False
    assert "MCP server 'calc' is unreachable" in down["error"]
    mcp_server.start()
    await send(engine, sid, "add 3")
    back = (await completed_tools(engine, sid, 3))[-1]
    assert back["success"] is True, back
    assert mcp_server.calls["add"] == 2


async def test_session_scoped_server_is_invisible_to_another_session(
    engine: Api, mcp_server: McpTestServer
) -> None:
    mine = await new_session(
        engine, calls(ADD), mcpServers=scoped(mcp_server), network_access=allow(mcp_server)
    )
    other = await new_session(engine, calls(ADD), network_access=allow(mcp_server))
    await send(engine, mine, "add")
    await send(engine, other, "add")
    assert len(await completed_tools(engine, mine)) == 1
    # The other session was never offered the tool, so the model did not call it.
    assert await completed_tools(engine, other) == []
    assert mcp_server.calls["add"] == 1


async def test_loopback_server_needs_an_explicit_allowance(
    engine: Api, mcp_server: McpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "everloop.mcp")
    sid = await new_session(engine, calls(ADD), mcpServers=scoped(mcp_server))
    await send(engine, sid, "add")
    # Discovery was refused by the SSRF rules, so the turn offered no MCP tools and went on.
    assert await completed_tools(engine, sid) == []
    assert mcp_server.calls["add"] == 0
    assert "(private_address_not_named)" in caplog.text


@pytest.mark.parametrize("settings", [""], indirect=True)
async def test_a_session_cannot_allow_a_loopback_server_past_the_operator(
    engine: Api, mcp_server: McpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "everloop.mcp")
    sid = await new_session(
        engine, calls(ADD), mcpServers=scoped(mcp_server), network_access=allow(mcp_server)
    )
    await send(engine, sid, "add")
    assert await completed_tools(engine, sid) == []
    assert mcp_server.calls["add"] == 0
    assert "(private_address)" in caplog.text


async def test_wrong_auth_header_lists_nothing(engine: Api, mcp_server: McpTestServer) -> None:
    servers = {"calc": {"url": mcp_server.url, "headers": {"Authorization": "Bearer wrong"}}}
    sid = await new_session(
        engine, calls(ADD), mcpServers=servers, network_access=allow(mcp_server)
    )
    await send(engine, sid, "add")
    assert await completed_tools(engine, sid) == []


async def test_registered_server_as_a_capability(engine: Api, mcp_server: McpTestServer) -> None:
    created = await engine.client.post(
        "/v1/mcp-servers",
        json={"name": "calc", "url": mcp_server.url, "headers": mcp_server.headers},
    )
    assert created.status_code == 201, created.text
    ref = created.json()["capability_ref"]
    sid = await new_session(
        engine,
        calls(ADD),
        capabilities=[{"ref": ref}],
        network_access=allow(mcp_server),
    )
    await send(engine, sid, "add")
    (added,) = await completed_tools(engine, sid)
    assert added["success"] is True, added
    # A changed configuration is listed again: a wrong token now means no tools.
    server_id = created.json()["id"]
    patched = await engine.client.patch(
        f"/v1/mcp-servers/{server_id}", json={"headers": {"Authorization": "Bearer wrong"}}
    )
    assert patched.status_code == 200, patched.text
    await send(engine, sid, "add again")
    assert len(await completed_tools(engine, sid, 2)) == 1
    assert mcp_server.calls["add"] == 1
    # A disabled server contributes no tools, even with the right token again.
    disabled = await engine.client.patch(
        f"/v1/mcp-servers/{server_id}",
        json={"status": "disabled", "headers": mcp_server.headers},
    )
    assert disabled.status_code == 200, disabled.text
    await send(engine, sid, "add once more")
    assert len(await completed_tools(engine, sid, 3)) == 1
    assert mcp_server.calls["add"] == 1
