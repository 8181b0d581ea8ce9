"""Schedules through the API (``/v1/durable/schedules``) and through the agent's tools: shapes
of the reference OpenAPI, bad input naming its field, another org's schedule a 404, trigger,
executions and stats, ``active_schedule_count`` on session reads and lists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.conftest import OtherOrg, assert_error
from tests.conftest import Api
from tests.engine.conftest import events, new_session, scripted_model, send, wait_turns_ended

pytestmark = pytest.mark.timeout(60)

SCHEDULE_FIELDS = {
    "id",
    "name",
    "description",
    "cron_expression",
    "scheduled_at",
    "timezone",
    "target",
    "session_id",
    "enabled",
    "catch_up_missed",
    "max_catch_up",
    "max_concurrent",
    "retry_policy",
    "next_trigger_at",
    "last_triggered_at",
    "created_at",
    "updated_at",
}


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def body(session_id: str, **fields: Any) -> dict[str, Any]:
    message = fields.pop("message", "check the queue")
    found: dict[str, Any] = {
        "name": "nightly",
        "cron_expression": "0 2 * * *",
        "timezone": "Europe/Vilnius",
        "target": {
            "type": "workflow",
            "name": "session.run",
            "input": {"session_id": session_id, "message": message},
        },
    }
    found.update(fields)
    return found


async def create(api: Api, session_id: str, **fields: Any) -> dict[str, Any]:
    created = await api.client.post("/v1/durable/schedules", json=body(session_id, **fields))
    assert created.status_code == 201, created.text
    return dict(created.json())


async def count_of(api: Api, session_id: str) -> int:
    found = await api.client.get(f"/v1/sessions/{session_id}")
    listed = await api.client.get("/v1/sessions")
    [row] = [s for s in listed.json()["data"] if s["id"] == session_id]
    assert row["active_schedule_count"] == found.json()["active_schedule_count"]
    return int(found.json()["active_schedule_count"])


async def test_create_read_update_pause_resume_delete(api: Api) -> None:
    session_id = await new_session(api)
    assert await count_of(api, session_id) == 0
    schedule = await create(api, session_id, description="the nightly check")
    assert set(schedule) == SCHEDULE_FIELDS
    assert schedule["id"].startswith("sched_") and schedule["session_id"] == session_id
    assert schedule["target"] == {
        "type": "workflow",
        "name": "session.run",
        "input": {"session_id": session_id, "message": "check the queue"},
    }
    assert (schedule["enabled"], schedule["catch_up_missed"], schedule["max_catch_up"]) == (
        True,
        True,
        1,
    )
    assert schedule["next_trigger_at"] is not None and schedule["last_triggered_at"] is None
    assert await count_of(api, session_id) == 1
    one = f"/v1/durable/schedules/{schedule['id']}"
    assert (await api.client.get(one)).json() == schedule
    listed = (await api.client.get("/v1/durable/schedules")).json()
    assert listed["total"] == 1 and listed["data"] == [schedule]
    assert (await api.client.get("/v1/durable/schedules?enabled=false")).json()["total"] == 0
    moved = await api.client.patch(
        one,
        json={"cron_expression": "30 6 * * 1-5", "timezone": "America/New_York", "max_catch_up": 0},
    )
    assert moved.status_code == 200, moved.text
    moved_body = moved.json()
    assert moved_body["cron_expression"] == "30 6 * * 1-5"
    assert moved_body["catch_up_missed"] is False
    assert moved_body["next_trigger_at"] != schedule["next_trigger_at"]
    paused = (await api.client.post(f"{one}/pause")).json()
    assert (paused["enabled"], paused["next_trigger_at"]) == (False, None)
    assert await count_of(api, session_id) == 0
    resumed = (await api.client.post(f"{one}/resume")).json()
    assert resumed["enabled"] and resumed["next_trigger_at"] == moved_body["next_trigger_at"]
    assert await count_of(api, session_id) == 1
    assert (await api.client.delete(one)).status_code == 204
    assert_error(await api.client.get(one), 404)
    assert await count_of(api, session_id) == 0


async def test_bad_input_names_the_field_and_writes_nothing(api: Api) -> None:
    session_id = await new_session(api)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cron_expression": "61 * * * *"}, "cron_expression"),
        ({"cron_expression": "*/2 * * * *"}, "cron_expression"),  # under 300 s apart
        ({"timezone": "Atlantis/Capital"}, "timezone"),
        ({"cron_expression": None, "scheduled_at": "2001-01-01T00:00:00Z"}, "scheduled_at"),
        ({"cron_expression": None, "scheduled_at": "2099-01-01T00:00:00"}, "scheduled_at"),
        ({"max_catch_up": 3}, "max_catch_up"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"retry_policy": {"max_attempts": 3}}, "retry_policy"),
        ({"name": ""}, "name"),
    ]
    for fields, field in cases:
        refused = await api.client.post("/v1/durable/schedules", json=body(session_id, **fields))
        assert_error(refused, 422, field=field)
    wrong_target = body(session_id)
    wrong_target["target"]["type"] = "activity"
    assert_error(
        await api.client.post("/v1/durable/schedules", json=wrong_target), 422, field="target.type"
    )
    wrong_target["target"].update(type="workflow", name="billing.run")
    assert_error(
        await api.client.post("/v1/durable/schedules", json=wrong_target), 422, field="target.name"
    )
    unknown = body("session_0193" + "0" * 28)
    assert_error(
        await api.client.post("/v1/durable/schedules", json=unknown),
        422,
        field="target.input.session_id",
    )
    assert (await api.client.get("/v1/durable/schedules")).json()["total"] == 0
    await create(api, session_id)
    assert_error(await api.client.post("/v1/durable/schedules", json=body(session_id)), 409)
    assert (await api.client.get("/v1/durable/schedules")).json()["total"] == 1


async def test_another_orgs_schedule_is_not_found(api: Api, other_org: OtherOrg) -> None:
    session_id = await new_session(api)
    schedule = await create(api, session_id)
    one = f"/v1/durable/schedules/{schedule['id']}"
    for method, path in [
        ("GET", one),
        ("PATCH", one),
        ("DELETE", one),
        ("POST", f"{one}/pause"),
        ("POST", f"{one}/resume"),
        ("POST", f"{one}/trigger"),
        ("GET", f"{one}/executions"),
        ("GET", f"{one}/stats"),
    ]:
        found = await other_org.client.request(method, path, json={} if method == "PATCH" else None)
        assert_error(found, 404)
    assert (await other_org.client.get("/v1/durable/schedules")).json()["total"] == 0
    # Nor can it schedule into this org's session.
    assert_error(
        await other_org.client.post("/v1/durable/schedules", json=body(session_id)),
        422,
        field="target.input.session_id",
    )
    assert (await api.client.get(one)).json() == schedule


async def test_trigger_fires_now_and_executions_follow_the_turn(engine: Api) -> None:
    session_id = await new_session(engine)
    schedule = await create(engine, session_id)
    one = f"/v1/durable/schedules/{schedule['id']}"
    triggered = await engine.client.post(f"{one}/trigger")
    assert triggered.status_code == 200, triggered.text
    execution_id = triggered.json()["execution_id"]
    await wait_turns_ended(engine, session_id)
    listed = (await engine.client.get(f"{one}/executions")).json()
    [execution] = listed["data"]
    assert listed["total"] == 1 and execution["id"] == execution_id
    assert (execution["trigger"], execution["status"]) == ("manual", "completed")
    assert execution["turn_id"] == triggered.json()["turn_id"] == execution["workflow_id"]
    assert execution["duration_ms"] is not None and execution["completed_at"] is not None
    stats = (await engine.client.get(f"{one}/stats")).json()
    assert stats["total_executions"] == stats["successful_executions"] == 1
    assert stats["last_execution_status"] == "completed"
    completed = await engine.client.get(f"{one}/executions?status=completed")
    assert completed.json()["total"] == 1
    assert (await engine.client.get(f"{one}/executions?status=failed")).json()["total"] == 0
    after = (await engine.client.get(one)).json()
    assert after["next_trigger_at"] == schedule["next_trigger_at"]  # a trigger does not move it
    assert after["last_triggered_at"] is not None
    [message] = [e for e in await events(engine, session_id) if e["type"] == "input.message"]
    assert message["metadata"]["trigger"] == "manual"
    assert message["metadata"]["schedule_id"] == schedule["id"]


async def test_deleting_a_session_deletes_its_schedules(api: Api) -> None:
    session_id = await new_session(api)
    schedule = await create(api, session_id)
    assert (await api.client.delete(f"/v1/sessions/{session_id}")).status_code == 204
    assert_error(await api.client.get(f"/v1/durable/schedules/{schedule['id']}"), 404)


SCHEDULING_MODEL = {
    "response": {"type": "echo"},
    "tool_calls": [
        {
            "when": "remind",
            "name": "create_schedule",
            "arguments": {
                "name": "standup",
                "message": "run the standup summary",
                "cron_expression": "0 9 * * 1-5",
                "timezone": "Europe/Vilnius",
            },
        },
        {"when": "what is planned", "name": "list_schedules", "arguments": {}},
        {
            "when": "too often",
            "name": "create_schedule",
            "arguments": {"name": "spam", "message": "x", "cron_expression": "* * * * *"},
        },
        {"when": "stop it", "name": "cancel_schedule", "arguments": {"schedule": "standup"}},
    ],
}


async def tool_results(api: Api, session_id: str) -> list[dict[str, Any]]:
    return [e["data"] for e in await events(api, session_id) if e["type"] == "tool.completed"]


async def test_the_agent_schedules_through_its_tools(engine: Api) -> None:
    model_id = await scripted_model(engine, SCHEDULING_MODEL)
    session_id = await new_session(
        engine, model_id=model_id, capabilities=[{"ref": "session_schedule"}]
    )
    await send(engine, session_id, "remind me every weekday")
    await wait_turns_ended(engine, session_id)
    [created] = await tool_results(engine, session_id)
    assert created["status"] == "success", created
    listed = (await engine.client.get(f"/v1/durable/schedules?session_id={session_id}")).json()
    [schedule] = listed["data"]
    assert (schedule["name"], schedule["cron_expression"]) == ("standup", "0 9 * * 1-5")
    assert await count_of(engine, session_id) == 1
    await send(engine, session_id, "that is too often")
    await wait_turns_ended(engine, session_id, count=2)
    refused = (await tool_results(engine, session_id))[-1]
    assert refused["status"] == "error" and "cron_expression" in str(refused)
    await send(engine, session_id, "stop it please")
    await wait_turns_ended(engine, session_id, count=3)
    cancelled = (await tool_results(engine, session_id))[-1]
    assert cancelled["status"] == "success", cancelled
    assert await count_of(engine, session_id) == 0
    assert (await engine.client.get("/v1/durable/schedules")).json()["total"] == 0
