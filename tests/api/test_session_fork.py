"""Forking a session (``POST /v1/sessions/{id}/fork``) and exporting it as JSON lines
(``GET /v1/sessions/{id}/export``), against the real app and database (SQLite, or PostgreSQL
with ``EVERLOOP_TEST_POSTGRES_URL``) and the in-process engine."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from everloop.api.routes.session_fork import export_lines
from everloop.crypto import SecretBox
from everloop.domain.event_log import EventContext, NewEvent
from everloop.services.auth import Caller
from everloop.services.session_storage import SecretVault, acquire_lease, set_value
from everloop.store.event_log import append_events
from tests.api.conftest import OtherOrg, assert_error, create_agent
from tests.api.test_agent_actions import priced_model, stats_of
from tests.api.test_cross_org_matrix import snapshot
from tests.conftest import Api
from tests.engine.conftest import events, new_session, send, wait_turns_ended
from tests.engine.test_client_tools import SCRIPT as CLIENT_TOOL_SCRIPT
from tests.engine.test_client_tools import locate, requested_calls, submit

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    """The app with the engine running turns in this process."""
    await api.services.start_engine()
    yield api


REPLIES = {"response": {"type": "sequence", "texts": ["one", "two", "three", "four"]}}


async def messages(api: Api, session_id: str) -> list[dict[str, Any]]:
    listed = await api.client.get(f"/v1/sessions/{session_id}/messages")
    assert listed.status_code == 200, listed.text
    return list(listed.json()["data"])


def texts(found: list[dict[str, Any]]) -> list[str]:
    return ["".join(p.get("text", "") for p in m["content"]) for m in found]


async def fork(api: Api, session_id: str, body: dict[str, Any] | None = None) -> Any:
    return await api.client.post(f"/v1/sessions/{session_id}/fork", json=body)


async def caller_of(api: Api) -> Caller:
    return await api.services.auth.authenticate(f"Bearer {api.token}", None)


def without_id(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "id"}


def export_records(body: str) -> list[dict[str, Any]]:
    assert body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


# -- fork ----------------------------------------------------------------------------------


async def test_a_fork_copies_the_session_and_then_diverges(engine: Api) -> None:
    api = engine
    parent = await new_session(api, REPLIES, title="Plans", tags=["mine"])
    await send(api, parent, "first")
    await wait_turns_ended(api, parent, 1)
    await send(api, parent, "second")
    parent_events = await wait_turns_ended(api, parent, 2)
    parent_messages = await messages(api, parent)
    assert texts(parent_messages) == ["first", "one", "second", "two"]
    before = (await api.client.get(f"/v1/sessions/{parent}")).json()

    forked = await fork(api, parent)
    assert forked.status_code == 201, forked.text
    body = forked.json()
    assert body["id"] != parent
    assert body["forked_from_session_id"] == parent
    assert body["forked_from_sequence"] == parent_events[-1]["sequence"]
    assert body["title"] == "Plans (fork)" and body["tags"] == ["mine"]
    assert body["status"] == "idle"
    assert body["parent_session_id"] is None
    for key in ("organization_id", "harness_id", "agent_id", "model_id", "capabilities", "tools"):
        assert body[key] == before[key], key
    assert body["owner_principal_id"] == before["owner_principal_id"]
    assert body["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_creation_tokens": 0,
    }
    assert body["preview"] == before["preview"] and body["output_preview"] == "two"
    # The session as read agrees with the one the fork answered.
    assert (await api.client.get(f"/v1/sessions/{body['id']}")).json() == body

    # The log: the parent's events renumbered from 1, with new ids and the fork's session id.
    fork_events = await events(api, body["id"])
    assert [e["sequence"] for e in fork_events] == list(range(1, len(parent_events) + 1))
    assert [e["type"] for e in fork_events] == [e["type"] for e in parent_events]
    assert [(e["data"], e["context"], e["ts"]) for e in fork_events] == [
        (e["data"], e["context"], e["ts"]) for e in parent_events
    ]
    assert not {e["id"] for e in fork_events} & {e["id"] for e in parent_events}
    assert {e["session_id"] for e in fork_events} == {body["id"]}
    assert await messages(api, body["id"]) == parent_messages

    # It diverges: a message to the fork runs a turn there (with the copied conversation as
    # its history: the third reply) and the parent does not change.
    await send(api, body["id"], "branch")
    await wait_turns_ended(api, body["id"], 3)
    assert texts(await messages(api, body["id"])) == [*texts(parent_messages), "branch", "three"]
    assert await messages(api, parent) == parent_messages
    assert await events(api, parent) == parent_events
    after = (await api.client.get(f"/v1/sessions/{body['id']}")).json()
    assert after["status"] == "idle" and after["usage"]["input_tokens"] > 0
    assert (await api.client.get(f"/v1/sessions/{parent}")).json()["usage"] == before["usage"]
    # Listed like any session; the parent is no fork.
    listed = (await api.client.get("/v1/sessions")).json()["data"]
    lineage = {s["id"]: s["forked_from_session_id"] for s in listed}
    assert lineage[body["id"]] == parent and lineage[parent] is None


async def test_a_fork_at_a_turn_boundary_holds_the_turns_before_it(engine: Api) -> None:
    api = engine
    parent = await new_session(api, REPLIES)
    await send(api, parent, "first")
    first_turn = await wait_turns_ended(api, parent, 1)
    await send(api, parent, "second")
    await wait_turns_ended(api, parent, 2)
    boundary = first_turn[-1]["sequence"]

    forked = await fork(api, parent, {"at_sequence": boundary, "title": "Retry", "tags": []})
    assert forked.status_code == 201, forked.text
    body = forked.json()
    assert (body["title"], body["tags"], body["forked_from_sequence"]) == ("Retry", [], boundary)
    assert texts(await messages(api, body["id"])) == ["first", "one"]
    assert [e["sequence"] for e in await events(api, body["id"])] == list(range(1, boundary + 1))
    assert body["output_preview"] == "one"
    # Its next turn continues from there: the second reply, not the third.
    await send(api, body["id"], "again")
    await wait_turns_ended(api, body["id"], 2)
    assert texts(await messages(api, body["id"])) == ["first", "one", "again", "two"]

    # Only session.started: a fresh session's state, no turn.
    bare = await fork(api, parent, {"at_sequence": 1})
    assert bare.status_code == 201, bare.text
    assert bare.json()["status"] == "started" and bare.json()["preview"] is None
    assert await messages(api, bare.json()["id"]) == []


async def test_a_cut_inside_a_turn_is_a_422_naming_the_nearest_boundary(engine: Api) -> None:
    api = engine
    parent = await new_session(api, REPLIES)
    await send(api, parent, "first")
    first_turn = await wait_turns_ended(api, parent, 1)
    await send(api, parent, "second")
    found = await wait_turns_ended(api, parent, 2)
    end_one, end_two = first_turn[-1]["sequence"], found[-1]["sequence"]
    second = [e for e in found if e["sequence"] > end_one]
    assert second[0]["type"] == "input.message"
    before = await snapshot(api)

    # Just after the second turn's input: nearer its start.
    inside = second[0]["sequence"]
    error = assert_error(
        await fork(api, parent, {"at_sequence": inside}), 422, "validation_error", "at_sequence"
    )
    assert f"the nearest valid at_sequence is {end_one} (or {end_two} after it)" in error["message"]
    assert "whole turns" in error["message"]
    # Just before its end: nearer the end.
    error = assert_error(
        await fork(api, parent, {"at_sequence": end_two - 1}), 422, field="at_sequence"
    )
    assert (
        f"the nearest valid at_sequence is {end_two} (or {end_one} before it)" in error["message"]
    )
    # Past the log, and not a sequence at all.
    error = assert_error(
        await fork(api, parent, {"at_sequence": end_two + 1}), 422, field="at_sequence"
    )
    assert f"sequences 1 to {end_two}" in error["message"]
    assert_error(await fork(api, parent, {"at_sequence": 0}), 422, field="at_sequence")
    assert_error(await fork(api, parent, {"at_sequence": "two"}), 422, field="at_sequence")
    assert_error(await fork(api, parent, {"title": "x" * 501}), 422, field="title")
    assert await snapshot(api) == before


async def test_a_fork_while_a_turn_waits_is_a_409_unless_cut_before_it(engine: Api) -> None:
    api = engine
    session = await new_session(api, CLIENT_TOOL_SCRIPT, tools=[locate()])
    await send(api, session, "hello")
    done = await wait_turns_ended(api, session, 1)
    await send(api, session, "where am I?")
    calls = await requested_calls(api, session)
    assert (await api.client.get(f"/v1/sessions/{session}")).json()["status"] == (
        "waitingfortoolresults"
    )
    open_from = done[-1]["sequence"] + 1
    before = await snapshot(api)
    busy = assert_error(await fork(api, session), 409, "session_busy")
    assert f"from sequence {open_from}" in busy["message"]
    assert_error(
        await fork(api, session, {"at_sequence": open_from}), 409, "session_busy", "at_sequence"
    )
    assert await snapshot(api) == before

    early = await fork(api, session, {"at_sequence": open_from - 1})
    assert early.status_code == 201, early.text
    assert early.json()["status"] == "idle"
    assert texts(await messages(api, early.json()["id"])) == ["hello", "Echo: hello"]

    # Once the turn has ended, all of it forks.
    answered = await submit(api, session, [{"tool_call_id": calls[0]["id"], "result": "Kyiv"}])
    assert answered.status_code == 200, answered.text
    await wait_turns_ended(api, session, 2)
    whole = await fork(api, session)
    assert whole.status_code == 201, whole.text
    # The same messages; a tool result's message id is made from its event's id, which is new.
    copied, original = await messages(api, whole.json()["id"]), await messages(api, session)
    assert [m["role"] for m in copied] == ["user", "agent", "user", "agent", "tool_result", "agent"]
    assert [without_id(m) for m in copied] == [without_id(m) for m in original]
    assert [m["id"] for m in copied if m["role"] != "tool_result"] == [
        m["id"] for m in original if m["role"] != "tool_result"
    ]


async def test_a_fork_deep_copies_storage_and_leaves_the_running_parts(api: Api) -> None:
    client = api.client
    parent = await new_session(api, title="Stored")
    assert (
        await client.post(f"/v1/sessions/{parent}/fs/notes/a.txt", json={"content": "hello"})
    ).status_code == 201
    put = await client.put(
        f"/v1/sessions/{parent}/storage/secrets", json={"secrets": {"API_TOKEN": "s3cret"}}
    )
    assert put.status_code == 200, put.text
    assert (
        await client.post(f"/v1/sessions/{parent}/databases", json={"name": "notes"})
    ).status_code == 201
    async with api.services.db.write() as conn:
        await set_value(conn, parent, "colour", "blue")
        await acquire_lease(conn, parent, "gpu", 600)
    scheduled = await client.post(
        "/v1/durable/schedules",
        json={
            "name": "nightly",
            "cron_expression": "0 9 * * *",
            "target": {
                "type": "workflow",
                "name": "session.run",
                "input": {"session_id": parent, "message": "tick"},
            },
        },
    )
    assert scheduled.status_code == 201, scheduled.text
    assert (await client.put(f"/v1/sessions/{parent}/pin")).status_code == 204

    forked = await fork(api, parent)
    assert forked.status_code == 201, forked.text
    child = forked.json()["id"]
    assert forked.json()["is_pinned"] is False and forked.json()["active_schedule_count"] == 0

    def listing(path: str) -> Any:
        return client.get(f"/v1/sessions/{child}/{path}")

    file = (await listing("fs/notes/a.txt")).json()
    assert file["content"] == "hello"
    parent_file = (await client.get(f"/v1/sessions/{parent}/fs/notes/a.txt")).json()
    assert file["id"] != parent_file["id"]
    assert [k["key"] for k in (await listing("storage/keys")).json()["data"]] == ["colour"]
    assert [s["name"] for s in (await listing("storage/secrets")).json()["data"]] == ["API_TOKEN"]
    assert [d["name"] for d in (await listing("databases")).json()["data"]] == ["notes"]
    assert (await listing("resources")).json() == []
    assert len((await client.get(f"/v1/sessions/{parent}/resources")).json()) == 1
    assert (await listing("tasks")).json() == []

    # The secret was copied sealed and opens in the fork, even once the parent is gone; a
    # value the fork sets is its own.
    vault = SecretVault(SecretBox.from_settings(api.services.settings))
    assert (await client.delete(f"/v1/sessions/{parent}")).status_code == 204
    async with api.services.db.read() as conn:
        assert await vault.values(conn, api.org_id, child) == {"API_TOKEN": "s3cret"}
    changed = await client.put(
        f"/v1/sessions/{child}/storage/secrets", json={"secrets": {"API_TOKEN": "new"}}
    )
    assert changed.status_code == 200, changed.text
    async with api.services.db.read() as conn:
        assert await vault.get(conn, api.org_id, child, "API_TOKEN") == "new"
    # The parent is deleted: forking it is a 404 now.
    assert_error(await fork(api, parent), 404, "not_found")


async def test_a_fork_counts_only_its_own_usage_and_cost(engine: Api) -> None:
    api = engine
    model = await priced_model(api, "priced")
    agent = await create_agent(api, "forked-agent", default_model_id=model)
    parent = await new_session(api, agent_id=agent["id"])
    await send(api, parent, "hello")
    await wait_turns_ended(api, parent)
    before = await stats_of(api, agent["id"])
    assert before["total_estimated_cost_usd"] > 0

    forked = await fork(api, parent)
    assert forked.status_code == 201, forked.text
    child = forked.json()
    assert child["agent_id"] == agent["id"]
    assert (
        child["agent_version_id"]
        == (await api.client.get(f"/v1/sessions/{parent}")).json()["agent_version_id"]
    )
    copied = await stats_of(api, agent["id"])
    # One more session; the copied model call is the parent's, counted once.
    assert copied["session_count"] == 2 and copied["execution_count"] == 1
    for key in ("total_input_tokens", "total_output_tokens", "total_estimated_cost_usd"):
        assert copied[key] == before[key], key

    await send(api, child["id"], "again")
    await wait_turns_ended(api, child["id"], 2)
    usage = (await api.client.get(f"/v1/sessions/{child['id']}")).json()["usage"]
    after = await stats_of(api, agent["id"])
    assert after["total_input_tokens"] == before["total_input_tokens"] + usage["input_tokens"]
    own_cost = (usage["input_tokens"] * 1.0 + usage["output_tokens"] * 2.0) / 1e6
    assert after["total_estimated_cost_usd"] == pytest.approx(
        before["total_estimated_cost_usd"] + own_cost
    )


async def test_another_org_cannot_fork_or_export(api: Api, other_org: OtherOrg) -> None:
    session = await new_session(api)
    before = await snapshot(api)
    assert_error(await other_org.client.post(f"/v1/sessions/{session}/fork"), 404, "not_found")
    assert_error(await other_org.client.get(f"/v1/sessions/{session}/export"), 404, "not_found")
    assert await snapshot(api) == before
    assert_error(await api.client.get("/v1/sessions/nope/export"), 422, field="session_id")


# -- export --------------------------------------------------------------------------------


async def test_export_is_the_session_its_messages_and_its_events(engine: Api) -> None:
    api = engine
    session = await new_session(api, REPLIES, title="Exported")
    await send(api, session, "first")
    await wait_turns_ended(api, session, 1)
    await send(api, session, "second")
    await wait_turns_ended(api, session, 2)

    exported = await api.client.get(f"/v1/sessions/{session}/export")
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    assert f'filename="{session}.jsonl"' in exported.headers["content-disposition"]
    records = export_records(exported.text)
    kinds = [r["kind"] for r in records]
    found_messages = await messages(api, session)
    found_events = await events(api, session)
    assert kinds == ["session"] + ["message"] * len(found_messages) + ["event"] * len(found_events)
    assert records[0]["data"] == (await api.client.get(f"/v1/sessions/{session}")).json()
    assert [r["data"] for r in records if r["kind"] == "message"] == found_messages
    assert [r["data"] for r in records if r["kind"] == "event"] == found_events


def _turn(index: int) -> list[NewEvent]:
    """One synthetic turn of four events (two of them messages), each with some text."""
    turn_id = f"turn_{index:032x}"
    context = EventContext(turn_id=turn_id, input_message_id=f"message_{index:032x}")
    padding = "lorem ipsum " * 20

    def message(role: str, number: int) -> dict[str, Any]:
        return {
            "id": f"message_{number:032x}",
            "role": role,
            "content": [{"type": "text", "text": f"{role} {index} {padding}"}],
            "created_at": "2026-01-01T00:00:00.000Z",
        }

    return [
        NewEvent("input.message", {"message": message("user", index)}, context),
        NewEvent("turn.started", {"turn_id": turn_id, "input_message_id": None}, context),
        NewEvent(
            "output.message.completed",
            {"message": message("agent", index + 1_000_000), "metadata": {"model": "sim"}},
            context,
        ),
        NewEvent("turn.completed", {"turn_id": turn_id, "final_answer": padding}, context),
    ]


async def _session_with_events(api: Api, count: int) -> str:
    """A session whose log is ``session.started`` and then ``count`` events, appended straight
    through the store in batches."""
    session = await new_session(api)
    batch: list[NewEvent] = []
    for index in range(count // 4):
        batch.extend(_turn(index))
        if len(batch) >= 1000 or index == count // 4 - 1:
            async with api.services.db.write() as conn:
                await append_events(conn, session, batch)
            batch = []
    return session


async def _export_peak(api: Api, session_id: str) -> tuple[int, dict[str, int]]:
    """The peak of memory allocated while the whole export of the session is consumed, and its
    lines counted by kind (each line parsed, none kept)."""
    counts: dict[str, int] = {}
    caller = await caller_of(api)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        session, records = await api.services.session_fork.export(caller, session_id)
        async for line in export_lines(session, records):
            kind = json.loads(line)["kind"]
            counts[kind] = counts.get(kind, 0) + 1
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, counts


async def test_a_long_session_exports_in_flat_memory(api: Api) -> None:
    small = await _session_with_events(api, 1_000)
    large = await _session_with_events(api, 10_000)
    await _export_peak(api, small)  # warm: statement and validator caches, imports

    small_peak, small_counts = await _export_peak(api, small)
    large_peak, large_counts = await _export_peak(api, large)
    assert small_counts == {"session": 1, "message": 500, "event": 1_001}
    assert large_counts == {"session": 1, "message": 5_000, "event": 10_001}
    # Ten times the log, about the same memory: pages, not the whole session.
    assert large_peak < 2 * small_peak, (small_peak, large_peak)

    # And over HTTP: the lines parse and count the same.
    exported = await api.client.get(f"/v1/sessions/{large}/export")
    assert exported.status_code == 200
    records = export_records(exported.text)
    assert len(records) == 1 + 5_000 + 10_001
    assert [r["data"]["sequence"] for r in records if r["kind"] == "event"] == list(
        range(1, 10_002)
    )
