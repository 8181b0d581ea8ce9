"""The file_system tools in a shared workspace: a file one session's turn writes, another
session's turn reads; the writer is recorded; edit_file's compare-and-set names the current
hash; a fork copies the files into its own workspace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended

from everloop.store.tables import workspace_files

STALE = "sha256:" + "0" * 64


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def _rule(when: str, tool: str, **arguments: Any) -> dict[str, Any]:
    return {"when": when, "name": tool, "arguments": arguments}


async def _turn(api: Api, session_id: str, text: str, number: int) -> dict[str, Any]:
    """Send ``text``; the one ``tool.completed`` data of that turn."""
    await send(api, session_id, text)
    found = await wait_turns_ended(api, session_id, count=number)
    turn_id = [e for e in found if e["type"] == "input.message"][-1]["context"]["turn_id"]
    [completed] = [
        e["data"]
        for e in found
        if e["type"] == "tool.completed" and e["context"]["turn_id"] == turn_id
    ]
    return completed  # type: ignore[no-any-return]


def _result(completed: dict[str, Any]) -> Any:
    assert completed["success"], completed
    return json.loads(completed["result"][0]["text"])


SCRIPT = {
    "response": {"type": "fixed", "text": "ok"},
    "tool_calls": [
        _rule("^write", "write_file", path="/shared/plan.md", content="step one\n"),
        _rule("^read", "read_file", path="/shared/plan.md"),
        _rule("^stale", "edit_file", path="/shared/plan.md", content="mine", expected_hash=STALE),
        _rule("^append", "edit_file", path="/shared/plan.md", old_string="one", new_string="two"),
    ],
}


async def test_two_sessions_share_a_workspace_through_turns(engine: Api) -> None:
    api = engine
    created = await api.client.post("/v1/workspaces", json={"name": "pair"})
    wsp = created.json()["id"]
    first = await new_session(api, SCRIPT, capabilities=[{"ref": "file_system"}], workspace_id=wsp)
    second = await new_session(api, SCRIPT, capabilities=[{"ref": "file_system"}], workspace_id=wsp)

    written = _result(await _turn(api, first, "write the plan", 1))
    assert written["created"] is True and written["session_id"] == first
    read = _result(await _turn(api, second, "read the plan", 1))
    assert read["content"] == "step one\n" and read["content_hash"] == written["content_hash"]

    stale = await _turn(api, second, "stale edit", 2)
    assert not stale["success"]
    assert written["content_hash"] in stale["error"] and "changed" in stale["error"]
    edited = _result(await _turn(api, second, "append", 3))
    assert edited["session_id"] == second

    # The last writer is recorded on the entry; the first session reads the second's edit.
    async with api.services.db.read() as conn:
        writer = await conn.scalar(
            select(workspace_files.c.updated_by_session_id).where(
                workspace_files.c.workspace_id == wsp,
                workspace_files.c.path == "/shared/plan.md",
            )
        )
    assert writer == second
    again = _result(await _turn(api, first, "read again", 2))
    assert again["content"] == "step two\n"

    # Deleting one session keeps the shared workspace and its files for the other.
    assert (await api.client.delete(f"/v1/sessions/{first}")).status_code == 204
    kept = await api.client.get(f"/v1/sessions/{second}/fs/shared/plan.md")
    assert kept.status_code == 200 and kept.json()["content"] == "step two\n"


async def test_a_fork_of_a_shared_workspace_session_copies_the_files(engine: Api) -> None:
    api = engine
    wsp = (await api.client.post("/v1/workspaces", json={"name": "origin"})).json()["id"]
    parent = await new_session(api, SCRIPT, capabilities=[{"ref": "file_system"}], workspace_id=wsp)
    _result(await _turn(api, parent, "write the plan", 1))
    forked = await api.client.post(f"/v1/sessions/{parent}/fork", json={})
    assert forked.status_code == 201, forked.text
    fork = forked.json()
    assert fork["workspace_id"] not in (None, wsp)
    fs = f"/v1/sessions/{fork['id']}/fs/shared/plan.md"
    assert (await api.client.get(fs)).json()["content"] == "step one\n"
    # The copy is the fork's own: its writes do not reach the shared workspace.
    assert (await api.client.put(fs, json={"content": "forked"})).status_code == 200
    shared = await api.client.get(f"/v1/workspaces/{wsp}/fs/shared/plan.md")
    assert shared.json()["content"] == "step one\n"


async def test_an_archived_workspace_refuses_tool_writes_until_restored(engine: Api) -> None:
    api = engine
    wsp = (await api.client.post("/v1/workspaces", json={"name": "frozen"})).json()["id"]
    sid = await new_session(api, SCRIPT, capabilities=[{"ref": "file_system"}], workspace_id=wsp)
    _result(await _turn(api, sid, "write the plan", 1))
    assert (await api.client.delete(f"/v1/workspaces/{wsp}")).status_code in (200, 204)

    refused = await _turn(api, sid, "append", 2)
    assert not refused["success"] and "archived" in refused["error"]
    read = _result(await _turn(api, sid, "read it", 3))
    assert read["content"] == "step one\n"

    restored = await api.client.patch(f"/v1/workspaces/{wsp}", json={"status": "active"})
    assert restored.status_code == 200, restored.text
    assert _result(await _turn(api, sid, "append", 4))["content_hash"] != read["content_hash"]
