"""Turns through the API with llmsim: answers, tools, limits, failures, cancel, ordering."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import Api
from tests.engine.conftest import (
    events,
    new_session,
    send,
    types_of,
    wait_for,
    wait_turns_ended,
)

from everloop.capabilities.base import Capability, SideEffect, ToolContext
from everloop.domain.messages import JsonObject, JsonValue
from everloop.store.tables import turns

pytestmark = pytest.mark.timeout(60)


async def test_plain_answer_writes_the_full_event_sequence(engine: Api) -> None:
    sid = await new_session(engine, {"response": {"type": "fixed", "text": "Hello there"}})
    posted = await send(engine, sid, "hi")
    found = await wait_turns_ended(engine, sid)
    kinds = [t for t in types_of(found) if t != "output.message.delta"]
    assert kinds == [
        "session.started",
        "input.message",
        "session.activated",
        "turn.started",
        "reason.started",
        "output.message.started",
        "output.message.completed",
        "llm.generation",
        "reason.completed",
        "turn.completed",
        "session.idled",
    ]
    assert [e["sequence"] for e in found] == list(range(1, len(found) + 1))
    turn_id = posted["turn_id"]
    assert all(e["context"]["turn_id"] == turn_id for e in found[1:])
    completed = next(e for e in found if e["type"] == "output.message.completed")
    assert completed["data"]["message"]["content"] == [{"type": "text", "text": "Hello there"}]
    session = (await engine.client.get(f"/v1/sessions/{sid}")).json()
    assert session["status"] == "idle"
    assert session["preview"] == "hi"
    assert session["output_preview"] == "Hello there"
    assert session["started_at"] is not None
    generation = next(e for e in found if e["type"] == "llm.generation")
    usage = generation["data"]["metadata"]["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] == 3  # ceil(11 / 4)
    assert session["usage"]["output_tokens"] == 3
    messages = (await engine.client.get(f"/v1/sessions/{sid}/messages")).json()["data"]
    assert [m["role"] for m in messages] == ["user", "agent"]
    assert messages[0]["id"] == posted["id"]


async def test_one_tool_call_runs_and_its_result_reaches_the_model(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
    }
    sid = await new_session(engine, script, capabilities=[{"ref": "test_math"}])
    await send(engine, sid, "please add these")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    done = [e for e in found if e["type"] == "tool.completed"]
    assert len(done) == 1
    assert done[0]["data"]["success"] is True
    assert done[0]["data"]["result"] == [{"type": "text", "text": '{"result":5}'}]
    final = [e for e in found if e["type"] == "output.message.completed"][-1]
    assert 'add: {"result": 5}' in final["data"]["message"]["content"][0]["text"]
    messages = (await engine.client.get(f"/v1/sessions/{sid}/messages")).json()["data"]
    assert [m["role"] for m in messages] == ["user", "agent", "tool_result", "agent"]
    assert messages[1]["content"][0]["type"] == "tool_call"


@dataclass
class Rendezvous:
    """A tool whose calls wait up to ``patience`` seconds for ``expected`` calls to be inside
    at once, recording the most that were: calls that may overlap always do within the wait,
    calls that must not overlap cannot be missed overlapping (each one waits for the other)."""

    expected: int
    patience: float
    name: str = "meet"
    side_effect: SideEffect = SideEffect.PURE
    description: str = "Meet the other calls."
    parameters: JsonObject = field(
        default_factory=lambda: {"type": "object", "properties": {"tag": {"type": "string"}}}
    )
    inside: int = 0
    most_inside: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        if self.inside >= self.expected:
            self.arrived.set()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.patience):
                    await self.arrived.wait()
        finally:
            self.inside -= 1
        return {"tag": arguments.get("tag")}


def _meet_capability(tool: Rendezvous) -> Capability:
    return Capability(id="meet", name="Meet", description="test tool", tools=(tool,))


_TWO_CALLS = {
    "response": {"type": "echo"},
    "tool_calls": [
        {"when": "go", "name": "meet", "arguments": {"tag": "a"}},
        {"when": "go", "name": "meet", "arguments": {"tag": "b"}},
    ],
}


async def test_parallel_tool_calls_run_concurrently(engine: Api) -> None:
    tool = Rendezvous(expected=2, patience=10.0)
    engine.services.capabilities.register(_meet_capability(tool))
    sid = await new_session(engine, _TWO_CALLS, capabilities=[{"ref": "meet"}])
    await send(engine, sid, "go")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    assert tool.most_inside == 2
    done = [e for e in found if e["type"] == "tool.completed"]
    assert sorted(e["data"]["result"][0]["text"] for e in done) == ['{"tag":"a"}', '{"tag":"b"}']
    act = next(e for e in found if e["type"] == "act.completed")
    assert act["data"]["success_count"] == 2


async def test_tool_calls_run_one_at_a_time_when_parallel_is_off(engine: Api) -> None:
    # The first call waits (a bounded while) for the second: run in parallel, it would come.
    tool = Rendezvous(expected=2, patience=1.0)
    engine.services.capabilities.register(_meet_capability(tool))
    sid = await new_session(
        engine, _TWO_CALLS, capabilities=[{"ref": "meet"}], parallel_tool_calls=False
    )
    await send(engine, sid, "go")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    assert tool.most_inside == 1
    assert len([e for e in found if e["type"] == "tool.completed"]) == 2


async def test_reaching_max_iterations_ends_the_turn_with_a_clear_message(engine: Api) -> None:
    script = {"tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 1, "b": 1}}]}
    sid = await new_session(engine, script, capabilities=[{"ref": "test_math"}], max_iterations=1)
    await send(engine, sid, "add forever")
    found = await wait_turns_ended(engine, sid)
    failed = next(e for e in found if e["type"] == "turn.failed")
    assert failed["data"]["error_code"] == "max_iterations_reached"
    final = [e for e in found if e["type"] == "output.message.completed"][-1]
    assert "limit of 1 iteration" in final["data"]["message"]["content"][0]["text"]
    assert types_of(found)[-1] == "session.idled"
    session = (await engine.client.get(f"/v1/sessions/{sid}")).json()
    assert session["status"] == "idle"


async def test_transient_model_error_is_retried(engine: Api) -> None:
    script = {
        "response": {
            "type": "error",
            "status": 503,
            "message": "overloaded",
            "fail_attempts": 2,
            "then": {"type": "fixed", "text": "recovered"},
        }
    }
    sid = await new_session(engine, script)
    await send(engine, sid, "hello")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    generation = next(e for e in found if e["type"] == "llm.generation")
    assert generation["data"]["metadata"]["attempts"] == 3
    final = next(e for e in found if e["type"] == "output.message.completed")
    assert final["data"]["message"]["content"][0]["text"] == "recovered"


async def test_permanent_model_error_fails_the_turn_readably(engine: Api) -> None:
    script = {"response": {"type": "error", "status": 400, "message": "bad request"}}
    sid = await new_session(engine, script)
    await send(engine, sid, "hello")
    found = await wait_turns_ended(engine, sid)
    failed = next(e for e in found if e["type"] == "turn.failed")
    assert failed["data"]["error_code"] == "model_call_failed"
    generation = next(e for e in found if e["type"] == "llm.generation")
    assert generation["data"]["metadata"]["attempts"] == 1
    assert generation["data"]["metadata"]["success"] is False
    final = [e for e in found if e["type"] == "output.message.completed"][-1]
    text = final["data"]["message"]["content"][0]["text"]
    assert text.startswith("Sorry")
    assert "turn.completed" not in types_of(found)
    session = (await engine.client.get(f"/v1/sessions/{sid}")).json()
    assert session["status"] == "idle"
    assert session["output_preview"] == text[:200]


async def test_a_tool_error_goes_back_to_the_model_and_the_turn_goes_on(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "divide", "name": "divide", "arguments": {"a": 1, "b": 0}}],
    }
    sid = await new_session(engine, script, capabilities=[{"ref": "test_math"}])
    await send(engine, sid, "divide by zero")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    done = next(e for e in found if e["type"] == "tool.completed")
    assert done["data"]["success"] is False
    assert "division by zero" in done["data"]["error"]
    final = [e for e in found if e["type"] == "output.message.completed"][-1]
    assert "division by zero" in final["data"]["message"]["content"][0]["text"]


async def test_cancel_during_a_model_call_stops_the_turn(engine: Api) -> None:
    sid = await new_session(
        engine, {"response": {"type": "fixed", "text": "late"}, "latency_ms": 30_000}
    )
    await send(engine, sid, "take your time")
    await wait_for(engine, sid, "output.message.started")
    cancelled = await engine.client.post(f"/v1/sessions/{sid}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    found = await wait_turns_ended(engine, sid)
    assert types_of(found)[-2:] == ["turn.cancelled", "session.idled"]
    session = (await engine.client.get(f"/v1/sessions/{sid}")).json()
    assert session["status"] == "idle"
    # The interrupted call writes nothing afterwards, and a second cancel is a no-op.
    again = await engine.client.post(f"/v1/sessions/{sid}/cancel")
    assert again.json()["status"] == "no_op"
    assert "output.message.completed" not in types_of(await events(engine, sid))


async def test_cancel_on_an_idle_session_is_a_no_op(engine: Api) -> None:
    sid = await new_session(engine)
    response = await engine.client.post(f"/v1/sessions/{sid}/cancel")
    assert response.status_code == 200
    assert response.json() == {"status": "no_op", "turn_id": None}


async def test_two_messages_back_to_back_run_as_two_turns_in_order(engine: Api) -> None:
    sid = await new_session(engine, {"response": {"type": "echo"}, "latency_ms": 50})
    first = await send(engine, sid, "first")
    second = await send(engine, sid, "second")
    found = await wait_turns_ended(engine, sid, count=2)
    turn_events = [e for e in found if e["type"] in ("turn.started", "turn.completed")]
    assert [(e["type"], e["data"]["turn_id"]) for e in turn_events] == [
        ("turn.started", first["turn_id"]),
        ("turn.completed", first["turn_id"]),
        ("turn.started", second["turn_id"]),
        ("turn.completed", second["turn_id"]),
    ]
    answers = [
        e["data"]["message"]["content"][0]["text"]
        for e in found
        if e["type"] == "output.message.completed"
    ]
    assert answers == ["Echo: first", "Echo: second"]
    # The second turn saw the first turn's conversation.
    generations = [e for e in found if e["type"] == "llm.generation"]
    assert generations[1]["data"]["metadata"]["prompt_message_count"] == 3


async def test_an_unknown_capability_is_refused_when_the_session_is_created(engine: Api) -> None:
    response = await engine.client.post(
        "/v1/sessions", json={"capabilities": [{"ref": "no_such_capability"}]}
    )
    assert response.status_code == 422
    assert "no_such_capability" in response.json()["error"]["message"]


async def test_a_model_deleted_after_the_session_was_created_fails_the_turn(engine: Api) -> None:
    sid = await new_session(engine, {"response": {"type": "fixed", "text": "hi"}})
    model_id = (await engine.client.get(f"/v1/sessions/{sid}")).json()["model_id"]
    deleted = await engine.client.delete(f"/v1/models/{model_id}")
    assert deleted.status_code == 204, deleted.text
    await send(engine, sid, "hello")
    found = await wait_turns_ended(engine, sid)
    failed = next(e for e in found if e["type"] == "turn.failed")
    assert failed["data"]["error_code"] == "turn_setup_failed"
    assert model_id in failed["data"]["error"]
    assert (await engine.client.get(f"/v1/sessions/{sid}")).json()["status"] == "idle"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"message": {"role": "user", "content": []}}, 422, "message.content"),
        (
            {"message": {"role": "user", "content": [{"type": "text", "text": "  "}]}},
            422,
            "message.content[0].text",
        ),
        (
            {"message": {"role": "user", "content": [{"type": "tool_call"}]}},
            422,
            "message.content[0].type",
        ),
        (
            {"message": {"role": "agent", "content": [{"type": "text", "text": "x"}]}},
            422,
            "message.role",
        ),
        ({}, 422, "message"),
    ],
)
async def test_bad_messages_are_refused_and_start_nothing(
    engine: Api, body: dict[str, Any], status: int, field: str
) -> None:
    sid = await new_session(engine)
    response = await engine.client.post(f"/v1/sessions/{sid}/messages", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    assert types_of(await events(engine, sid)) == ["session.started"]


async def test_messages_to_an_unknown_session_are_404(engine: Api) -> None:
    response = await engine.client.post(
        "/v1/sessions/session_00000000000000000000000000000000/messages",
        json={"message": {"role": "user", "content": [{"type": "text", "text": "x"}]}},
    )
    assert response.status_code == 404


async def test_closing_the_engine_mid_turn_stops_its_task_and_leaves_the_turn_open(
    engine: Api,
) -> None:
    # A process shutting down while a turn waits on its model: the turn's task must be gone
    # once the engine is closed (a task left running would go on using the closed database
    # pools), and the turn stays open for the next start to resume.
    sid = await new_session(
        engine, {"response": {"type": "fixed", "text": "late"}, "latency_ms": 30_000}
    )
    posted = await send(engine, sid, "take your time")
    await wait_for(engine, sid, "output.message.started")
    turn_tasks = [t for t in asyncio.all_tasks() if _runs_turn(t)]
    assert turn_tasks, "the turn runs as a task of this process"
    await engine.services.engine.close()
    assert all(t.done() for t in turn_tasks)
    assert not [t for t in asyncio.all_tasks() if _runs_turn(t) and not t.done()]
    async with engine.services.db.read() as conn:
        status = (
            await conn.execute(select(turns.c.status).where(turns.c.id == posted["turn_id"]))
        ).scalar()
    assert status == "running"
    assert "turn.cancelled" not in types_of(await events(engine, sid))


def _runs_turn(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is running a turn (the embedded engine's task, or DBOS's workflow)."""
    frames = [task.get_coro()]
    while frames:
        coro = frames.pop()
        code = getattr(coro, "cr_code", None)
        if code is not None and code.co_name == "run_turn":
            return True
        awaited = getattr(coro, "cr_await", None)
        if awaited is not None:
            frames.append(awaited)
    return False
