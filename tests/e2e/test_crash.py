"""Crash and shutdown of a real ``everloop serve`` process (issue 3).

``kill -9`` in the middle of a turn, while idle, and SIGTERM with a stream open and a turn in
flight. After a restart on the same data dir and port the engine resumes the turn (DBOS recovery
under the executor id kept in the data dir); the checks are on the event log, never on timings.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Api, Frame, Server, iter_frames

pytestmark = pytest.mark.slow

DEADLINE = 60.0
SLOW_ADD = {
    "response": {"type": "fixed", "text": "The sum is 5."},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
    # Long enough that the second model call is still running when the test kills the server.
    "latency_ms": 2000,
}

# One turn of model -> add -> model, whatever happened to the process in between.
ONE_TOOL_TURN = {
    "input.message": 1,
    "session.activated": 1,
    "turn.started": 1,
    "reason.started": 2,
    "output.message.started": 2,
    "output.message.completed": 2,
    "llm.generation": 2,
    "reason.completed": 2,
    "act.started": 1,
    "tool.started": 1,
    "tool.completed": 1,
    "act.completed": 1,
    "turn.completed": 1,
    "session.idled": 1,
}


@contextmanager
def open_stream(
    server: Server, session_id: str, last_event_id: str | None = None
) -> Iterator[Iterator[Frame]]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with (
        httpx.Client(headers=server.headers, timeout=httpx.Timeout(15.0)) as client,
        client.stream(
            "GET", f"{server.api_url}/v1/sessions/{session_id}/sse", headers=headers
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        yield iter_frames(response.iter_lines())


def read_until(frames: Iterator[Frame], event_type: str, into: list[dict[str, Any]]) -> None:
    """Append durable events from ``frames`` to ``into`` until one of ``event_type``."""
    deadline = time.monotonic() + DEADLINE
    for frame in frames:
        assert time.monotonic() < deadline, f"no {event_type} on the stream"
        assert frame.event != "disconnecting", "stream cycled unexpectedly"
        if frame.id is None:
            continue
        into.append(frame.json())
        if frame.event == event_type:
            return
    raise AssertionError(f"stream ended before {event_type}")


def assert_log_sound(log: list[dict[str, Any]]) -> None:
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1)), "gaps or duplicates"
    assert len({e["id"] for e in log}) == len(log), "duplicate event ids"
    completed = Counter(e["data"]["tool_call_id"] for e in log if e["type"] == "tool.completed")
    started = Counter(e["data"]["tool_call"]["id"] for e in log if e["type"] == "tool.started")
    assert set(completed.values()) <= {1}, completed
    assert set(started.values()) <= {1}, started
    assert set(completed) == set(started)


def counts(log: list[dict[str, Any]]) -> dict[str, int]:
    found = Counter(e["type"] for e in log)
    return {kind: found[kind] for kind in ONE_TOOL_TURN}


@pytest.mark.parametrize(
    "kill_after",
    [
        pytest.param("tool.completed", id="during-second-model-call"),
        pytest.param("reason.started", id="during-first-model-call"),
    ],
)
def test_kill9_mid_turn_resumes_exactly_once(server: Server, api: Api, kill_after: str) -> None:
    model_id = api.llmsim_model(SLOW_ADD)
    session_id = api.create_session(model_id, capabilities=[{"ref": "test_math"}])

    before: list[dict[str, Any]] = []
    with open_stream(server, session_id) as frames:
        read_until(frames, "session.started", before)
        api.post_message(session_id, "please add 2 and 3")
        read_until(frames, kill_after, before)
        snapshot = api.events(session_id)
        server.kill9()
    assert not any(e["type"] == "turn.completed" for e in snapshot), "the kill came too late"

    server.restart()
    log = api.wait_type(session_id, "session.idled")
    assert_log_sound(log)
    assert counts(log) == ONE_TOOL_TURN
    assert not [e for e in log if e["type"] in ("turn.failed", "turn.cancelled")]
    # Nothing written before the kill changed or was written again.
    assert log[: len(snapshot)] == snapshot
    done_before = [e for e in snapshot if e["type"] == "tool.completed"]
    if done_before:
        # The tool that completed before the kill did not run again: its event is the same one.
        assert [e for e in log if e["type"] == "tool.completed"] == done_before

    session = api.ok(api.http.get(f"sessions/{session_id}"))
    assert session["status"] == "idle"
    assert session["output_preview"] == "The sum is 5."
    messages = api.ok(api.http.get(f"sessions/{session_id}/messages"))["data"]
    assert [m["role"] for m in messages] == ["user", "agent", "tool_result", "agent"]

    # The stream client resumes from the last id it read and gets the rest exactly once.
    after: list[dict[str, Any]] = []
    with open_stream(server, session_id, last_event_id=before[-1]["id"]) as frames:
        read_until(frames, "session.idled", after)
    assert [e["id"] for e in before + after] == [e["id"] for e in log]


def test_kill9_while_idle_loses_nothing(server: Server, api: Api) -> None:
    model_id = api.llmsim_model({"response": {"type": "echo"}})
    agent = api.ok(
        api.http.post("agents", json={"name": "survivor", "system_prompt": "Echo."}), 201
    )
    session_id = api.create_session(model_id, agent_id=agent["id"], title="before the crash")
    api.ok(api.http.put(f"sessions/{session_id}/pin"), 204)
    api.post_message(session_id, "hello there")
    api.wait_type(session_id, "session.idled")

    def state() -> dict[str, Any]:
        return {
            "session": api.ok(api.http.get(f"sessions/{session_id}")),
            "sessions": api.ok(api.http.get("sessions")),
            "agent": api.ok(api.http.get(f"agents/{agent['id']}")),
            "events": api.events(session_id),
            "messages": api.ok(api.http.get(f"sessions/{session_id}/messages")),
        }

    snapshot = state()
    server.kill9()
    server.restart()
    assert state() == snapshot
    assert snapshot["session"]["is_pinned"] is True

    # And the engine still runs turns on it.
    api.post_message(session_id, "still there?")
    log = api.wait_type(session_id, "session.idled", count=2)
    assert_log_sound(log)
    assert log[: len(snapshot["events"])] == snapshot["events"]
    assert sum(e["type"] == "turn.completed" for e in log) == 2


def test_sigterm_closes_streams_and_turn_resumes(server: Server, api: Api) -> None:
    model_id = api.llmsim_model(SLOW_ADD)
    session_id = api.create_session(model_id, capabilities=[{"ref": "test_math"}])
    api.post_message(session_id, "please add 2 and 3")

    received: list[Frame] = []
    closed_by: BaseException | None = None
    with open_stream(server, session_id) as frames:
        live: list[dict[str, Any]] = []
        read_until(frames, "reason.started", live)
        server.terminate()
        signalled = time.monotonic()
        try:
            for frame in frames:
                received.append(frame)
                if frame.event == "disconnecting":
                    break
        except httpx.TransportError as exc:
            closed_by = exc
    exit_code = server.wait_exit(max(5.0 - (time.monotonic() - signalled), 0.1))
    assert exit_code is not None, "the server did not exit within 5 s of SIGTERM"

    closing = [f for f in received if f.event == "disconnecting"]
    assert closing, f"no disconnecting frame (stream ended by {closed_by!r}): {received}"
    assert set(closing[0].json()) == {"reason", "retry_ms"}

    server.restart()
    log = api.wait_type(session_id, "session.idled")
    assert_log_sound(log)
    assert counts(log) == ONE_TOOL_TURN
    assert api.ok(api.http.get(f"sessions/{session_id}"))["status"] == "idle"
