"""Creating a session: the response is the session as a read gives it, and a refused create
leaves no trace (no session row, no event, no file)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from everloop import ids
from everloop.store.tables import events, harnesses, sessions, workspace_files
from tests.api.conftest import assert_error, create_agent, create_session
from tests.conftest import Api

OBJ = {"type": "object", "properties": {}}


def client_tool(name: str) -> dict[str, Any]:
    return {"type": "client_side", "name": name, "description": f"{name} tool", "parameters": OBJ}


async def _rows(api: Api) -> tuple[int, int, int]:
    async with api.services.db.read() as conn:
        counted = []
        for table in (sessions, events, workspace_files):
            counted.append(await conn.scalar(select(func.count()).select_from(table)) or 0)
    return counted[0], counted[1], counted[2]


async def _harness(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/harnesses", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_the_created_session_is_what_a_read_returns(api: Api) -> None:
    parent = await _harness(
        api,
        "parent",
        capabilities=[{"ref": "test_math"}],
        initial_files=[{"path": "/from-parent.txt", "content": "p"}],
    )
    child = await _harness(api, "child", parent_harness_id=parent["id"])
    agent = await create_agent(api, "creator", capabilities=[{"ref": "current_time"}])
    versioned = await create_agent(api, "versioned")
    version = await api.client.post(
        f"/v1/agents/{versioned['id']}/versions", json={"change_kind": "minor", "summary": "v"}
    )
    assert version.status_code in (200, 201), version.text
    bodies: list[dict[str, Any]] = [
        {},
        {"title": "Fields", "locale": "uk-UA", "tags": ["a", "b"], "hints": {"x": 1}},
        {"harness_id": child["id"], "capabilities": [{"ref": "file_system"}]},
        {"harness_name": "child", "initial_files": [{"path": "/own.txt", "content": "o"}]},
        {"agent_id": agent["id"], "tools": [client_tool("ask_user")]},
        {"agent_name": "versioned", "harness_name": "generic"},
        {"agent_id": agent["id"], "max_iterations": 3, "parallel_tool_calls": False},
        {"blueprint_id": "research_pack", "blueprint_config": {"topic": "tides"}},
        {"id": ids.new_id("session"), "system_prompt": "own prompt"},
        {"network_access": {"mode": "allow_all"}},
    ]
    for body in bodies:
        created = await api.client.post("/v1/sessions", json=body)
        assert created.status_code == 201, (body, created.text)
        read = await api.client.get(f"/v1/sessions/{created.json()['id']}")
        assert read.status_code == 200, read.text
        assert created.json() == read.json(), body
        listed = (await api.client.get("/v1/sessions", params={"limit": 1})).json()["data"]
        assert listed == [read.json()], body


async def test_the_first_event_is_session_started_at_sequence_one(api: Api) -> None:
    session = await create_session(api, title="logged")
    got = await api.client.get(f"/v1/sessions/{session['id']}/events")
    assert got.status_code == 200, got.text
    data = got.json()["data"]
    assert [(e["type"], e["sequence"]) for e in data] == [("session.started", 1)]
    # The log goes on from there.
    async with api.services.db.read() as conn:
        last = await conn.scalar(
            select(sessions.c.last_sequence).where(sessions.c.id == session["id"])
        )
    assert last == 1


async def test_a_refused_create_writes_nothing(api: Api) -> None:
    await create_session(api, title="kept", initial_files=[{"path": "/k.txt", "content": "k"}])
    before = await _rows(api)
    a = await _harness(api, "cyc-a")
    b = await _harness(api, "cyc-b", parent_harness_id=a["id"])
    # A cycle cannot be made through the API; make one in the database as another process
    # could have, so that only the session's assembly refuses it.
    async with api.services.db.write() as conn:
        await conn.execute(
            harnesses.update().where(harnesses.c.id == a["id"]).values(parent_harness_id=b["id"])
        )
    asker = await create_agent(api, "asker", tools=[client_tool("ask_user")])
    archived = await create_agent(api, "gone")
    assert (await api.client.delete(f"/v1/agents/{archived['id']}")).status_code in (200, 204)
    taken = (await api.client.get("/v1/sessions")).json()["data"][0]["id"]
    refused: list[tuple[dict[str, Any], int, str | None]] = [
        ({"harness_id": b["id"], "initial_files": [{"path": "/x", "content": "x"}]}, 422, None),
        # A client tool shadowing a capability's tool (a session repeating its agent's tool
        # merges instead: later layer wins).
        (
            {
                "agent_id": asker["id"],
                "capabilities": [{"ref": "current_time"}],
                "tools": [client_tool("get_current_time")],
            },
            422,
            None,
        ),
        ({"initial_files": [{"path": "../escape", "content": "x"}]}, 400, "initial_files.0.path"),
        ({"capabilities": [{"ref": "no_such"}]}, 422, "capabilities.0.ref"),
        ({"capabilities": [{"ref": f"mcp:{ids.new_id('mcp')}"}]}, 422, "capabilities.0.ref"),
        ({"model_id": ids.new_id("model")}, 422, "model_id"),
        ({"agent_id": archived["id"]}, 422, "agent_id"),
        ({"agent_id": ids.new_id("agent")}, 404, None),
        ({"harness_name": "nope"}, 404, None),
        ({"id": taken, "title": "again"}, 409, "id"),
        ({"blueprint_config": {"a": 1}}, 422, "blueprint_config"),
    ]
    for body, status, field in refused:
        response = await api.client.post("/v1/sessions", json=body)
        error = assert_error(response, status, field=field)
        assert await _rows(api) == before, body
        if body.get("harness_id") == b["id"]:
            assert "cycle" in error["message"], error
