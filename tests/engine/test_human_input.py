"""A person in the loop: ``ask_user`` questions and tool approvals park the turn like a
client-side tool; answers and decisions resume it (real app, real engine, SQLite or PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import Api
from tests.engine.conftest import events, new_session, send, types_of, wait_for, wait_turns_ended

pytestmark = pytest.mark.timeout(60)

QUESTIONS = {
    "questions": [
        {"question": "Which colour?", "choices": ["red", "blue"]},
        {"id": "name", "question": "What should I call it?"},
    ]
}
ASK = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "plan", "name": "ask_user", "arguments": QUESTIONS}],
}
SAVE = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "save", "name": "kv_set", "arguments": {"key": "k", "value": "v"}}],
}


def approvals(**config: Any) -> list[dict[str, Any]]:
    return [{"ref": "key_value"}, {"ref": "tool_approval", "config": config or None}]


async def status_of(api: Api, sid: str) -> str:
    return str((await api.client.get(f"/v1/sessions/{sid}")).json()["status"])


async def pending(api: Api, sid: str) -> dict[str, Any]:
    found = await api.client.get(f"/v1/sessions/{sid}/pending-input")
    assert found.status_code == 200, found.text
    return dict(found.json())


async def answer(api: Api, sid: str, body: Any) -> Any:
    return await api.client.post(f"/v1/sessions/{sid}/question-answers", json=body)


async def decide(api: Api, sid: str, *decisions: dict[str, Any]) -> Any:
    return await api.client.post(
        f"/v1/sessions/{sid}/tool-approvals", json={"decisions": list(decisions)}
    )


async def keys(api: Api, sid: str) -> dict[str, str]:
    found = (await api.client.get(f"/v1/sessions/{sid}/storage/keys")).json()["data"]
    return {kv["key"]: kv["value"] for kv in found}


def final_text(found: list[dict[str, Any]]) -> str:
    final = [e for e in found if e["type"] == "output.message.completed"][-1]
    return str(final["data"]["message"]["content"][0]["text"])


async def test_ask_user_waits_for_the_answers_and_the_turn_uses_them(engine: Api) -> None:
    sid = await new_session(
        engine, ASK, capabilities=[{"ref": "ask_user"}], hints={"ask_user": True}
    )
    await send(engine, sid, "plan a thing")
    found = await wait_for(engine, sid, "tool.call_requested")
    requested = next(e for e in found if e["type"] == "tool.call_requested")["data"]
    call_id = requested["tool_calls"][0]["id"]
    assert requested["kind"] == "ask_user"
    assert [q["id"] for q in requested["questions"]] == ["q1", "name"]
    assert requested["questions"][0]["choices"] == ["red", "blue"]
    assert await status_of(engine, sid) == "waitingfortoolresults"
    waiting = await pending(engine, sid)
    assert waiting["pending_approvals"] == []
    assert [p["tool_call_id"] for p in waiting["pending_questions"]] == [call_id]

    before = await events(engine, sid)
    wrong = await answer(
        engine,
        sid,
        {
            "tool_call_id": call_id,
            "answers": [
                {"question_id": "q1", "answer": "green"},
                {"question_id": "name", "answer": "Bob"},
            ],
        },
    )
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["error"]["field"] == "answers[0].answer"
    missing = await answer(
        engine, sid, {"tool_call_id": call_id, "answers": [{"question_id": "q1", "answer": "red"}]}
    )
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "answers"
    assert await events(engine, sid) == before

    # tool_call_id left out: the one pending set.
    done = await answer(
        engine,
        sid,
        {
            "answers": [
                {"question_id": "q1", "answer": "blue"},
                {"question_id": "name", "answer": "Bob"},
            ]
        },
    )
    assert done.status_code == 200, done.text
    assert done.json() == {"accepted": 1, "status": "active", "tool_call_ids": [call_id]}
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    (answered,) = [e["data"] for e in found if e["type"] == "tool.questions_answered"]
    assert answered["answers"][0] == {
        "question_id": "q1",
        "question": "Which colour?",
        "answer": "blue",
    }
    text = final_text(found)
    assert "ask_user:" in text and '"blue"' in text and '"Bob"' in text
    again = await answer(
        engine, sid, {"tool_call_id": call_id, "answers": [{"question_id": "q1", "answer": "red"}]}
    )
    assert again.status_code == 409
    assert await status_of(engine, sid) == "idle"


async def test_ask_user_is_not_offered_without_the_client_hint(engine: Api) -> None:
    sid = await new_session(engine, ASK, capabilities=[{"ref": "ask_user"}])
    await send(engine, sid, "plan a thing")
    found = await wait_turns_ended(engine, sid)
    assert "tool.call_requested" not in types_of(found)
    assert final_text(found) == "Echo: plan a thing"
    # The hint may come with the message instead (controls.hints).
    posted = await engine.client.post(
        f"/v1/sessions/{sid}/messages",
        json={
            "message": {"role": "user", "content": [{"type": "text", "text": "plan again"}]},
            "controls": {"hints": {"ask_user": True}},
        },
    )
    assert posted.status_code == 201, posted.text
    await wait_for(engine, sid, "tool.call_requested")
    listed = (await pending(engine, sid))["pending_questions"]
    assert len(listed) == 1
    cancelled = await engine.client.post(f"/v1/sessions/{sid}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    await wait_turns_ended(engine, sid, count=2)
    assert (await pending(engine, sid))["pending_questions"] == []


async def test_an_approved_call_runs_once(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            *SAVE["tool_calls"],
            {"when": "save", "name": "add", "arguments": {"a": 1, "b": 2}},
        ],
    }
    sid = await new_session(
        engine, script, capabilities=[*approvals(tools=["kv_set"]), {"ref": "test_math"}]
    )
    await send(engine, sid, "save it")
    found = await wait_for(engine, sid, "tool.approval_requested")
    (requested,) = [e["data"] for e in found if e["type"] == "tool.approval_requested"]
    (call,) = requested["tool_calls"]
    assert call["name"] == "kv_set" and call["arguments"] == {"key": "k", "value": "v"}
    # The ungated call runs while the gated one waits.
    found = await wait_for(engine, sid, "tool.completed")
    done = [e["data"] for e in found if e["type"] == "tool.completed"]
    assert [d["tool_name"] for d in done] == ["add"]
    started = [e["data"]["tool_call"]["name"] for e in found if e["type"] == "tool.started"]
    assert started == ["add"]
    assert await status_of(engine, sid) == "waitingfortoolresults"
    (waiting,) = (await pending(engine, sid))["pending_approvals"]
    assert waiting["tool_call_id"] == call["id"] and waiting["tool_name"] == "kv_set"
    assert await keys(engine, sid) == {}

    unknown = await decide(engine, sid, {"tool_call_id": "call_nope", "approved": True})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "decisions[0].tool_call_id"
    approved = await decide(engine, sid, {"tool_call_id": call["id"], "approved": True})
    assert approved.status_code == 200, approved.text
    assert approved.json() == {
        "accepted": 1,
        "status": "active",
        "decisions": [{"tool_call_id": call["id"], "approved": True}],
    }
    again = await decide(engine, sid, {"tool_call_id": call["id"], "approved": False})
    assert again.status_code == 409, again.text
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    done = [e["data"] for e in found if e["type"] == "tool.completed"]
    assert sorted(d["tool_name"] for d in done) == ["add", "kv_set"]
    assert all(d["success"] for d in done)
    (decided,) = [e["data"] for e in found if e["type"] == "tool.approval_decided"]
    assert decided["approved"] is True and decided["decided_by"] == "person"
    assert await keys(engine, sid) == {"k": "v"}
    assert '"created": true' in final_text(found)


async def test_a_denied_call_does_not_run_and_the_model_sees_why(engine: Api) -> None:
    sid = await new_session(engine, SAVE, capabilities=approvals(patterns=["kv_*"]))
    await send(engine, sid, "save it")
    found = await wait_for(engine, sid, "tool.approval_requested")
    call_id = next(e for e in found if e["type"] == "tool.approval_requested")["data"][
        "tool_calls"
    ][0]["id"]
    denied = await decide(
        engine, sid, {"tool_call_id": call_id, "approved": False, "reason": "not today"}
    )
    assert denied.status_code == 200, denied.text
    found = await wait_turns_ended(engine, sid)
    (done,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    assert done["success"] is False and done["error_kind"] == "denied"
    assert done["error"] == "denied by the user: not today"
    assert "kv_set: error: denied by the user: not today" in final_text(found)
    assert "tool.started" not in types_of(found)
    assert await keys(engine, sid) == {}


async def test_no_decision_in_time_is_a_denial(engine: Api) -> None:
    sid = await new_session(engine, SAVE, capabilities=approvals(all=True, timeout_seconds=0.3))
    await send(engine, sid, "save it")
    found = await wait_turns_ended(engine, sid)
    (done,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    assert done["status"] == "timeout" and done["error_kind"] == "denied"
    assert "nobody approved" in done["error"]
    (decided,) = [e["data"] for e in found if e["type"] == "tool.approval_decided"]
    assert decided["approved"] is False and decided["decided_by"] == "timeout"
    assert "turn.completed" in types_of(found)
    assert await keys(engine, sid) == {}
    late = await decide(engine, sid, {"tool_call_id": done["tool_call_id"], "approved": True})
    assert late.status_code == 409


async def test_a_new_message_abandons_the_approval(engine: Api) -> None:
    sid = await new_session(engine, SAVE, capabilities=approvals(risk="low"))
    await send(engine, sid, "save it")
    await wait_for(engine, sid, "tool.approval_requested")
    await send(engine, sid, "never mind")
    found = await wait_turns_ended(engine, sid, count=2)
    (done,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    assert done["status"] == "cancelled"
    (decided,) = [e["data"] for e in found if e["type"] == "tool.approval_decided"]
    assert decided["decided_by"] == "user_message"
    assert types_of(found).count("turn.completed") == 2
    assert await keys(engine, sid) == {}
    assert (await pending(engine, sid))["pending_approvals"] == []


async def test_calls_the_policy_does_not_name_run_at_once(engine: Api) -> None:
    sid = await new_session(engine, SAVE, capabilities=approvals(tools=["kv_delete"], risk="high"))
    await send(engine, sid, "save it")
    found = await wait_turns_ended(engine, sid)
    assert "tool.approval_requested" not in types_of(found)
    assert await keys(engine, sid) == {"k": "v"}


async def test_bad_bodies_change_nothing(engine: Api) -> None:
    sid = await new_session(engine, SAVE, capabilities=approvals())
    idle = await decide(engine, sid, {"tool_call_id": "call_1", "approved": True})
    assert idle.status_code == 409
    no_questions = await answer(
        engine, sid, {"tool_call_id": "call_1", "answers": [{"question_id": "q1", "answer": "x"}]}
    )
    assert no_questions.status_code == 409
    await send(engine, sid, "save it")
    found = await wait_for(engine, sid, "tool.approval_requested")
    call_id = next(e for e in found if e["type"] == "tool.approval_requested")["data"][
        "tool_calls"
    ][0]["id"]
    before = await events(engine, sid)
    for body in (
        {},
        {"decisions": []},
        {"decisions": [{"tool_call_id": call_id}]},
        {"decisions": [{"tool_call_id": call_id, "approved": "yes"}]},
        {
            "decisions": [
                {"tool_call_id": call_id, "approved": True},
                {"tool_call_id": call_id, "approved": False},
            ]
        },
    ):
        refused = await engine.client.post(f"/v1/sessions/{sid}/tool-approvals", json=body)
        assert refused.status_code == 422, (body, refused.text)
    # Results for client-side tools do not decide approvals.
    results = await engine.client.post(
        f"/v1/sessions/{sid}/tool-results",
        json={"tool_results": [{"tool_call_id": call_id, "result": "x"}]},
    )
    assert results.status_code == 409
    assert await events(engine, sid) == before
    await decide(engine, sid, {"tool_call_id": call_id, "approved": True})
    await wait_turns_ended(engine, sid)
    assert await keys(engine, sid) == {"k": "v"}
