"""The memory capability through real turns (llmsim scripts): a note remembered in one session
is recalled in another session of the same agent; a read-only mount refuses writes; forget."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.api.conftest import create_agent
from tests.conftest import Api
from tests.engine.conftest import new_session, scripted_model, send, wait_turns_ended

from everloop.capabilities.base import ToolContext
from everloop.capabilities.memory import resolve_memory_path
from everloop.errors import Forbidden


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def _rule(when: str, tool: str, **arguments: Any) -> dict[str, Any]:
    return {"when": when, "name": tool, "arguments": arguments}


async def _turn(api: Api, session_id: str, text: str, number: int) -> list[dict[str, Any]]:
    await send(api, session_id, text)
    found = await wait_turns_ended(api, session_id, count=number)
    turn_id = [e for e in found if e["type"] == "input.message"][-1]["context"]["turn_id"]
    return [
        e["data"]
        for e in found
        if e["type"] == "tool.completed" and e["context"]["turn_id"] == turn_id
    ]


def _result(completed: dict[str, Any]) -> Any:
    assert completed["success"], completed
    return json.loads(completed["result"][0]["text"])


SCRIPT = {
    "response": {"type": "fixed", "text": "ok"},
    "tool_calls": [
        _rule("^note", "remember", content="The user's favourite colour is teal."),
        _rule("^named", "remember", content="Deploys happen on Tuesdays.", path="/ops.md"),
        _rule("^ask", "recall", query="favourite colour"),
        _rule("^drop", "forget", path="/ops.md"),
        _rule("^guide", "recall", query="guide", memory="handbook"),
        _rule("^scribble", "remember", content="x", memory="handbook"),
    ],
}


async def test_remember_in_one_session_recall_in_another(engine: Api) -> None:
    api = engine
    model = await scripted_model(api, SCRIPT)
    agent = await create_agent(
        api, "rememberer", default_model_id=model, capabilities=[{"ref": "memory"}]
    )
    first = await new_session(api, agent_id=agent["id"])
    [remembered] = await _turn(api, first, "note this", 1)
    stored = _result(remembered)
    assert stored["memory"] == agent["id"] and stored["created"] is True
    [named] = await _turn(api, first, "named note", 2)
    assert _result(named)["path"] == "/ops.md"

    # The implicit memory is a real memory of the org, readable through the API.
    listed = (await api.client.get("/v1/memories")).json()["data"]
    [memory] = [m for m in listed if m["name"] == agent["id"]]
    files = (await api.client.get(f"/v1/memories/{memory['id']}/fs")).json()["data"]
    assert {f["path"] for f in files} == {"/notes", "/ops.md"}

    second = await new_session(api, agent_id=agent["id"])
    [recalled] = await _turn(api, second, "ask what colour", 1)
    results = _result(recalled)["results"]
    assert results[0]["content"] == "The user's favourite colour is teal."
    assert results[0]["memory"] == agent["id"]
    [forgot] = await _turn(api, second, "drop the ops note", 2)
    assert _result(forgot)["deleted"] is True
    missing = await api.client.get(f"/v1/memories/{memory['id']}/fs/ops.md")
    assert missing.status_code == 404


async def test_read_only_mount_refuses_writes(engine: Api) -> None:
    api = engine
    handbook = await api.client.post("/v1/memories", json={"name": "handbook"})
    memory_id = handbook.json()["id"]
    fs = f"/v1/memories/{memory_id}/fs"
    await api.client.post(f"{fs}/guide.md", json={"content": "The guide says: be kind."})
    model = await scripted_model(api, SCRIPT)
    config = {"memories": [{"name": "handbook", "mode": "read_only"}]}
    agent = await create_agent(
        api, "reader", default_model_id=model, capabilities=[{"ref": "memory", "config": config}]
    )
    sid = await new_session(api, agent_id=agent["id"])
    [read] = await _turn(api, sid, "guide please", 1)
    assert _result(read)["results"][0]["path"] == "/guide.md"
    [write] = await _turn(api, sid, "scribble", 2)
    assert not write["success"] and "read-only" in write["error"], write
    [implicit] = await _turn(api, sid, "note this", 3)
    assert not implicit["success"] and "read-only" in implicit["error"], implicit
    listed = (await api.client.get(fs, params={"recursive": "true"})).json()["data"]
    assert [f["path"] for f in listed] == ["/guide.md"]

    # The file tools' mount: /memory/<name>/... resolves to the memory, read-only here.
    async with api.services.db.write() as conn:
        context = ToolContext(
            sid,
            api.org_id,
            "turn",
            "call",
            connection=conn,
            agent_id=agent["id"],
            capability_configs={"memory": config},
        )
        limits = api.services.memories.limits
        resolved = await resolve_memory_path(conn, context, "/memory/handbook/guide.md", limits)
        assert resolved is not None
        files, inner = resolved
        assert inner == "/guide.md"
        assert (await files.read(inner)).content == b"The guide says: be kind."
        with pytest.raises(Forbidden):
            await files.write(inner, b"mine")
        assert await resolve_memory_path(conn, context, "/workspace/a.md", limits) is None
