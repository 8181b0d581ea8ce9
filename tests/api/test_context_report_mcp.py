"""The context report lists the tools of the MCP servers a session can reach (registered
``mcp:{id}`` capabilities and the ``mcpServers`` map), against a real MCP server on 127.0.0.1:
from the tool cache without a network call, listed for the report when not cached (or, with
``discover=false``, reported ``unknown``), and ``unreachable`` with the reason when listing
fails."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from everloop.config import Settings
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended
from tests.mcp_test_server import McpTestServer

SERVER_TOOLS = {"add", "echo", "fail", "slow_read", "slow_write"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test server is on loopback: allowed as an operator would."""
    return settings.model_copy(update={"egress_allowed_private_networks": "127.0.0.0/8"})


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer(token=f"tok-{uuid.uuid4().hex}", slow_seconds=0.2)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def allow(server: McpTestServer) -> dict[str, Any]:
    return {"allowed": [f"http://127.0.0.1:{server.port}/"]}


def scoped(server: McpTestServer, name: str = "calc") -> dict[str, Any]:
    return {name: {"url": server.url, "headers": server.headers}}


async def report(api: Api, session_id: str, **params: Any) -> dict[str, Any]:
    response = await api.client.get(f"/v1/sessions/{session_id}/context-report", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def mcp_tools(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in body["tools"] if t["source"] == "mcp"}


def section(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((s for s in body["sections"] if s["key"] == key), None)


async def test_scoped_server_tools_are_discovered_then_cached(
    api: Api, mcp_server: McpTestServer
) -> None:
    sid = await new_session(api, mcpServers=scoped(mcp_server), network_access=allow(mcp_server))
    first = await report(api, sid)
    (listing,) = first["mcp_tool_listings"]
    assert (listing["server"], listing["server_id"], listing["status"]) == (
        "calc",
        None,
        "discovered",
    )
    expected = {f"mcp_calc__{name}" for name in SERVER_TOOLS}
    assert set(listing["tools"]) == expected
    tools = mcp_tools(first)
    assert set(tools) == expected
    assert tools["mcp_calc__add"]["description"] == "Add two integers."
    assert set(tools["mcp_calc__add"]["parameters"]["properties"]) == {"a", "b"}
    assert tools["mcp_calc__add"]["capability_id"] is None
    mcp_section = section(first, "mcp_tools")
    assert mcp_section is not None and mcp_section["items"] == len(expected)
    assert mcp_section["tokens"] > 0
    contributions = first["contributions"]
    assert {c["source_id"] for c in contributions if c["section_key"] == "mcp_tools"} == expected
    without_mcp = first["estimated_prompt_tokens"]
    assert first["estimated_input_tokens"] == without_mcp + mcp_section["tokens"]
    assert mcp_server.token not in str(first)  # header values never appear

    # Cached now: with the server gone the report still lists them, without connecting.
    mcp_server.stop()
    again = await report(api, sid)
    assert again["mcp_tool_listings"][0]["status"] == "cached"
    assert set(mcp_tools(again)) == expected


async def test_registered_server_tools_carry_its_capability(
    api: Api, mcp_server: McpTestServer
) -> None:
    created = await api.client.post(
        "/v1/mcp-servers",
        json={"name": "reg", "url": mcp_server.url, "headers": mcp_server.headers},
    )
    assert created.status_code == 201, created.text
    server_id = created.json()["id"]
    sid = await new_session(
        api, capabilities=[{"ref": f"mcp:{server_id}"}], network_access=allow(mcp_server)
    )
    body = await report(api, sid)
    (listing,) = body["mcp_tool_listings"]
    assert (listing["server"], listing["server_id"], listing["status"]) == (
        "reg",
        server_id,
        "discovered",
    )
    tools = mcp_tools(body)
    assert set(tools) == {f"mcp_reg__{name}" for name in SERVER_TOOLS}
    assert {t["capability_id"] for t in tools.values()} == {f"mcp:{server_id}"}


async def test_without_discovery_an_uncached_server_is_unknown(
    api: Api, mcp_server: McpTestServer
) -> None:
    sid = await new_session(api, mcpServers=scoped(mcp_server), network_access=allow(mcp_server))
    body = await report(api, sid, discover="false")
    (listing,) = body["mcp_tool_listings"]
    assert listing["status"] == "unknown" and listing["tools"] is None
    assert "unknown until the first turn" in listing["detail"]
    assert mcp_tools(body) == {}
    assert section(body, "mcp_tools") == {
        "key": "mcp_tools",
        "label": "MCP tool definitions",
        "tokens": 0,
        "items": 0,
    }
    # Discovery afterwards lists it, and discover=false then reads the cache.
    assert (await report(api, sid))["mcp_tool_listings"][0]["status"] == "discovered"
    assert (await report(api, sid, discover="false"))["mcp_tool_listings"][0]["status"] == "cached"


async def test_a_turns_listing_is_the_reports_cache(engine: Api, mcp_server: McpTestServer) -> None:
    sid = await new_session(
        engine,
        {"response": {"type": "echo"}},
        mcpServers=scoped(mcp_server),
        network_access=allow(mcp_server),
    )
    await send(engine, sid, "hello")
    await wait_turns_ended(engine, sid)
    mcp_server.stop()
    body = await report(engine, sid, discover="false")
    assert body["mcp_tool_listings"][0]["status"] == "cached"
    assert "mcp_calc__add" in mcp_tools(body)


async def test_an_unreachable_server_is_reported_with_the_reason(
    api: Api, mcp_server: McpTestServer
) -> None:
    sid = await new_session(api, mcpServers=scoped(mcp_server), network_access=allow(mcp_server))
    mcp_server.stop()
    body = await report(api, sid)
    (listing,) = body["mcp_tool_listings"]
    assert listing["status"] == "unreachable" and listing["tools"] is None
    assert listing["detail"]
    assert mcp_tools(body) == {}


async def test_the_egress_guard_applies_to_discovery(api: Api, mcp_server: McpTestServer) -> None:
    """A session whose network access does not allow the server: listing is refused, never
    made, and the report says so."""
    sid = await new_session(
        api, mcpServers=scoped(mcp_server), network_access={"allowed": ["example.com"]}
    )
    body = await report(api, sid)
    (listing,) = body["mcp_tool_listings"]
    assert listing["status"] == "unreachable"
    assert listing["detail"].startswith("egress refused (not_allowed)")
    assert mcp_tools(body) == {}


async def test_a_session_without_mcp_servers_has_no_mcp_section(api: Api) -> None:
    sid = await new_session(api)
    body = await report(api, sid)
    assert body["mcp_tool_listings"] == []
    assert section(body, "mcp_tools") is None
    assert body["estimated_input_tokens"] == body["estimated_prompt_tokens"]
