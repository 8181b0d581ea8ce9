"""Client-side tools: the turn pauses durably until the API caller posts results."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import Api
from tests.engine.conftest import events, new_session, send, types_of, wait_for, wait_turns_ended

pytestmark = pytest.mark.timeout(60)


def locate(**extra: Any) -> dict[str, Any]:
    return {
        "type": "client_side",
        "name": "get_location",
        "description": "Where the user is.",
        "parameters": {"type": "object", "properties": {"precise": {"type": "boolean"}}},
        **extra,
    }


SCRIPT = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "where", "name": "get_location", "arguments": {"precise": True}}],
}


async def requested_calls(api: Api, sid: str, count: int = 1) -> list[dict[str, Any]]:
    found = await wait_for(api, sid, "tool.call_requested", count)
    return [e for e in found if e["type"] == "tool.call_requested"][count - 1]["data"]["tool_calls"]


async def submit(api: Api, sid: str, results: list[dict[str, Any]]) -> Any:
    return await api.client.post(f"/v1/sessions/{sid}/tool-results", json={"tool_results": results})


async def status_of(api: Api, sid: str) -> str:
    return str((await api.client.get(f"/v1/sessions/{sid}")).json()["status"])


async def test_a_client_tool_result_goes_back_to_the_model(engine: Api) -> None:
    sid = await new_session(engine, SCRIPT, tools=[locate()])
    await send(engine, sid, "where am I?")
    calls = await requested_calls(engine, sid)
    assert calls == [
        {
            "type": "tool_call",
            "id": calls[0]["id"],
            "name": "get_location",
            "arguments": {"precise": True},
        }
    ]
    assert await status_of(engine, sid) == "waitingfortoolresults"
    answered = await submit(
        engine, sid, [{"tool_call_id": calls[0]["id"], "result": {"city": "Kyiv"}}]
    )
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"accepted": 1, "status": "active"}
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    done = [e for e in found if e["type"] == "tool.completed"]
    assert len(done) == 1 and done[0]["data"]["success"] is True
    final = [e for e in found if e["type"] == "output.message.completed"][-1]
    assert 'get_location: {"city": "Kyiv"}' in final["data"]["message"]["content"][0]["text"]
    assert await status_of(engine, sid) == "idle"


async def test_partial_then_complete_submission(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "where", "name": "get_location", "arguments": {}},
            {"when": "where", "name": "get_clock", "arguments": {}},
        ],
    }
    clock = {
        "type": "client_side",
        "name": "get_clock",
        "description": "",
        "parameters": {"type": "object"},
    }
    sid = await new_session(engine, script, tools=[locate(), clock])
    await send(engine, sid, "where and when?")
    calls = await requested_calls(engine, sid)
    assert sorted(c["name"] for c in calls) == ["get_clock", "get_location"]
    first = await submit(engine, sid, [{"tool_call_id": calls[0]["id"], "result": "one"}])
    assert first.json() == {"accepted": 1, "status": "waitingfortoolresults"}
    again = await submit(engine, sid, [{"tool_call_id": calls[0]["id"], "result": "again"}])
    assert again.status_code == 422
    assert calls[0]["id"] in again.json()["error"]["message"]
    second = await submit(engine, sid, [{"tool_call_id": calls[1]["id"], "error": "no clock here"}])
    assert second.json() == {"accepted": 1, "status": "active"}
    found = await wait_turns_ended(engine, sid)
    done = {e["data"]["tool_call_id"]: e["data"] for e in found if e["type"] == "tool.completed"}
    assert done[calls[0]["id"]]["success"] is True
    assert done[calls[1]["id"]]["error"] == "no clock here"
    late = await submit(engine, sid, [{"tool_call_id": calls[1]["id"], "result": "late"}])
    assert late.status_code == 409
    assert "not waiting for tool results" in late.json()["error"]["message"]


async def test_a_missing_result_times_out_and_the_turn_goes_on(engine: Api) -> None:
    sid = await new_session(engine, SCRIPT, tools=[locate(timeout_seconds=0.3)])
    await send(engine, sid, "where am I?")
    found = await wait_turns_ended(engine, sid)
    done = next(e for e in found if e["type"] == "tool.completed")
    assert done["data"]["status"] == "timeout"
    assert "did not answer in time" in done["data"]["error"]
    assert "turn.completed" in types_of(found)


async def test_a_new_message_while_waiting_cancels_the_pending_calls(engine: Api) -> None:
    sid = await new_session(engine, SCRIPT, tools=[locate()])
    first = await send(engine, sid, "where am I?")
    calls = await requested_calls(engine, sid)
    second = await send(engine, sid, "never mind")
    found = await wait_turns_ended(engine, sid, count=2)
    done = next(e for e in found if e["type"] == "tool.completed")
    assert done["data"]["tool_call_id"] == calls[0]["id"]
    assert done["data"]["status"] == "cancelled"
    ends = [(e["type"], e["data"]["turn_id"]) for e in found if e["type"].startswith("turn.")]
    assert ends == [
        ("turn.started", first["turn_id"]),
        ("turn.completed", first["turn_id"]),
        ("turn.started", second["turn_id"]),
        ("turn.completed", second["turn_id"]),
    ]


async def test_cancel_while_waiting_ends_the_turn(engine: Api) -> None:
    sid = await new_session(engine, SCRIPT, tools=[locate()])
    await send(engine, sid, "where am I?")
    calls = await requested_calls(engine, sid)
    cancelled = await engine.client.post(f"/v1/sessions/{sid}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    found = await wait_turns_ended(engine, sid)
    assert types_of(found)[-2:] == ["turn.cancelled", "session.idled"]
    late = await submit(engine, sid, [{"tool_call_id": calls[0]["id"], "result": 1}])
    assert late.status_code == 409
    assert await status_of(engine, sid) == "idle"


async def test_server_and_client_tools_in_one_step(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "both", "name": "add", "arguments": {"a": 1, "b": 2}},
            {"when": "both", "name": "get_location", "arguments": {}},
        ],
    }
    sid = await new_session(engine, script, tools=[locate()], capabilities=[{"ref": "test_math"}])
    await send(engine, sid, "both please")
    calls = await requested_calls(engine, sid)
    assert [c["name"] for c in calls] == ["get_location"]
    await wait_for(engine, sid, "tool.completed")  # the server-side add ran meanwhile
    await submit(engine, sid, [{"tool_call_id": calls[0]["id"], "result": "here"}])
    found = await wait_turns_ended(engine, sid)
    final = [e for e in found if e["type"] == "output.message.completed"][-1]["data"]["message"]
    text = final["content"][0]["text"]
    assert '"result": 3' in text and 'get_location: "here"' in text


async def test_bad_tool_result_submissions_change_nothing(engine: Api) -> None:
    sid = await new_session(engine, SCRIPT, tools=[locate()])
    idle = await submit(engine, sid, [{"tool_call_id": "call_x", "result": 1}])
    assert idle.status_code == 409
    await send(engine, sid, "where am I?")
    calls = await requested_calls(engine, sid)
    before = await events(engine, sid)
    huge = await submit(
        engine, sid, [{"tool_call_id": calls[0]["id"], "result": "x" * (1024 * 1024 + 10)}]
    )
    assert huge.status_code == 413
    unknown = await submit(
        engine,
        sid,
        [{"tool_call_id": calls[0]["id"], "result": 1}, {"tool_call_id": "call_nope", "result": 2}],
    )
    assert unknown.status_code == 422
    assert "call_nope" in unknown.json()["error"]["message"]
    malformed = await engine.client.post(
        f"/v1/sessions/{sid}/tool-results", json={"tool_results": "x"}
    )
    assert malformed.status_code == 422
    empty = await engine.client.post(f"/v1/sessions/{sid}/tool-results", json={"tool_results": []})
    assert empty.status_code == 422
    assert await events(engine, sid) == before
    assert await status_of(engine, sid) == "waitingfortoolresults"
    await submit(engine, sid, [{"tool_call_id": calls[0]["id"], "result": "ok"}])
    await wait_turns_ended(engine, sid)


@pytest.mark.parametrize(
    ("tools", "needle"),
    [
        (
            [locate(parameters={"type": "object", "properties": {"x": {"type": "nonsense"}}})],
            "get_location",
        ),
        ([locate(parameters={"type": "string"})], "get_location"),
        ([locate(), locate()], "get_location"),
        ([locate(name="bad name!")], "name"),
    ],
)
async def test_invalid_tool_definitions_are_refused(
    engine: Api, tools: list[Any], needle: str
) -> None:
    response = await engine.client.post("/v1/sessions", json={"tools": tools})
    assert response.status_code == 422, response.text
    assert needle in response.json()["error"]["message"] + str(
        response.json()["error"].get("field")
    )
