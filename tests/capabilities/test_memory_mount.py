"""Memories mounted in the file tools: ``/memory/<name>/...`` reaches the memory's files in
real turns (llmsim scripts); a read-only mount refuses writes with a readable tool error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.api.conftest import create_agent
from tests.conftest import Api
from tests.engine.conftest import new_session, scripted_model, send, wait_turns_ended


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def _rule(when: str, tool: str, **arguments: Any) -> dict[str, Any]:
    return {"when": when, "name": tool, "arguments": arguments}


SCRIPT = {
    "response": {"type": "fixed", "text": "ok"},
    "tool_calls": [
        _rule("^show", "read_file", path="/memory/handbook/guide.md"),
        _rule("^save", "write_file", path="/memory/team/people/ada.md", content="Ada: tea"),
        _rule("^look", "list_directory", path="/memory/team", recursive=True),
        _rule("^scrawl", "write_file", path="/memory/handbook/guide.md", content="mine now"),
        _rule("^local", "write_file", path="/notes.md", content="workspace file"),
        _rule("^stranger", "read_file", path="/memory/elsewhere/x.md"),
        _rule("^prune", "delete_file", path="/memory/team/people"),
        _rule("^clear", "delete_file", path="/memory/team/people", recursive=True),
    ],
}


async def _memory(api: Api, name: str, files: dict[str, str]) -> str:
    made = await api.client.post("/v1/memories", json={"name": name})
    assert made.status_code == 201, made.text
    memory_id = str(made.json()["id"])
    for path, content in files.items():
        put = await api.client.post(f"/v1/memories/{memory_id}/fs{path}", json={"content": content})
        assert put.status_code in (200, 201), put.text
    return memory_id


async def _tool(api: Api, session_id: str, text: str, number: int) -> dict[str, Any]:
    await send(api, session_id, text)
    found = await wait_turns_ended(api, session_id, count=number)
    turn_id = [e for e in found if e["type"] == "input.message"][-1]["context"]["turn_id"]
    [completed] = [
        e["data"]
        for e in found
        if e["type"] == "tool.completed" and e["context"]["turn_id"] == turn_id
    ]
    return dict(completed)


async def test_file_tools_reach_mounted_memories(engine: Api) -> None:
    api = engine
    handbook = await _memory(api, "handbook", {"/guide.md": "Be kind."})
    team = await _memory(api, "team", {})
    model = await scripted_model(api, SCRIPT)
    agent = await create_agent(
        api,
        "mounted",
        default_model_id=model,
        capabilities=[
            {"ref": "file_system"},
            {
                "ref": "memory",
                "config": {
                    "memories": [
                        {"name": "handbook", "mode": "read_only"},
                        {"name": "team", "mode": "read_write"},
                    ]
                },
            },
        ],
    )
    sid = await new_session(api, agent_id=agent["id"])

    shown = await _tool(api, sid, "show the guide", 1)
    assert shown["success"], shown
    read = json.loads(shown["result"][0]["text"])
    assert (read["path"], read["content"]) == ("/memory/handbook/guide.md", "Be kind.")

    saved = await _tool(api, sid, "save ada", 2)
    assert saved["success"], saved
    assert json.loads(saved["result"][0]["text"])["path"] == "/memory/team/people/ada.md"
    stored = await api.client.get(f"/v1/memories/{team}/fs/people/ada.md")
    assert stored.status_code == 200 and stored.json()["content"] == "Ada: tea"

    looked = await _tool(api, sid, "look at the team", 3)
    entries = json.loads(looked["result"][0]["text"])["entries"]
    assert {e["path"] for e in entries} == {"/memory/team/people", "/memory/team/people/ada.md"}

    refused = await _tool(api, sid, "scrawl over the guide", 4)
    assert refused["success"] is False and "read-only" in (refused["error"] or "")
    unchanged = await api.client.get(f"/v1/memories/{handbook}/fs/guide.md")
    assert unchanged.json()["content"] == "Be kind."

    local = await _tool(api, sid, "local note", 5)
    assert local["success"], local
    in_workspace = await api.client.get(f"/v1/sessions/{sid}/fs/notes.md")
    assert in_workspace.status_code == 200

    stranger = await _tool(api, sid, "stranger memory", 6)
    assert stranger["success"] is False and "elsewhere" in (stranger["error"] or "")

    pruned = await _tool(api, sid, "prune people", 7)
    assert pruned["success"] is False and "not empty" in (pruned["error"] or "")
    cleared = await _tool(api, sid, "clear people", 8)
    assert cleared["success"], cleared
    gone = await api.client.get(f"/v1/memories/{team}/fs/people/ada.md")
    assert gone.status_code == 404
