"""Subagents over HTTP: the parent and its children talk to the llmsim HTTP simulator through a
real SDK driver (``openai_completions``). Writing ``spawn_subagent({...})`` in the user's text
makes the simulator call the tool with those arguments; several such calls are parallel calls.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from tests.conftest import Api
from tests.engine.conftest import events, send, types_of, wait_turns_ended
from tests.llm.conftest import LlmSimServer
from tests.llm.test_drivers_turns import http_model

from everloop.config import Settings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The simulator is on loopback: the operator allows it."""
    return settings.model_copy(update={"egress_allowed_private_networks": "127.0.0.0/8"})


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def spawn_text(name: str, task: str) -> str:
    return "spawn_subagent(" + json.dumps({"name": name, "task": task}) + ")"


async def parent_session(api: Api, server: LlmSimServer) -> str:
    model = await http_model(api, server, "sim", key=f"sk-test-{uuid.uuid4().hex}")
    created = await api.client.post(
        "/v1/sessions", json={"model_id": model, "capabilities": [{"ref": "subagents"}]}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_one_child_over_http(engine: Api, llmsim: LlmSimServer) -> None:
    sid = await parent_session(engine, llmsim)
    await send(engine, sid, "Please " + spawn_text("scout", "say alpha"))
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found), found[-3:]
    [ended] = [e for e in found if e["type"] == "subagent.completed"]
    assert ended["data"]["result_preview"] == "Echo: say alpha"
    final = [e for e in found if e["type"] == "output.message.completed"][-1]
    assert "Echo: say alpha" in final["data"]["message"]["content"][0]["text"]
    child = (await engine.client.get(f"/v1/sessions/{ended['data']['session_id']}")).json()
    assert (child["parent_session_id"], child["subagent_status"]) == (sid, "completed")
    # The child ran on the parent's model, over HTTP too.
    generations = [e for e in await events(engine, child["id"]) if e["type"] == "llm.generation"]
    assert (
        generations and generations[0]["data"]["metadata"]["provider"] == "sim-openai_completions"
    )


async def test_three_children_over_http(engine: Api, llmsim: LlmSimServer) -> None:
    sid = await parent_session(engine, llmsim)
    text = " and ".join(spawn_text(f"w{i}", f"say {i}") for i in range(3))
    await send(engine, sid, text)
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found), found[-3:]
    assert types_of(found).count("subagent.spawned") == 3
    assert sorted(
        e["data"]["result_preview"] for e in found if e["type"] == "subagent.completed"
    ) == ["Echo: say 0", "Echo: say 1", "Echo: say 2"]
    answer = [e for e in found if e["type"] == "output.message.completed"][-1]
    reply = answer["data"]["message"]["content"][0]["text"]
    assert all(f"Echo: say {i}" in reply for i in range(3))
    session = (await engine.client.get(f"/v1/sessions/{sid}")).json()
    assert session["tree_usage"]["input_tokens"] > session["usage"]["input_tokens"]
