"""Subagents: a parent turn spawns child sessions, waits for them durably, uses their results."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import Api
from tests.engine.conftest import new_session, send, types_of, wait_turns_ended

pytestmark = pytest.mark.timeout(60)

SUBAGENTS = [{"ref": "subagents"}]


def spawn(name: str, task: str, **extra: Any) -> dict[str, Any]:
    return {"name": "spawn_subagent", "arguments": {"name": name, "task": task, **extra}}


async def session(api: Api, sid: str) -> dict[str, Any]:
    got = await api.client.get(f"/v1/sessions/{sid}")
    assert got.status_code == 200, got.text
    return dict(got.json())


def completed(found: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in found if e["type"] == "tool.completed" and e["data"]["tool_name"] == name]


async def test_a_parent_spawns_a_child_and_uses_its_result(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "delegate", **spawn("researcher", "research alpha")}],
    }
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "please delegate this")
    found = await wait_turns_ended(engine, sid)
    assert found[-1]["type"] == "session.idled"
    kinds = types_of(found)
    assert "turn.completed" in kinds
    for kind in ("task.created", "subagent.spawned", "task.updated", "subagent.completed"):
        assert kinds.count(kind) == 1, (kind, kinds)
    [done] = completed(found, "spawn_subagent")
    assert done["data"]["status"] == "success"
    answer = found[[e["type"] for e in found].index("turn.completed")]["data"]
    assert "Echo: research alpha" in answer["final_answer_preview"]
