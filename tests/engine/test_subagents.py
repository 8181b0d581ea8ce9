"""Subagents: a parent turn spawns child sessions, waits for them durably, and uses their results.

The llmsim script of a model drives both sides: its ``when`` rules match the last user text, so
the parent's message makes it call ``spawn_subagent`` and a child's task (its first message)
makes it call the child's tools. Children that must stay at work until the test lets them go
run an agent with a client-side tool ``hold``: they wait for its result, which the test posts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.conftest import POSTGRES_URL, Api
from tests.engine.conftest import (
    events,
    new_session,
    scripted_model,
    send,
    types_of,
    wait_for,
    wait_turns_ended,
)

from everloop.config import Settings
from everloop.store import agent_identities as identity_store

pytestmark = pytest.mark.timeout(60)

SUBAGENTS = [{"ref": "subagents"}]
HOLD = {
    "type": "client_side",
    "name": "hold",
    "description": "Wait until told to go on.",
    "parameters": {"type": "object", "properties": {}},
}
HOLD_RULE = {"when": "hold", "name": "hold", "arguments": {}}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The shared settings, with the subagent limits a test asks for (``indirect``)."""
    return settings.model_copy(update=getattr(request, "param", {}))


def spawn(name: str, task: str, **extra: Any) -> dict[str, Any]:
    return {"name": "spawn_subagent", "arguments": {"name": name, "task": task, **extra}}


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


async def session(api: Api, sid: str) -> dict[str, Any]:
    got = await api.client.get(f"/v1/sessions/{sid}")
    assert got.status_code == 200, got.text
    return dict(got.json())


async def agent(api: Api, name: str, script: dict[str, Any], **fields: Any) -> str:
    created = await api.client.post(
        "/v1/agents",
        json={
            "name": name,
            "system_prompt": "You help.",
            "default_model_id": await scripted_model(api, script),
            **fields,
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def completed(found: list[dict[str, Any]], tool: str) -> list[dict[str, Any]]:
    return [e for e in found if e["type"] == "tool.completed" and e["data"]["tool_name"] == tool]


def result_text(event: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in event["data"]["result"] or [])


def final_answer(found: list[dict[str, Any]]) -> str:
    texts = [e for e in found if e["type"] == "output.message.completed"]
    return str(texts[-1]["data"]["message"]["content"][0]["text"])


def children(found: list[dict[str, Any]]) -> dict[str, str]:
    """name -> child session id, from the parent's ``subagent.spawned`` events."""
    return {
        e["data"]["subagent_name"]: e["data"]["session_id"]
        for e in found
        if e["type"] == "subagent.spawned"
    }


async def held(api: Api, parent: str, count: int) -> dict[str, str]:
    """The children once ``count`` of them have been spawned and each waits on ``hold``."""
    found = await wait_for(api, parent, "subagent.spawned", count)
    kids = children(found)
    for child in kids.values():
        await wait_for(api, child, "tool.call_requested")
    return kids


async def release(api: Api, child: str) -> None:
    found = await events(api, child)
    [requested] = [e for e in found if e["type"] == "tool.call_requested"]
    call_id = requested["data"]["tool_calls"][0]["id"]
    posted = await api.client.post(
        f"/v1/sessions/{child}/tool-results",
        json={"tool_results": [{"tool_call_id": call_id, "result": {"go": True}}]},
    )
    assert posted.status_code == 200, posted.text


async def test_a_parent_spawns_a_child_and_uses_its_result(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "delegate", **spawn("researcher", "research alpha and add")},
            {"when": "add", **call("add", a=1, b=2)},
        ],
    }
    resident = await engine.client.post("/v1/agent-identities", json={"name": "resident"})
    assert resident.status_code == 201, resident.text
    identity_id = resident.json()["id"]
    # The parent's own session-level capabilities (test_math) are not the child's.
    sid = await new_session(
        engine,
        script,
        capabilities=[*SUBAGENTS, {"ref": "test_math"}],
        title="parent",
        agent_identity_id=identity_id,
    )
    await send(engine, sid, "please delegate this")
    found = await wait_turns_ended(engine, sid)
    kinds = types_of(found)
    assert "turn.completed" in kinds, kinds
    for kind in ("task.created", "subagent.spawned", "task.updated", "subagent.completed"):
        assert kinds.count(kind) == 1, (kind, kinds)
    [done] = completed(found, "spawn_subagent")
    assert done["data"]["status"] == "success"
    assert "Echo: research alpha and add" in result_text(done)
    assert "Echo: research alpha and add" in final_answer(found)

    child_id = children(found)["researcher"]
    child = await session(engine, child_id)
    parent = await session(engine, sid)
    assert child["parent_session_id"] == sid
    assert child["subagent_name"] == "researcher"
    assert child["subagent_task"] == "research alpha and add"
    assert child["subagent_status"] == "completed"
    assert child["finished_at"] is not None
    assert child["organization_id"] == parent["organization_id"]
    assert child["owner_principal_id"] == parent["owner_principal_id"]
    assert child["agent_identity_id"] == parent["agent_identity_id"] == identity_id
    assert (child["harness_id"], child["model_id"]) == (parent["harness_id"], parent["model_id"])
    assert child["capabilities"] == [] and child["tools"] == []
    assert parent["parent_session_id"] is None and parent["subagent_status"] is None
    # The identity is in use by both: the child counts too.
    refused = await engine.client.delete(f"/v1/agent-identities/{identity_id}")
    assert refused.status_code == 409 and "2 live sessions" in refused.text, refused.text

    # The child's events stay in the child's log: its first message is the task, and the
    # tool it was not given (add) was not called.
    child_log = await events(engine, child_id)
    assert child_log[1]["data"]["message"]["content"][0]["text"] == "research alpha and add"
    # It runs as the identity: its principal is recorded on the message that started it.
    resident_principal = resident.json()["principal_id"]
    assert child_log[1]["metadata"] == {
        "initiator": "subagent",
        "parent_session_id": sid,
        "acting_principal_id": resident_principal,
        "agent_identity_id": identity_id,
    }
    assert "tool.started" not in types_of(child_log)
    child_turns = {e["context"]["turn_id"] for e in child_log if e["context"].get("turn_id")}
    assert not child_turns & {e["context"].get("turn_id") for e in found}

    # The result handed over carries the child's usage; the parent's tree usage adds it.
    ended = next(e for e in found if e["type"] == "subagent.completed")["data"]
    assert ended["usage"] == child["usage"]
    assert ended["result_preview"] == "Echo: research alpha and add"
    for bucket in ("input_tokens", "output_tokens"):
        assert parent["tree_usage"][bucket] == parent["usage"][bucket] + child["usage"][bucket]
        assert child["tree_usage"][bucket] == child["usage"][bucket]


async def test_a_child_never_names_an_identity_that_is_gone(engine: Api) -> None:
    """A spawn holds the identity it inherits; one deleted under the parent (which a delete can
    do between a spawn's read of its parent and its insert, once the parent was moved to
    another identity) is not passed on."""
    resident = await engine.client.post("/v1/agent-identities", json={"name": "gone"})
    assert resident.status_code == 201, resident.text
    identity_id = resident.json()["id"]
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "delegate", **spawn("researcher", "research alpha")}],
    }
    sid = await new_session(engine, script, capabilities=SUBAGENTS, agent_identity_id=identity_id)
    async with engine.services.db.write() as conn:
        assert await identity_store.delete_identity(conn, engine.org_id, identity_id)
    await send(engine, sid, "please delegate this")
    found = await wait_turns_ended(engine, sid)
    child = await session(engine, children(found)["researcher"])
    assert child["parent_session_id"] == sid
    assert child["agent_identity_id"] is None


async def test_three_children_run_in_parallel(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "fan out", **spawn(f"w{i}", f"hold {i}", agent="holder")} for i in range(3)
        ]
        + [HOLD_RULE],
    }
    await agent(engine, "holder", script, tools=[HOLD])
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "fan out")
    # All three wait on `hold` at once: the parent started each before waiting for any.
    kids = await held(engine, sid, 3)
    assert sorted(kids) == ["w0", "w1", "w2"]
    for child in kids.values():
        assert (await session(engine, child))["subagent_status"] == "running"
    tasks = [e["data"]["task"] for e in await events(engine, sid) if e["type"] == "task.created"]
    assert {t["state"] for t in tasks} == {"running"}
    for child in kids.values():
        await release(engine, child)
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    results = completed(found, "spawn_subagent")
    assert len(results) == 3
    assert all(r["data"]["status"] == "success" for r in results)
    answer = final_answer(found)
    for i in range(3):
        assert f"Echo: hold {i}" in answer


async def test_a_failing_child_is_a_tool_error_not_a_parent_failure(engine: Api) -> None:
    broken = {"response": {"type": "error", "status": 400, "message": "bad request"}}
    await agent(engine, "broken", broken)
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "try", **spawn("fragile", "do it", agent="broken")},
            {"when": "collect", **call("wait_subagent", name="fragile")},
        ],
    }
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "try it")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    [done] = completed(found, "spawn_subagent")
    assert done["data"]["status"] == "error"
    assert "subagent 'fragile'" in done["data"]["error"] and "failed" in done["data"]["error"]
    [ended] = [e for e in found if e["type"] == "subagent.failed"]
    assert ended["data"]["subagent_status"] == "failed"
    child = await session(engine, children(found)["fragile"])
    assert child["subagent_status"] == "failed"
    task = [e for e in found if e["type"] == "task.updated"][-1]["data"]["task"]
    assert task["state"] == "failed"
    assert task["error"]["kind"] == "model_call_failed"
    # Collecting it later answers the same way.
    await send(engine, sid, "collect")
    [collected] = completed(await wait_turns_ended(engine, sid, 2), "wait_subagent")
    assert collected["data"]["error"] == done["data"]["error"]


async def test_a_child_stopped_by_its_iteration_limit(engine: Api) -> None:
    looping = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "loop", **call("add", a=1, b=1)}],
    }
    await agent(engine, "looper", looping, capabilities=[{"ref": "test_math"}], max_iterations=1)
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "start", **spawn("loopy", "loop forever", agent="looper")}],
    }
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "start")
    found = await wait_turns_ended(engine, sid)
    child = await session(engine, children(found)["loopy"])
    assert child["subagent_status"] == "max_iterations_reached"
    [ended] = [e for e in found if e["type"] == "subagent.failed"]
    assert ended["data"]["subagent_status"] == "max_iterations_reached"


async def test_wait_false_returns_at_once_and_wait_subagent_collects(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "start", **spawn("bg", "background hold", agent="holder", wait=False)},
            {"when": "collect", **call("wait_subagent", name="bg")},
            {"when": "peek", **call("get_subagent", name="bg")},
            HOLD_RULE,
        ],
    }
    await agent(engine, "holder", script, tools=[HOLD])
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "start")
    first = await wait_turns_ended(engine, sid)
    [started] = completed(first, "spawn_subagent")
    assert started["data"]["status"] == "success"
    assert '"status":"running"' in result_text(started).replace(" ", "")
    kids = await held(engine, sid, 1)
    await send(engine, sid, "peek")
    peeked = completed(await wait_turns_ended(engine, sid, 2), "get_subagent")
    assert '"status":"running"' in result_text(peeked[0]).replace(" ", "")
    await send(engine, sid, "collect")
    # The third turn waits on the child until it is let go.
    await wait_for(engine, sid, "tool.started", 3)
    await release(engine, kids["bg"])
    found = await wait_turns_ended(engine, sid, 3)
    [collected] = completed(found, "wait_subagent")
    assert collected["data"]["status"] == "success"
    assert "Echo: background hold" in result_text(collected)
    assert types_of(found).count("subagent.completed") == 1


async def test_a_name_clash_is_a_tool_error_naming_the_existing_child(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "go", **spawn("twin", "be first")}],
    }
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "go")
    first = await wait_turns_ended(engine, sid)
    existing = children(first)["twin"]
    await send(engine, sid, "go again")
    found = await wait_turns_ended(engine, sid, 2)
    clash = completed(found, "spawn_subagent")[-1]
    assert clash["data"]["status"] == "error"
    assert "'twin' already exists" in clash["data"]["error"]
    assert existing in clash["data"]["error"]
    assert types_of(found).count("subagent.spawned") == 1


async def test_send_to_subagent_continues_a_finished_child(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "begin", **spawn("helper", "first job")},
            {"when": "more", **call("send_to_subagent", name="helper", message="second job")},
        ],
    }
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "begin")
    await wait_turns_ended(engine, sid)
    await send(engine, sid, "more please")
    found = await wait_turns_ended(engine, sid, 2)
    [sent] = completed(found, "send_to_subagent")
    assert sent["data"]["status"] == "success"
    assert "Echo: second job" in result_text(sent)
    child_log = await events(engine, children(found)["helper"])
    assert types_of(child_log).count("turn.completed") == 2
    # Without an identity, the child's turns run as its owner (the parent's).
    owner = (await session(engine, sid))["owner_principal_id"]
    inputs = [e for e in child_log if e["type"] == "input.message"]
    assert [e["metadata"]["acting_principal_id"] for e in inputs] == [owner, owner]
    assert {e["metadata"]["initiator"] for e in inputs} == {"subagent"}
    task = [e for e in found if e["type"] == "task.updated"][-1]["data"]["task"]
    assert (task["state"], task["attempt"]) == ("succeeded", 2)


NESTING = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "nest", **spawn("deeper", "nest deeper")}],
}


async def test_depth_is_limited_and_usage_rolls_up_the_tree(engine: Api) -> None:
    # The agent carries the capability, so children (who inherit the agent) can spawn too.
    aid = await agent(engine, "nester", NESTING, capabilities=SUBAGENTS)
    root = await new_session(engine, agent_id=aid)
    await send(engine, root, "nest please")
    found = await wait_turns_ended(engine, root)
    assert "turn.completed" in types_of(found)
    child = children(found)["deeper"]
    child_log = await events(engine, child)
    grandchild = children(child_log)["deeper"]
    grandchild_log = await events(engine, grandchild)
    [refused] = completed(grandchild_log, "spawn_subagent")
    assert refused["data"]["status"] == "error"
    assert "at most 2 deep" in refused["data"]["error"]
    assert "subagent.spawned" not in types_of(grandchild_log)

    sessions = {sid: await session(engine, sid) for sid in (root, child, grandchild)}
    assert sessions[grandchild]["parent_session_id"] == child
    for bucket in ("input_tokens", "output_tokens"):
        own = {sid: s["usage"][bucket] for sid, s in sessions.items()}
        tree = {sid: s["tree_usage"][bucket] for sid, s in sessions.items()}
        assert all(value > 0 for value in own.values())
        assert tree[grandchild] == own[grandchild]
        assert tree[child] == own[child] + own[grandchild]
        assert tree[root] == own[root] + own[child] + own[grandchild]


@pytest.mark.parametrize(
    "settings", [{"subagent_max_active": 2, "subagent_max_total": 3}], indirect=True
)
async def test_fan_out_limits_are_tool_errors(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "fan out", **spawn(f"w{i}", f"hold {i}", agent="holder")} for i in range(3)
        ]
        + [{"when": "two more", **spawn(f"x{i}", f"quick {i}")} for i in range(2)]
        + [HOLD_RULE],
    }
    await agent(engine, "holder", script, tools=[HOLD])
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "fan out")
    kids = await held(engine, sid, 2)
    # The third spawn was refused while two worked (max active 2).
    refused = await wait_for(engine, sid, "tool.completed")
    [error] = [e for e in completed(refused, "spawn_subagent") if e["data"]["status"] == "error"]
    assert "2 subagents of this session tree are already working" in error["data"]["error"]
    for child in kids.values():
        await release(engine, child)
    await wait_turns_ended(engine, sid)
    # Two more: one fits under the total of 3, the other does not.
    await send(engine, sid, "two more")
    found = await wait_turns_ended(engine, sid, 2)
    second = completed(found, "spawn_subagent")[3:]
    errors = [e["data"]["error"] for e in second if e["data"]["status"] == "error"]
    assert len(second) == 2 and len(errors) == 1
    assert "has created 3 subagents, the limit is 3" in errors[0]
    assert types_of(found).count("subagent.spawned") == 3


@pytest.mark.parametrize("settings", [{"subagent_wait_timeout_seconds": 0.3}], indirect=True)
async def test_a_wait_times_out_and_the_child_keeps_running(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "start", **spawn("slow", "hold on", agent="holder")},
            {"when": "collect", **call("wait_subagent", name="slow", timeout=30)},
            HOLD_RULE,
        ],
    }
    await agent(engine, "holder", script, tools=[HOLD])
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "start")
    first = await wait_turns_ended(engine, sid)
    [timed_out] = completed(first, "spawn_subagent")
    assert timed_out["data"]["status"] == "error"
    assert "timed out waiting for subagent 'slow'" in timed_out["data"]["error"]
    child = children(first)["slow"]
    await wait_for(engine, child, "tool.call_requested")
    assert (await session(engine, child))["subagent_status"] == "running"
    # Its result is collected later (the setting also caps wait_subagent's own timeout, so
    # the child is let go first).
    await release(engine, child)
    await wait_turns_ended(engine, child)
    await send(engine, sid, "collect")
    found = await wait_turns_ended(engine, sid, 2)
    [collected] = completed(found, "wait_subagent")
    assert "Echo: hold on" in result_text(collected)


async def test_cancelling_the_parent_cancels_its_children(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "fan out", **spawn(f"w{i}", f"hold {i}", agent="holder")} for i in range(2)
        ]
        + [HOLD_RULE],
    }
    await agent(engine, "holder", script, tools=[HOLD])
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "fan out")
    kids = await held(engine, sid, 2)
    cancelled = await engine.client.post(f"/v1/sessions/{sid}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    found = await wait_for(engine, sid, "subagent.cancelled", 2)
    assert "turn.cancelled" in types_of(found)
    for child in kids.values():
        child_log = await wait_turns_ended(engine, child)
        assert "turn.cancelled" in types_of(child_log)
        described = await session(engine, child)
        assert described["subagent_status"] == "cancelled"
        assert described["status"] == "idle"
    tasks = [e["data"]["task"] for e in found if e["type"] == "task.updated"]
    assert sorted(t["state"] for t in tasks) == ["canceled", "canceled"]
    assert all(t["cancel_requested_at"] for t in tasks)
    # Nothing more happens in the parent once its turn has stopped: no tool result.
    async with asyncio.timeout(10):
        while engine.services.runner.active_turns:
            await engine.services.signals.wait_for_events(sid, 0.05)
    assert "tool.completed" not in types_of(await events(engine, sid))


async def test_cancel_subagent_stops_one_child(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "start", **spawn("bg", "hold it", agent="holder", wait=False)},
            {"when": "stop", **call("cancel_subagent", name="bg")},
            {"when": "list", **call("list_subagents")},
            HOLD_RULE,
        ],
    }
    await agent(engine, "holder", script, tools=[HOLD])
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "start")
    await wait_turns_ended(engine, sid)
    kids = await held(engine, sid, 1)
    await send(engine, sid, "stop it")
    found = await wait_turns_ended(engine, sid, 2)
    [stopped] = completed(found, "cancel_subagent")
    assert '"status":"cancelled"' in result_text(stopped).replace(" ", "")
    assert "turn.cancelled" in types_of(await events(engine, kids["bg"]))
    await send(engine, sid, "list them")
    listed = completed(await wait_turns_ended(engine, sid, 3), "list_subagents")
    assert '"state":"canceled"' in result_text(listed[0]).replace(" ", "")


async def test_capabilities_narrow_what_a_child_inherits(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "narrow", **spawn("calc", "add and time", capabilities=["test_math"])},
            {"when": "widen", **spawn("web", "fetch", capabilities=["web_fetch"])},
            {"when": "add", **call("add", a=2, b=3)},
            {"when": "time", **call("get_current_time")},
        ],
    }
    aid = await agent(
        engine,
        "wide",
        script,
        capabilities=[*SUBAGENTS, {"ref": "test_math"}, {"ref": "current_time"}],
    )
    sid = await new_session(engine, agent_id=aid)
    await send(engine, sid, "narrow")
    found = await wait_turns_ended(engine, sid)
    child_log = await events(engine, children(found)["calc"])
    called = [e["data"]["tool_call"]["name"] for e in child_log if e["type"] == "tool.started"]
    assert called == ["add"]
    await send(engine, sid, "widen")
    found = await wait_turns_ended(engine, sid, 2)
    refused = completed(found, "spawn_subagent")[-1]
    assert refused["data"]["status"] == "error"
    assert "web_fetch" in refused["data"]["error"]
    assert types_of(found).count("subagent.spawned") == 1


async def test_a_blueprint_child_and_a_bad_blueprint_config(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {
                "when": "good",
                **spawn(
                    "bp",
                    "brief me",
                    blueprint_id="research_pack",
                    blueprint_config={"topic": "owls"},
                ),
            },
            {
                "when": "bad",
                **spawn("bp2", "x", blueprint_id="research_pack", blueprint_config={"nope": 1}),
            },
        ],
    }
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "good")
    found = await wait_turns_ended(engine, sid)
    child_id = children(found)["bp"]
    child = await session(engine, child_id)
    assert (child["blueprint_id"], child["blueprint_config"]["topic"]) == ("research_pack", "owls")
    generation = next(e for e in await events(engine, child_id) if e["type"] == "llm.generation")
    system = generation["data"]["messages"][0]["content"][0]["text"]
    assert "Your topic: owls." in system
    await send(engine, sid, "bad")
    found = await wait_turns_ended(engine, sid, 2)
    refused = completed(found, "spawn_subagent")[-1]
    assert refused["data"]["status"] == "error"
    assert "invalid blueprint" in refused["data"]["error"]
    assert types_of(found).count("subagent.spawned") == 1


@pytest.mark.skipif(not POSTGRES_URL, reason="DBOS runs turns on PostgreSQL only")
async def test_a_childs_turn_is_its_own_workflow_not_a_dbos_child(engine: Api) -> None:
    """A child's turn started from inside its parent's workflow is an independent workflow:
    recovering the parent must not depend on the order it started its children in."""
    from dbos import DBOS

    script = {"response": {"type": "echo"}, "tool_calls": [{"when": "go", **spawn("c", "x")}]}
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    posted = await send(engine, sid, "go")
    found = await wait_turns_ended(engine, sid)
    child_log = await events(engine, children(found)["c"])
    child_turn = next(e for e in child_log if e["type"] == "turn.started")["data"]["turn_id"]
    status = await DBOS.get_workflow_status_async(child_turn)
    assert status is not None and status.status == "SUCCESS"
    assert status.parent_workflow_id is None
    parent = await DBOS.get_workflow_status_async(posted["turn_id"])
    assert parent is not None and parent.parent_workflow_id is None


async def test_a_message_posted_to_a_child_directly_keeps_its_status_true(engine: Api) -> None:
    """A child is a session like any other: a turn posted to it through the API (outside its
    task) runs, and its ``subagent_status`` says how that turn ended, not ``running``."""
    script = {"response": {"type": "echo"}, "tool_calls": [{"when": "go", **spawn("c", "x")}]}
    sid = await new_session(engine, script, capabilities=SUBAGENTS)
    await send(engine, sid, "go")
    child = children(await wait_turns_ended(engine, sid))["c"]
    await send(engine, child, "hello directly")
    found = await wait_turns_ended(engine, child, 2)
    assert "Echo: hello directly" in final_answer(found)
    assert (await session(engine, child))["subagent_status"] == "completed"
    # The parent's task is the delegation: it ended with the first turn and stays so.
    parent_log = await events(engine, sid)
    assert types_of(parent_log).count("subagent.completed") == 1
