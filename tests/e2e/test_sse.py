"""``GET /v1/sessions/{id}/sse`` read raw with httpx streaming against a real server (issue 3).

The servers here cycle every stream after 1 s, so every read ends with a ``disconnecting`` frame:
a read is bounded by the server, and the tests never wait on a clock of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Api, Frame, Server, iter_frames

pytestmark = pytest.mark.slow

FAST_CYCLES = {"EVERLOOP_SSE_CYCLE_SECONDS": "1", "EVERLOOP_SSE_HEARTBEAT_SECONDS": "0.5"}
DEADLINE = 60.0


@pytest.fixture
def sse_server(start_server: Callable[..., Server]) -> Server:
    return start_server(**FAST_CYCLES)


@pytest.fixture
def sse_api(sse_server: Server) -> Iterator[Api]:
    helper = Api(sse_server)
    try:
        yield helper
    finally:
        helper.close()


@contextmanager
def open_stream(
    server: Server,
    session_id: str,
    params: dict[str, Any] | list[tuple[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Iterator[Iterator[Frame]]:
    timeout = httpx.Timeout(10.0)
    with (
        httpx.Client(headers=server.headers, timeout=timeout) as client,
        client.stream(
            "GET",
            f"{server.api_url}/v1/sessions/{session_id}/sse",
            params=params,
            headers=headers or {},
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield iter_frames(response.iter_lines())


def read_cycle(
    server: Server,
    session_id: str,
    params: dict[str, Any] | list[tuple[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> list[Frame]:
    """Every frame of one connection, up to and including its ``disconnecting`` frame."""
    frames: list[Frame] = []
    deadline = time.monotonic() + DEADLINE
    with open_stream(server, session_id, params, headers) as stream:
        for frame in stream:
            frames.append(frame)
            if frame.event == "disconnecting":
                return frames
            assert time.monotonic() < deadline, "stream never cycled"
    raise AssertionError(f"stream closed without disconnecting: {frames}")


def durable(frames: list[Frame]) -> list[dict[str, Any]]:
    return [f.json() for f in frames if f.comment is None and f.id is not None]


def finished_session(api: Api, text: str = "please add") -> str:
    """A session with one completed turn that called a tool."""
    model_id = api.llmsim_model(
        {
            "response": {"type": "fixed", "text": "five"},
            "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
        }
    )
    session_id = api.create_session(model_id, capabilities=[{"ref": "test_math"}])
    api.post_message(session_id, text)
    api.wait_type(session_id, "session.idled")
    return session_id


def test_frames_and_resume(sse_server: Server, sse_api: Api) -> None:
    session_id = finished_session(sse_api)
    log = sse_api.events(session_id)
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))

    frames = read_cycle(sse_server, session_id)
    assert frames[0].event == "connected"
    events = [f for f in frames if f.comment is None][1:-1]
    for frame in events:
        assert frame.event and frame.id and frame.data, frame
        body = frame.json()
        assert (body["type"], body["id"]) == (frame.event, frame.id)
        assert body["session_id"] == session_id
    assert [f.id for f in events] == [e["id"] for e in log]
    closing = frames[-1].json()
    assert set(closing) == {"reason", "retry_ms"}
    assert isinstance(closing["retry_ms"], int)

    middle = log[len(log) // 2]
    rest = [e["id"] for e in log if e["sequence"] > middle["sequence"]]
    by_since = durable(read_cycle(sse_server, session_id, {"since_id": middle["id"]}))
    assert [e["id"] for e in by_since] == rest
    by_header = durable(read_cycle(sse_server, session_id, headers={"Last-Event-ID": middle["id"]}))
    assert [e["id"] for e in by_header] == rest
    replay = durable(read_cycle(sse_server, session_id, {"after_sequence": 0}))
    assert [e["id"] for e in replay] == [e["id"] for e in log]
    after = durable(read_cycle(sse_server, session_id, {"after_sequence": middle["sequence"]}))
    assert [e["id"] for e in after] == rest


def test_type_filters(sse_server: Server, sse_api: Api) -> None:
    session_id = finished_session(sse_api)
    log = sse_api.events(session_id)

    wanted = ["tool.completed", "turn.completed"]
    only = durable(read_cycle(sse_server, session_id, [("types", t) for t in wanted]))
    assert [e["id"] for e in only] == [e["id"] for e in log if e["type"] in wanted]
    assert only and {e["type"] for e in only} <= set(wanted)

    dropped = ["output.message.delta", "llm.generation"]
    rest = durable(read_cycle(sse_server, session_id, [("exclude", t) for t in dropped]))
    assert [e["id"] for e in rest] == [e["id"] for e in log if e["type"] not in dropped]


def test_heartbeat_comment(start_server: Callable[..., Server]) -> None:
    server = start_server(EVERLOOP_SSE_HEARTBEAT_SECONDS="0.5", EVERLOOP_SSE_CYCLE_SECONDS="30")
    api = Api(server)
    try:
        session_id = api.create_session(api.llmsim_model({"response": {"type": "echo"}}))
        deadline = time.monotonic() + DEADLINE
        with open_stream(server, session_id) as stream:
            for frame in stream:
                if frame.comment is not None:
                    break
                assert time.monotonic() < deadline, "no heartbeat comment"
            else:
                raise AssertionError("stream closed before a heartbeat comment")
    finally:
        api.close()


def test_reconnecting_client_sees_every_event_once(sse_server: Server, sse_api: Api) -> None:
    """Across many 1 s cycles, resuming from the last id loses and repeats nothing."""
    model_id = sse_api.llmsim_model(
        {
            "response": {"type": "lorem", "tokens": 60},
            "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 1, "b": 2}}],
            "latency_ms": 800,
            "chunk_chars": 8,
        }
    )
    session_id = sse_api.create_session(model_id, capabilities=[{"ref": "test_math"}])
    received: list[dict[str, Any]] = []
    cycles = 0
    last_id: str | None = None
    posted = 0
    deadline = time.monotonic() + DEADLINE
    # Two turns so events keep arriving while streams cycle; stop after both ended and at
    # least three cycles, whatever the timing.
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else None
        frames = read_cycle(sse_server, session_id, headers=headers)
        assert frames[0].event == "connected"
        cycles += 1
        for event in durable(frames):
            received.append(event)
            last_id = event["id"]
        if posted < 2:
            sse_api.post_message(session_id, f"please add, round {posted}")
            posted += 1
        idled = sum(e["type"] == "session.idled" for e in received)
        if idled == 2 and cycles >= 3:
            break
        assert time.monotonic() < deadline, f"only {idled} turns ended in {cycles} cycles"

    log = sse_api.events(session_id)
    assert [e["id"] for e in received] == [e["id"] for e in log]
    assert [e["sequence"] for e in received] == list(range(1, len(log) + 1))
    assert len({e["id"] for e in received}) == len(received)
