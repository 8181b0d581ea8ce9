"""Header values of scoped ``mcpServers`` (harness, agent, session layers) are write-only: every
response lists their names only, the database holds them sealed, an update that leaves them out
keeps them, and the real MCP server on 127.0.0.1 still receives them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update
from tests.conftest import POSTGRES_URL, Api
from tests.engine.conftest import new_session, send, wait_turns_ended
from tests.mcp_test_server import McpTestServer

from everloop.bootstrap_admin import header_sealer
from everloop.config import Settings
from everloop.store import migrate
from everloop.store.tables import agent_versions, agents, sessions

ADD = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "add", "name": "mcp_calc__add", "arguments": {"a": 2, "b": 40}}],
}


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    engine = create_engine(migrate.sync_url(database_url))
    try:
        with engine.begin() as connection:
            cfg = migrate.alembic_config()
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, revision)
    finally:
        engine.dispose()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test servers are on loopback: allowed as an operator would, named per session."""
    return settings.model_copy(update={"egress_allowed_private_networks": "127.0.0.0/8"})


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer(token=f"tok-{uuid.uuid4().hex}")
    server.start()
    yield server
    server.stop()


def servers(server: McpTestServer, **headers: str) -> dict[str, Any]:
    return {"calc": {"url": server.url, "headers": headers or server.headers}}


def allow(server: McpTestServer) -> dict[str, Any]:
    return {"allowed": [f"http://127.0.0.1:{server.port}/"]}


async def added(api: Api, sid: str, turns: int = 1) -> bool:
    """Run a turn asking for ``add``: whether the MCP call succeeded (the server lists its
    tools only to a request with the right Authorization header)."""
    await send(api, sid, "add please")
    found = await wait_turns_ended(api, sid, turns)
    done = [e["data"] for e in found if e["type"] == "tool.completed"]
    return len(done) == turns and bool(done[-1]["success"])


async def assert_hidden(api: Api, server: McpTestServer, paths: list[str]) -> None:
    """The token is in no response of ``paths``, nor in any file of the SQLite database."""
    for path in paths:
        response = await api.client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert server.token not in response.text, path
    if not POSTGRES_URL:
        holding = files_holding(Path(api.services.settings.data_dir), server.token.encode())
        assert holding == []


def files_holding(data_dir: Path, needle: bytes) -> list[str]:
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert "everloop.db" in [p.name for p in files]
    return [str(p) for p in files if needle in p.read_bytes()]


async def test_session_headers_are_sealed_and_still_sent(
    engine: Api, mcp_server: McpTestServer
) -> None:
    sid = await new_session(
        engine, ADD, mcpServers=servers(mcp_server), network_access=allow(mcp_server)
    )
    session = (await engine.client.get(f"/v1/sessions/{sid}")).json()
    assert session["mcpServers"] == {
        "calc": {"url": mcp_server.url, "header_names": ["Authorization"]}
    }
    assert await added(engine, sid)
    assert mcp_server.calls["add"] == 1
    await assert_hidden(
        engine,
        mcp_server,
        [
            f"/v1/sessions/{sid}",
            "/v1/sessions",
            f"/v1/sessions/{sid}/events",
            f"/v1/sessions/{sid}/messages",
            f"/v1/sessions/{sid}/context-report",
        ],
    )


async def test_agent_headers_survive_updates_without_them(
    engine: Api, mcp_server: McpTestServer
) -> None:
    api = engine
    created = await api.client.post(
        "/v1/agents",
        json={"name": "calc-agent", "system_prompt": "add", "mcpServers": servers(mcp_server)},
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["mcpServers"]["calc"] == {"url": mcp_server.url, "header_names": ["Authorization"]}
    aid = agent["id"]
    # A client that cannot read the values sends the entry back without them: they are kept.
    kept = await api.client.patch(
        f"/v1/agents/{aid}",
        json={"description": "x", "mcpServers": {"calc": agent["mcpServers"]["calc"]}},
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["mcpServers"] == agent["mcpServers"]
    sid = await new_session(api, ADD, agent_id=aid, network_access=allow(mcp_server))
    assert await added(api, sid)
    # Headers are never carried over to another URL: left out there, they are a 422.
    moved = await api.client.patch(
        f"/v1/agents/{aid}",
        json={"mcpServers": {"calc": {"url": "http://127.0.0.1:9/mcp"}}},
    )
    assert moved.status_code == 422, moved.text
    assert moved.json()["error"]["field"] == "mcpServers.calc.headers"
    assert (await api.client.get(f"/v1/agents/{aid}")).json()["mcpServers"] == agent["mcpServers"]
    versions = (await api.client.get(f"/v1/agents/{aid}/versions")).json()
    assert versions and all(
        v["authored_config"]["mcp_servers"]["calc"]["header_names"] == ["Authorization"]
        for v in versions
    )
    preview = await api.client.post(
        "/v1/agents/preview", json={"system_prompt": "p", "mcpServers": servers(mcp_server)}
    )
    assert preview.status_code == 200, preview.text
    await assert_hidden(
        api,
        mcp_server,
        [
            f"/v1/agents/{aid}",
            "/v1/agents",
            f"/v1/agents/{aid}/versions",
            f"/v1/sessions/{sid}",
            f"/v1/sessions/{sid}/events",
            f"/v1/sessions/{sid}/context-report",
        ],
    )
    assert mcp_server.token not in preview.text


async def test_harness_headers_are_sealed(engine: Api, mcp_server: McpTestServer) -> None:
    created = await engine.client.post(
        "/v1/harnesses", json={"name": "calc-harness", "mcpServers": servers(mcp_server)}
    )
    assert created.status_code == 201, created.text
    hid = created.json()["id"]
    renamed = await engine.client.patch(
        f"/v1/harnesses/{hid}",
        json={"mcpServers": {"calc": {"url": mcp_server.url, "header_names": ["X-Forged"]}}},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["mcpServers"]["calc"]["header_names"] == ["Authorization"]
    sid = await new_session(engine, ADD, harness_id=hid, network_access=allow(mcp_server))
    assert await added(engine, sid)
    await assert_hidden(engine, mcp_server, [f"/v1/harnesses/{hid}", "/v1/harnesses"])


async def test_a_bad_header_is_a_422_naming_it(engine: Api, mcp_server: McpTestServer) -> None:
    bad = await engine.client.post(
        "/v1/sessions", json={"mcpServers": servers(mcp_server, Authorization="a\r\nX-Evil: 1")}
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["field"] == "mcpServers.calc.headers.Authorization"


async def test_rows_stored_before_sealing_are_read_and_never_shown(
    engine: Api, mcp_server: McpTestServer
) -> None:
    sid = await new_session(engine, ADD, network_access=allow(mcp_server))
    async with engine.services.db.write() as conn:
        await conn.execute(
            update(sessions).where(sessions.c.id == sid).values(mcp_servers=servers(mcp_server))
        )
    session = await engine.client.get(f"/v1/sessions/{sid}")
    assert mcp_server.token not in session.text
    assert session.json()["mcpServers"]["calc"]["header_names"] == ["Authorization"]
    assert await added(engine, sid)
    assert mcp_server.calls["add"] == 1


async def test_the_migration_seals_values_stored_before(
    engine: Api, mcp_server: McpTestServer
) -> None:
    api = engine
    created = await api.client.post("/v1/agents", json={"name": "old-agent", "system_prompt": "a"})
    aid = created.json()["id"]
    sid = await new_session(api, ADD, agent_id=aid, network_access=allow(mcp_server))
    plain = servers(mcp_server)
    # What an older everloop wrote: plain header values in the rows and in the agent's version.
    async with api.services.db.write() as conn:
        for table, row_id in ((agents, aid), (sessions, sid)):
            await conn.execute(update(table).where(table.c.id == row_id).values(mcp_servers=plain))
        version = (
            await conn.execute(select(agent_versions).where(agent_versions.c.agent_id == aid))
        ).one()
        config = {**version.authored_config, "mcp_servers": plain}
        await conn.execute(
            update(agent_versions)
            .where(agent_versions.c.id == version.id)
            .values(authored_config=config)
        )
    settings = api.services.settings
    # The schema of the revision the rows were "written" at: later revisions undone first.
    await asyncio.to_thread(downgrade, settings.app_database_url, "0014_seal_mcp_headers")
    async with api.services.db.write() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0013_token_expiry'"))
    await asyncio.to_thread(
        migrate.upgrade, settings.app_database_url, seal_headers=header_sealer(settings)
    )
    async with api.services.db.read() as conn:
        stored = [
            json.dumps(r)
            for r in (
                await conn.scalar(select(agents.c.mcp_servers).where(agents.c.id == aid)),
                await conn.scalar(select(sessions.c.mcp_servers).where(sessions.c.id == sid)),
                await conn.scalar(
                    select(agent_versions.c.authored_config).where(
                        agent_versions.c.id == version.id
                    )
                ),
            )
        ]
    assert all("headers_sealed" in s and mcp_server.token not in s for s in stored), stored
    # Still sent: the session runs with the (now sealed) agent-layer server.
    assert await added(api, sid)
