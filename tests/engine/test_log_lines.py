"""The log an operator reads (issue 24): one access line per request (method, route template,
status, duration, org, request id), one line per turn end, in JSON or text; ``X-Request-Id``
echoed and in error bodies; no token or secret in any line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended

from everloop.logs import JsonFormatter, TextFormatter, UrlQueryFilter

pytestmark = pytest.mark.timeout(60)

ACCESS_KEYS = {"method", "route", "status", "duration_ms", "org", "request_id"}
TURN_KEYS = {
    "session",
    "turn",
    "status",
    "iterations",
    "input_tokens",
    "output_tokens",
    "duration_ms",
    "resumed",
}


class Captured:
    def __init__(self, formatter: logging.Formatter) -> None:
        self.out = io.StringIO()
        self.handler = logging.StreamHandler(self.out)
        self.handler.setFormatter(formatter)
        self.handler.addFilter(UrlQueryFilter())

    @property
    def text(self) -> str:
        return self.out.getvalue()

    def json_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.text.splitlines()]


def _capture(formatter: logging.Formatter) -> Iterator[Captured]:
    captured = Captured(formatter)
    root = logging.getLogger()
    level = root.level
    root.addHandler(captured.handler)
    root.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        root.removeHandler(captured.handler)
        root.setLevel(level)


@pytest.fixture
def json_log() -> Iterator[Captured]:
    yield from _capture(JsonFormatter())


@pytest.fixture
def text_log() -> Iterator[Captured]:
    yield from _capture(TextFormatter())


async def test_json_lines_of_requests_and_turns(engine: Api, json_log: Captured) -> None:
    secret = "sk-test-secret-value-4711"
    script = {
        "response": {"type": "fixed", "text": "Done."},
        "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
    }
    sid = await new_session(engine, script, capabilities=[{"ref": "test_math"}])
    stored = await engine.client.put(
        f"/v1/sessions/{sid}/storage/secrets", json={"secrets": {"API_KEY": secret}}
    )
    assert stored.status_code == 200, stored.text
    posted = await send(engine, sid, "please add")
    await wait_turns_ended(engine, sid)
    missing = await engine.client.get(
        "/v1/sessions/session_00000000000000000000000000000000",
        headers={"X-Request-Id": "trace-me-42"},
    )
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "trace-me-42"
    assert missing.json()["error"]["request_id"] == "trace-me-42"

    lines = json_log.json_lines()
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
    access = [line for line in lines if line["logger"] == "everloop.access"]
    assert access
    for line in access:
        assert set(line) >= ACCESS_KEYS, line
        assert str(line["route"]).startswith("/api/") and sid not in str(line["route"]), line
        assert isinstance(line["duration_ms"], float | int) and isinstance(line["status"], int)
        assert line["org"] == engine.org_id
        message = str(line["message"])
        assert message.startswith(f"{line['method']} {line['route']} {line['status']} ")
        assert message.endswith("ms")
    [post] = [
        line
        for line in access
        if line["method"] == "POST" and line["route"] == "/api/v1/sessions/{session_id}/messages"
    ]
    assert post["status"] == 201
    [not_found] = [line for line in access if line["request_id"] == "trace-me-42"]
    assert not_found["status"] == 404 and not_found["route"] == "/api/v1/sessions/{session_id}"
    # Generated ids are distinct per request.
    assert len({line["request_id"] for line in access}) == len(access)

    [turn] = [line for line in lines if line["logger"] == "everloop.turns"]
    assert set(turn) >= TURN_KEYS, turn
    assert turn["turn"] == posted["turn_id"] and turn["session"] == sid
    assert turn["status"] == "completed" and turn["iterations"] == 2
    assert isinstance(turn["input_tokens"], int) and turn["input_tokens"] > 0

    assert engine.token not in json_log.text
    assert secret not in json_log.text
    assert "Bearer" not in json_log.text


async def test_text_lines_are_readable(engine: Api, text_log: Captured) -> None:
    sid = await new_session(engine, {"response": {"type": "fixed", "text": "Hello"}})
    await send(engine, sid, "hi")
    await wait_turns_ended(engine, sid)
    lines = text_log.text.splitlines()
    [post] = [line for line in lines if "POST /api/v1/sessions/{session_id}/messages 201" in line]
    assert " INFO everloop.access: " in post
    assert f"org={engine.org_id}" in post and "request_id=" in post
    [turn] = [line for line in lines if "everloop.turns: turn ended" in line]
    assert f"session={sid}" in turn and "status=completed" in turn and "iterations=1" in turn
    assert engine.token not in text_log.text


async def test_a_bad_request_id_is_replaced(engine: Api) -> None:
    response = await engine.client.get("/v1/sessions", headers={"X-Request-Id": "no spaces ok"})
    assert response.status_code == 200
    generated = response.headers["x-request-id"]
    assert generated != "no spaces ok" and len(generated) == 32


async def test_an_unhandled_error_is_a_500_with_the_request_id(json_log: Captured) -> None:
    import httpx
    from starlette.types import Receive, Scope, Send

    from everloop.api.errors import unexpected_error
    from everloop.api.observe import Observe

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("a bug")

    app = Observe(broken, unexpected=unexpected_error)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://everloop.test") as client:
        response = await client.get("/x", headers={"X-Request-Id": "bug-report-7"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "bug-report-7"
    error = response.json()["error"]
    assert error == {
        "code": "internal_error",
        "message": "internal server error",
        "request_id": "bug-report-7",
    }
    lines = json_log.json_lines()
    [failure] = [line for line in lines if line["logger"] == "everloop.api"]
    assert "RuntimeError: a bug" in str(failure["exception"])
    [access] = [line for line in lines if line["logger"] == "everloop.access"]
    assert access["status"] == 500 and access["request_id"] == "bug-report-7"
    assert access["route"] == "unmatched"


async def test_an_audit_record_has_the_request_id_of_the_response(engine: Api) -> None:
    """The client sent none: the id made for the request is in its audit record too."""
    created = await engine.client.post("/v1/agents", json={"name": "audited", "system_prompt": "x"})
    assert created.status_code == 201, created.text
    request_id = created.headers["x-request-id"]
    listed = await engine.client.get("/v1/audit-events")
    assert listed.status_code == 200, listed.text
    records = [r for r in listed.json()["data"] if r.get("request_id") == request_id]
    assert len(records) == 1, listed.json()
