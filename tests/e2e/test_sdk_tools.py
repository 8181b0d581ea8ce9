"""The published ``everruns-sdk``, unchanged, against a real ``everloop serve`` (issue 17, tools
part): a session repeating its agent's client tool merges with it; ``messages.list`` gives every
message with its turn; ``turn.completed`` carries the turn's duration, also across ``kill -9``.

Every answer is parsed by the SDK's own models (``Agent``, ``Session``, ``Message``, ``Event``).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from everruns_sdk import Everruns
from everruns_sdk.models import Agent, ContentPart, Event, Message, Session, ToolDefinition

from everloop.domain.timestamps import ms_between
from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow

WEATHER_SCRIPT = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "weather", "name": "get_weather", "arguments": {"city": "Lviv"}}],
}
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def weather_tool(description: str) -> ToolDefinition:
    return ToolDefinition(name="get_weather", description=description, parameters=CITY)


def sdk(server: Server) -> Everruns:
    return Everruns(api_key=server.token, base_url=server.api_url)


async def answer_tool_calls(client: Everruns, session_id: str, result: Any) -> list[str]:
    """Follow the session's stream, answer each requested call with ``result``, until the
    turn completes; the names of the tools called."""
    called: list[str] = []
    async for event in client.events.stream(session_id):
        if event.type == "tool.call_requested":
            calls = event.tool_calls()
            called.extend(c.name for c in calls)
            parts = [
                ContentPart(type="tool_result", tool_call_id=c.id, result=result) for c in calls
            ]
            await client.messages.create_tool_results(session_id, parts)
        if event.type == "turn.completed":
            return called
    raise AssertionError("the stream ended before turn.completed")


def test_a_session_repeating_its_agents_tool_merges_and_messages_name_their_turns(
    server: Server, api: Api
) -> None:
    model_id = api.llmsim_model(WEATHER_SCRIPT)

    async def first_turn() -> tuple[Agent, Session, list[str]]:
        async with sdk(server) as client:
            agent = await client.agents.create(
                f"weather-{secrets.token_hex(4)}",
                "You report the weather.",
                tools=[weather_tool("The agent's weather tool.")],
            )
            session = await client.sessions.create(
                agent_id=agent.id,
                model_id=model_id,
                tools=[weather_tool("The session's weather tool.")],
            )
            await client.messages.create(session.id, "what is the weather?")
            called = await answer_tool_calls(client, session.id, {"sky": "clear"})
            await client.messages.create(session.id, "thanks")
            return agent, session, called

    agent, session, called = asyncio.run(asyncio.wait_for(first_turn(), timeout=60))
    assert called == ["get_weather"]
    assert session.agent_id == agent.id
    # One get_weather, the session's definition: what the model was offered.
    report = api.ok(api.http.get(f"sessions/{session.id}/context-report"))
    weather = [t for t in report["tools"] if t["name"] == "get_weather"]
    assert [t["description"] for t in weather] == ["The session's weather tool."]
    api.wait_type(session.id, "turn.completed", count=2)

    async def read() -> tuple[list[Message], list[Event]]:
        async with sdk(server) as client:
            return await client.messages.list(session.id), await client.events.list(session.id)

    messages, events = asyncio.run(asyncio.wait_for(read(), timeout=30))
    assert [m.role for m in messages] == ["user", "agent", "tool_result", "agent", "user", "agent"]
    assert 'get_weather: {"sky": "clear"}' in str(messages[3].content[0].text)
    turns = [e.data["turn_id"] for e in events if e.type == "turn.started"]
    assert len(turns) == 2
    raw = api.ok(api.http.get(f"sessions/{session.id}/messages"))
    assert [m["id"] for m in raw["data"]] == [m.id for m in messages]
    assert [m["turn_id"] for m in raw["data"]] == [turns[0]] * 4 + [turns[1]] * 2
    assert raw["total"] == 6
    page = api.ok(api.http.get(f"sessions/{session.id}/messages", params={"offset": 2, "limit": 3}))
    assert [m["id"] for m in page["data"]] == [m.id for m in messages[2:5]]

    for turn_id in turns:
        mine = [e for e in events if e.data.get("turn_id") == turn_id]
        started = next(e for e in mine if e.type == "turn.started")
        done = next(e for e in mine if e.type == "turn.completed")
        duration = done.data["duration_ms"]
        assert isinstance(duration, int)
        assert duration <= ms_between(started.ts, done.ts)
    # The first turn's duration covers its wait for the client's result.
    first_started = next(e for e in events if e.type == "turn.started")
    tool_done = next(e for e in events if e.type == "tool.completed")
    first_done = next(e for e in events if e.type == "turn.completed")
    assert first_done.data["duration_ms"] >= ms_between(first_started.ts, tool_done.ts)


def test_a_turn_resumed_after_kill_9_is_timed_from_its_first_start(
    server: Server, api: Api
) -> None:
    model_id = api.llmsim_model(WEATHER_SCRIPT)
    tool = weather_tool("Weather.").model_dump(exclude_none=True)
    session_id = api.create_session(model_id, tools=[tool])
    api.post_message(session_id, "what is the weather?")
    found = api.wait_type(session_id, "tool.call_requested")
    call_id = next(e for e in found if e["type"] == "tool.call_requested")["data"]["tool_calls"][0][
        "id"
    ]

    server.kill9()
    server.restart()

    async def finish() -> None:
        async with sdk(server) as client:
            part = ContentPart(type="tool_result", tool_call_id=call_id, result={"sky": "grey"})
            await client.messages.create_tool_results(session_id, [part])

    asyncio.run(asyncio.wait_for(finish(), timeout=60))
    api.close()
    api.wait_type(session_id, "turn.completed", timeout=60)

    async def read() -> list[Event]:
        async with sdk(server) as client:
            return await client.events.list(session_id)

    events = asyncio.run(asyncio.wait_for(read(), timeout=30))
    started = [e for e in events if e.type == "turn.started"]
    assert len(started) == 1  # written once: the resumed turn did not start again
    done = next(e for e in events if e.type == "turn.completed")
    tool_done = next(e for e in events if e.type == "tool.completed")
    duration = done.data["duration_ms"]
    assert isinstance(duration, int)
    # The result came after the restart: the duration spans the time before the crash too.
    assert ms_between(started[0].ts, tool_done.ts) <= duration
    assert duration <= ms_between(started[0].ts, done.ts)
