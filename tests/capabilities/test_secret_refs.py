"""Session secrets by reference through real turns (llmsim scripts): ``{{secret:NAME}}`` in the
arguments of web_fetch (a 127.0.0.1 server) and of an MCP tool (the real test MCP server) reaches
the server as the value, while events, messages, the API and the database hold the placeholder;
a model that says a secret's value is recorded redacted, deltas included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import POSTGRES_URL, Api
from tests.engine.conftest import new_session, send, wait_turns_ended
from tests.local_web import LocalWeb
from tests.mcp_test_server import McpTestServer

from everloop.config import Settings

API_KEY = "sk-live-51f0c9e2d7b4a3-do-not-store"
REF = "{{secret:API_KEY}}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test servers are on loopback: allowed as an operator would, named per session."""
    return settings.model_copy(update={"egress_allowed_private_networks": "127.0.0.0/8"})


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    with LocalWeb() as server:
        yield server


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer()
    server.start()
    yield server
    server.stop()


def script(*calls: tuple[str, str, dict[str, Any]], text: str | None = None) -> dict[str, Any]:
    response = {"type": "fixed", "text": text} if text is not None else {"type": "echo"}
    return {
        "response": response,
        "tool_calls": [{"when": w, "name": n, "arguments": a} for w, n, a in calls],
        "chunk_chars": 3,
    }


async def session_with_key(
    api: Api, model_script: dict[str, Any], value: str = API_KEY, **fields: Any
) -> str:
    sid = await new_session(api, model_script, **fields)
    stored = await api.client.put(
        f"/v1/sessions/{sid}/storage/secrets", json={"secrets": {"API_KEY": value}}
    )
    assert stored.status_code == 200, stored.text
    return sid


async def turn(api: Api, sid: str, text: str) -> list[dict[str, Any]]:
    await send(api, sid, text)
    found = await wait_turns_ended(api, sid)
    assert "turn.completed" in [e["type"] for e in found], found
    return found


async def assert_nowhere(
    api: Api, sid: str, value: str = API_KEY, *, in_database: bool = True
) -> None:
    """The value is in no API response about the session, and in no file of the database."""
    for path in (
        f"/v1/sessions/{sid}",
        f"/v1/sessions/{sid}/events",
        f"/v1/sessions/{sid}/messages",
        f"/v1/sessions/{sid}/storage/secrets",
        "/v1/sessions",
    ):
        response = await api.client.get(path)
        assert response.status_code == 200, response.text
        assert value not in response.text, path
    if in_database and not POSTGRES_URL:
        names, holding = files_holding(Path(api.services.settings.data_dir), value.encode())
        assert "everloop.db" in names
        assert holding == []


def files_holding(data_dir: Path, needle: bytes) -> tuple[list[str], list[str]]:
    """Every file under ``data_dir`` (the SQLite database, its WAL) and those holding
    ``needle``."""
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    return [p.name for p in files], [str(p) for p in files if needle in p.read_bytes()]


async def test_web_fetch_sends_the_value_and_records_the_placeholder(
    engine: Api, web: LocalWeb
) -> None:
    sid = await session_with_key(
        engine,
        script(("fetch", "web_fetch", {"url": f"{web.url}/text?key={REF}"})),
        capabilities=[{"ref": "web_fetch"}, {"ref": "secrets"}],
        network_access={"allowed": ["127.0.0.1"]},
    )
    found = await turn(engine, sid, "fetch it")
    assert web.requests == [f"/text?key={API_KEY}"]
    (started,) = [e for e in found if e["type"] == "tool.started"]
    assert REF in json.dumps(started["data"])
    (done,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    assert done["success"] is True, done
    # The fetched URL (with the key in it) comes back redacted.
    assert json.loads(done["result"][0]["text"])["url"].endswith("key=[redacted:API_KEY]")
    await assert_nowhere(engine, sid)


async def test_mcp_tool_gets_the_value_and_its_echo_is_redacted(
    engine: Api, mcp_server: McpTestServer
) -> None:
    servers = {"calc": {"url": mcp_server.url, "headers": mcp_server.headers}}
    sid = await session_with_key(
        engine,
        script(("echo", "mcp_calc__echo", {"text": f"Bearer {REF}"})),
        mcpServers=servers,
        capabilities=[{"ref": "secrets"}],
        network_access={"allowed": [f"http://127.0.0.1:{mcp_server.port}/"]},
    )
    found = await turn(engine, sid, "echo it")
    assert mcp_server.received == [f"Bearer {API_KEY}"]
    (done,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    assert done["success"] is True, done
    assert "got Bearer [redacted:API_KEY]" in json.dumps(done["result"])
    (completed,) = [e for e in found if e["type"] == "output.message.completed"][-1:]
    assert "[redacted:API_KEY]" in json.dumps(completed["data"])
    await assert_nowhere(engine, sid)


async def test_an_unknown_secret_is_a_tool_error_and_nothing_is_sent(
    engine: Api, web: LocalWeb
) -> None:
    sid = await session_with_key(
        engine,
        script(("fetch", "web_fetch", {"url": f"{web.url}/text?key={{{{secret:NOPE}}}}"})),
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": ["127.0.0.1"]},
    )
    found = await turn(engine, sid, "fetch it")
    (done,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    assert done["success"] is False and "unknown secret NOPE" in done["error"]
    assert web.requests == []


async def test_secret_get_gives_the_placeholder_and_never_the_value(engine: Api) -> None:
    sid = await session_with_key(
        engine,
        script(("secret", "secret_get", {"name": "API_KEY"})),
        capabilities=[{"ref": "secrets"}],
    )
    found = await turn(engine, sid, "which secret")
    (done,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    result = json.loads(done["result"][0]["text"])
    assert result["placeholder"] == REF and "value" not in result
    # llmsim echoes tool results: what the model read is the placeholder.
    answer = [e for e in found if e["type"] == "output.message.completed"][-1]
    assert REF in json.dumps(answer["data"]["message"])
    await assert_nowhere(engine, sid)


async def test_model_output_saying_a_value_is_stored_redacted(engine: Api) -> None:
    # The model says lorem ipsum, and the secret is a phrase of it: nothing stored but the
    # sealed secret holds the phrase. chunk_chars=3 splits it over many deltas.
    phrase = "consectetur adipiscing elit"
    sid = await session_with_key(
        engine, {"response": {"type": "lorem", "tokens": 40}, "chunk_chars": 3}, phrase
    )
    found = await turn(engine, sid, "say it")
    answer = [e for e in found if e["type"] == "output.message.completed"][-1]
    text = json.dumps(answer["data"]["message"])
    assert "amet, [redacted:API_KEY], sed do" in text
    deltas = "".join(e["data"]["delta"] for e in found if e["type"] == "output.message.delta")
    assert "amet, [redacted:API_KEY], sed do" in deltas and phrase not in deltas
    session = (await engine.client.get(f"/v1/sessions/{sid}")).json()
    assert "[redacted:API_KEY]" in session["output_preview"]
    await assert_nowhere(engine, sid, phrase)


async def test_a_value_in_tool_call_arguments_becomes_the_placeholder(
    engine: Api, web: LocalWeb
) -> None:
    sid = await session_with_key(
        engine,
        script(("call", "web_fetch", {"url": f"{web.url}/text?k={API_KEY}"})),
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": ["127.0.0.1"]},
    )
    found = await turn(engine, sid, "call it")
    (started,) = [e for e in found if e["type"] == "tool.started"]
    assert REF in json.dumps(started["data"])
    # The call still works: the placeholder is resolved when it is made.
    assert web.requests == [f"/text?k={API_KEY}"]
    # (The llmsim script, stored with its model, holds the value: the database is not checked.)
    await assert_nowhere(engine, sid, in_database=False)
