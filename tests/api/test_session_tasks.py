"""Session tasks through the API (issue 14): a parent's subagents as tasks, their message
threads, follow-ups, cancel; the organization's tasks; deleting a parent deletes its children."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from everloop.store.event_log import EventQuery, read_events
from everloop.store.tables import (
    session_databases,
    session_secrets,
    sessions,
    workspace_files,
)
from everloop.store.workspaces import automatic_id
from tests.api.conftest import OtherOrg, assert_error, create_agent
from tests.conftest import Api
from tests.engine.conftest import (
    events,
    new_session,
    scripted_model,
    send,
    wait_for,
    wait_turns_ended,
)

pytestmark = pytest.mark.timeout(90)

SUBAGENTS = [{"ref": "subagents"}]
# Every field of the seed's SessionTask.
TASK_FIELDS = {
    "id",
    "session_id",
    "kind",
    "display_name",
    "spec",
    "state",
    "state_detail",
    "progress",
    "input_request",
    "cancel_requested_at",
    "summary",
    "result_path",
    "artifacts",
    "error",
    "attempt",
    "worker_id",
    "heartbeat_at",
    "links",
    "wake_policy",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
}
# The script of a parent that delegates on "delegate" and of its children (they share the
# parent's model): echo, so a child answers "Echo: <its task>".
ECHO_PARENT = {
    "response": {"type": "echo"},
    "tool_calls": [
        {
            "when": "delegate",
            "name": "spawn_subagent",
            "arguments": {"name": "researcher", "task": "research alpha"},
        }
    ],
}


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


async def ok(response: Any, status: int = 200) -> Any:
    answer = await response
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


async def delegated(api: Api, **fields: Any) -> tuple[str, dict[str, Any]]:
    """A parent session that spawned one subagent and finished its turn: (parent id, task)."""
    parent = await new_session(api, ECHO_PARENT, capabilities=SUBAGENTS, **fields)
    await send(api, parent, "please delegate this")
    await wait_turns_ended(api, parent)
    [task] = await ok(api.client.get(f"/v1/sessions/{parent}/tasks"))
    return parent, task


async def slow_child_parent(api: Api) -> tuple[str, str]:
    """A parent whose subagent (an agent on a model that takes minutes to answer) is working:
    (parent id, child id), once the child's model call has started."""
    slow = await scripted_model(api, {"response": {"type": "echo"}, "latency_ms": 120_000})
    await create_agent(api, "slow-helper", default_model_id=slow)
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {
                "when": "delegate",
                "name": "spawn_subagent",
                "arguments": {"name": "slowpoke", "task": "think long", "agent": "slow-helper"},
            }
        ],
    }
    parent = await new_session(api, script, capabilities=SUBAGENTS)
    await send(api, parent, "please delegate this")
    found = await wait_for(api, parent, "subagent.spawned")
    [spawned] = [e for e in found if e["type"] == "subagent.spawned"]
    child = spawned["data"]["session_id"]
    await wait_for(api, child, "reason.started")
    return parent, child


async def raw_events(api: Api, session_id: str) -> list[str]:
    """The types of a session's events, read from the store (a deleted session's too)."""
    async with api.services.db.read() as conn:
        found = await read_events(conn, session_id, EventQuery(limit=10_000))
    return [e.type for e in found]


async def no_turn_running(api: Api, session_id: str, timeout: float = 20.0) -> None:
    """Wait until this process runs no turn (each one has stopped)."""
    async with asyncio.timeout(timeout):
        while api.services.runner.active_turns:
            await api.services.signals.wait_for_events(session_id, 0.2)


# -- reading ------------------------------------------------------------------------------------


async def test_a_parent_lists_and_reads_its_subagent_task(engine: Api) -> None:
    parent, task = await delegated(engine)
    child = task["links"]["child_session_id"]
    assert set(task) == TASK_FIELDS
    assert task["id"].startswith("task_") and task["session_id"] == parent
    assert (task["kind"], task["display_name"], task["state"]) == (
        "subagent",
        "researcher",
        "succeeded",
    )
    assert task["spec"] == {"instructions": "research alpha"}
    assert task["summary"] == "Echo: research alpha"
    assert (task["attempt"], task["wake_policy"], task["error"]) == (1, "on_terminal", None)
    assert task["started_at"] and task["finished_at"] and task["cancel_requested_at"] is None
    assert task["links"] == {
        "child_session_id": child,
        "remote_task_id": None,
        "resource_ids": [],
    }
    assert (task["progress"], task["result_path"], task["artifacts"]) == (None, None, [])

    tasks = f"/v1/sessions/{parent}/tasks"
    assert [t["id"] for t in await ok(engine.client.get(tasks, params={"state": "succeeded"}))] == [
        task["id"]
    ]
    assert await ok(engine.client.get(tasks, params={"state": "running"})) == []
    assert len(await ok(engine.client.get(tasks, params={"kind": "subagent"}))) == 1
    assert await ok(engine.client.get(tasks, params={"kind": "monitor"})) == []
    assert_error(await engine.client.get(tasks, params={"state": "done"}), 422, field="state")
    # The child has no tasks of its own.
    assert await ok(engine.client.get(f"/v1/sessions/{child}/tasks")) == []

    detail = await ok(engine.client.get(f"{tasks}/{task['id']}"))
    assert detail["task"] == task
    thread = detail["messages"]
    assert [(m["direction"], m["content"]) for m in thread] == [
        ("inbound", [{"type": "text", "text": "research alpha"}]),
        ("outbound", [{"type": "text", "text": "Echo: research alpha"}]),
    ]
    assert all(m["task_id"] == task["id"] and m["in_reply_to"] is None for m in thread)
    after = await ok(
        engine.client.get(f"{tasks}/{task['id']}", params={"after_id": thread[0]["id"]})
    )
    assert [m["id"] for m in after["messages"]] == [thread[1]["id"]]
    first = await ok(engine.client.get(f"{tasks}/{task['id']}", params={"limit": 1}))
    assert [m["id"] for m in first["messages"]] == [thread[0]["id"]]
    for bad, field in (({"limit": 501}, "limit"), ({"after_id": "nope"}, "after_id")):
        assert_error(await engine.client.get(f"{tasks}/{task['id']}", params=bad), 422, field=field)
    assert_error(await engine.client.get(f"{tasks}/not-a-task"), 422, field="task_id")

    # The child session says what it is, in the seed's words.
    got = await ok(engine.client.get(f"/v1/sessions/{child}"))
    assert (got["parent_session_id"], got["subagent_name"], got["subagent_task"]) == (
        parent,
        "researcher",
        "research alpha",
    )
    assert got["subagent_status"] == "completed"
    assert (await ok(engine.client.get(f"/v1/sessions/{parent}")))["parent_session_id"] is None


async def test_the_org_task_list_is_newest_first_and_filters(engine: Api) -> None:
    first, task_a = await delegated(engine)
    second, task_b = await delegated(engine)
    listed = await ok(engine.client.get("/v1/tasks"))
    assert [t["id"] for t in listed] == [task_b["id"], task_a["id"]]
    assert listed[1] == task_a
    by_root = await ok(engine.client.get("/v1/tasks", params={"root_session_id": first}))
    assert [t["id"] for t in by_root] == [task_a["id"]]
    later = await ok(engine.client.get("/v1/tasks", params={"created_after": task_b["created_at"]}))
    assert [t["id"] for t in later] == [task_b["id"]]
    assert (
        await ok(engine.client.get("/v1/tasks", params={"created_after": "2999-01-01T00:00:00Z"}))
        == []
    )
    in_offset = await ok(
        engine.client.get("/v1/tasks", params={"created_after": "2000-01-01T02:00:00+02:00"})
    )
    assert len(in_offset) == 2
    assert len(await ok(engine.client.get("/v1/tasks", params={"limit": 1}))) == 1
    assert await ok(engine.client.get("/v1/tasks", params={"state": "running"})) == []
    for bad, field in (
        ({"state": "done"}, "state"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),
        ({"root_session_id": "session_x"}, "root_session_id"),
        ({"limit": 501}, "limit"),
    ):
        assert_error(await engine.client.get("/v1/tasks", params=bad), 422, field=field)
    # A deleted session's tasks are gone with it.
    assert (await engine.client.delete(f"/v1/sessions/{second}")).status_code == 204
    assert [t["id"] for t in await ok(engine.client.get("/v1/tasks"))] == [task_a["id"]]


async def test_another_orgs_tasks_are_not_listed(engine: Api, other_org: OtherOrg) -> None:
    parent, task = await delegated(engine)
    assert await ok(other_org.client.get("/v1/tasks")) == []
    path = f"/v1/sessions/{parent}/tasks"
    assert_error(await other_org.client.get(path), 404, "not_found")
    assert_error(await other_org.client.get(f"{path}/{task['id']}"), 404, "not_found")
    # A task is found only under its own session.
    other = await new_session(engine)
    assert_error(
        await engine.client.get(f"/v1/sessions/{other}/tasks/{task['id']}"), 404, "not_found"
    )


# -- follow-ups ---------------------------------------------------------------------------------


async def test_a_follow_up_is_a_new_turn_of_the_finished_subagent(engine: Api) -> None:
    parent, task = await delegated(engine)
    child = task["links"]["child_session_id"]
    url = f"/v1/sessions/{parent}/tasks/{task['id']}/messages"
    sent = await ok(engine.client.post(url, json={"text": "now beta"}))
    assert sent["id"].startswith("tmsg_") and sent["task_id"] == task["id"]
    assert (sent["direction"], sent["content"]) == (
        "inbound",
        [{"type": "text", "text": "now beta"}],
    )
    await wait_turns_ended(engine, child, count=2)
    found = await wait_for(engine, parent, "subagent.completed", count=2)
    updates = [e["data"]["task"] for e in found if e["type"] == "task.updated"]
    assert [(u["state"], u["attempt"]) for u in updates] == [
        ("succeeded", 1),
        ("running", 2),
        ("succeeded", 2),
    ]
    detail = await ok(engine.client.get(f"/v1/sessions/{parent}/tasks/{task['id']}"))
    assert (detail["task"]["state"], detail["task"]["attempt"]) == ("succeeded", 2)
    assert detail["task"]["summary"] == "Echo: now beta"
    assert [m["content"][0]["text"] for m in detail["messages"]] == [
        "research alpha",
        "Echo: research alpha",
        "now beta",
        "Echo: now beta",
    ]
    # Text parts are joined into one message; in_reply_to is kept.
    parts = {
        "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        "in_reply_to": "ask_1",
    }
    sent = await ok(engine.client.post(url, json=parts))
    assert sent["content"] == [{"type": "text", "text": "one\ntwo"}]
    assert sent["in_reply_to"] == "ask_1"
    await wait_turns_ended(engine, child, count=3)
    child_log = await events(engine, child)
    inputs = [e["data"]["message"]["content"] for e in child_log if e["type"] == "input.message"]
    assert inputs[-1] == [{"type": "text", "text": "one\ntwo"}]


async def test_a_bad_follow_up_is_a_422_and_writes_nothing(engine: Api) -> None:
    parent, task = await delegated(engine)
    child = task["links"]["child_session_id"]
    url = f"/v1/sessions/{parent}/tasks/{task['id']}/messages"
    before = (await events(engine, parent), await events(engine, child))
    for body, field in (
        ({}, "text"),
        ({"text": "   "}, "text"),
        ({"content": []}, "content"),
        ({"content": [{"type": "text", "text": ""}]}, "content"),
        ({"content": [{"type": "data", "data": {"x": 1}}]}, "content[0].type"),
        ({"content": [{"type": "text"}]}, "content[0].text"),
        ({"text": "a", "content": [{"type": "text", "text": "b"}]}, "content"),
        ({"text": "x" * 100_001}, "text"),
        ({"text": "a", "in_reply_to": "r" * 101}, "in_reply_to"),
    ):
        assert_error(await engine.client.post(url, json=body), 422, field=field)
    assert (await events(engine, parent), await events(engine, child)) == before
    detail = await ok(engine.client.get(f"/v1/sessions/{parent}/tasks/{task['id']}"))
    assert len(detail["messages"]) == 2 and detail["task"] == task


# -- a working subagent: 409, cancel ------------------------------------------------------------


async def test_a_working_subagent_refuses_messages_and_cancel_stops_it(engine: Api) -> None:
    parent, child = await slow_child_parent(engine)
    [task] = await ok(engine.client.get(f"/v1/sessions/{parent}/tasks"))
    assert task["state"] == "running" and task["state_detail"]
    base = f"/v1/sessions/{parent}/tasks/{task['id']}"
    before = await events(engine, child)
    refused = assert_error(
        await engine.client.post(f"{base}/messages", json={"text": "hurry"}), 409, "task_active"
    )
    assert "still working" in refused["message"]
    assert await events(engine, child) == before

    cancelled = await ok(engine.client.post(f"{base}/cancel"))
    assert cancelled["state"] == "canceled" and cancelled["cancel_requested_at"]
    assert cancelled["error"] == {"kind": "cancelled", "message": "cancelled through the API"}
    assert "turn.cancelled" in [e["type"] for e in await events(engine, child)]
    # The parent's wait ends with the cancellation, and its turn goes on to the end.
    found = await wait_turns_ended(engine, parent)
    kinds = [e["type"] for e in found]
    assert kinds.count("subagent.cancelled") == 1 and "turn.completed" in kinds
    [done] = [e for e in found if e["type"] == "tool.completed"]
    assert "cancelled through the API" in done["data"]["error"]
    child_json = await ok(engine.client.get(f"/v1/sessions/{child}"))
    assert child_json["subagent_status"] == "cancelled"
    # Cancelling a task that has ended changes nothing.
    again = await ok(engine.client.post(f"{base}/cancel"))
    assert again == cancelled


# -- delete cascade -----------------------------------------------------------------------------


async def test_deleting_a_parent_deletes_its_subagents_and_stops_their_turns(
    engine: Api,
) -> None:
    parent, child = await slow_child_parent(engine)
    client = engine.client
    await ok(client.post(f"/v1/sessions/{child}/fs/notes.txt", json={"content": "hi"}), 201)
    await ok(client.put(f"/v1/sessions/{child}/storage/secrets", json={"secrets": {"K": "v"}}))
    await ok(client.post(f"/v1/sessions/{child}/databases", json={"name": "db"}), 201)

    assert (await client.delete(f"/v1/sessions/{parent}")).status_code == 204
    for gone in (parent, child):
        assert_error(await client.get(f"/v1/sessions/{gone}"), 404, "not_found")
    listed = await ok(client.get("/v1/sessions", params={"include_subagents": "true"}))
    assert {parent, child}.isdisjoint(s["id"] for s in listed["data"])
    assert await ok(client.get("/v1/tasks")) == []
    async with engine.services.db.read() as conn:
        for table in (session_secrets, session_databases):
            count = select(func.count()).where(table.c.session_id == child)
            assert await conn.scalar(count) == 0, table.name
        files = select(func.count()).where(workspace_files.c.workspace_id == automatic_id(child))
        assert await conn.scalar(files) == 0

    # The child's model call was cancelled (its task settled in the parent's log); the
    # parent's wait stopped (its session is gone) without recording an answer: no turn of the
    # tree runs on.
    await no_turn_running(engine, parent)
    child_log = await raw_events(engine, child)
    assert child_log.count("turn.cancelled") == 1 and "turn.completed" not in child_log
    parent_log = await raw_events(engine, parent)
    assert parent_log[-2:] == ["task.updated", "subagent.cancelled"]
    assert parent_log.count("reason.started") == 1 and "tool.completed" not in parent_log


async def test_deleting_a_subagent_ends_its_parents_wait(engine: Api) -> None:
    parent, child = await slow_child_parent(engine)
    assert (await engine.client.delete(f"/v1/sessions/{child}")).status_code == 204
    found = await wait_turns_ended(engine, parent)
    assert "turn.completed" in [e["type"] for e in found]
    [done] = [e for e in found if e["type"] == "tool.completed"]
    assert "its session was deleted" in done["data"]["error"]
    [task] = await ok(engine.client.get(f"/v1/sessions/{parent}/tasks"))
    assert task["state"] == "canceled"
    assert_error(
        await engine.client.post(
            f"/v1/sessions/{parent}/tasks/{task['id']}/messages", json={"text": "back?"}
        ),
        409,
    )
    children = await ok(engine.client.get("/v1/sessions", params={"parent_session_id": parent}))
    assert children["data"] == [] and children["total"] == 0
    async with engine.services.db.read() as conn:
        row = (
            await conn.execute(select(sessions.c.deleted_at).where(sessions.c.id == parent))
        ).one()
    assert row.deleted_at is None


# -- the sessions list --------------------------------------------------------------------------


async def test_subagents_are_hidden_from_the_session_list_unless_asked_for(engine: Api) -> None:
    parent, task = await delegated(engine)
    child = task["links"]["child_session_id"]
    plain = await new_session(engine)
    default = await ok(engine.client.get("/v1/sessions"))
    assert [s["id"] for s in default["data"]] == [plain, parent] and default["total"] == 2
    everything = await ok(engine.client.get("/v1/sessions", params={"include_subagents": "true"}))
    assert [s["id"] for s in everything["data"]] == [plain, child, parent]
    assert everything["total"] == 3
    children = await ok(engine.client.get("/v1/sessions", params={"parent_session_id": parent}))
    assert [s["id"] for s in children["data"]] == [child] and children["total"] == 1
    none = await ok(engine.client.get("/v1/sessions", params={"parent_session_id": plain}))
    assert none == {"data": [], "total": 0, "offset": 0, "limit": 20}
    assert_error(
        await engine.client.get("/v1/sessions", params={"parent_session_id": "x"}),
        422,
        field="parent_session_id",
    )
    # Stats count every session, subagents too.
    assert (await ok(engine.client.get("/v1/sessions/stats")))["total"] == 3
