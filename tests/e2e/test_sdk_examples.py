"""The ``everruns-sdk`` repository's example and cookbook programs that need only the API,
rewritten here as scenarios against a real ``everloop serve`` (issue 17).

Nothing is vendored from that repository: each scenario does what its program does, in the same
order and through the same SDK calls, and asserts what the program prints. The programs that
need other issues' surfaces (``AgentClient``, workspaces, memories) are not here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from everruns_sdk import AgentCapabilityConfig, Everruns, InitialFile
from everruns_sdk.models import ContentPart, ToolDefinition, extract_tool_calls
from everruns_sdk.sse import EventStream, StreamOptions

from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow

ENDINGS = {"output.message.completed", "turn.completed", "turn.failed"}


def text_of(data: dict[str, Any]) -> str | None:
    """The text parts of a message event, as the cookbook programs print them."""
    message = data.get("message") or {}
    texts = [
        part.get("text", "")
        for part in message.get("content") or []
        if isinstance(part, dict) and part.get("type") == "text"
    ]
    return "".join(texts) or None


async def test_basic_example(server: Server) -> None:
    """An agent with ``current_time``, a session naming the same capability, a message, the
    stream until the answer, then both deleted."""
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        agent = await client.agents.create(
            name="example-assistant",
            system_prompt="You are a helpful assistant for examples.",
            capabilities=[AgentCapabilityConfig(ref="current_time")],
        )
        assert (agent.status, [c.ref for c in agent.capabilities]) == ("active", ["current_time"])
        session = await client.sessions.create(
            agent_id=agent.id, capabilities=[AgentCapabilityConfig(ref="current_time")]
        )
        assert (session.agent_id, session.harness_id) == (agent.id, session.harness_id)
        message = await client.messages.create(session.id, "What time is it right now?")
        assert message.id
        seen: list[str] = []
        async for event in client.events.stream(session.id):
            seen.append(event.type)
            if event.type in ENDINGS:
                break
        assert seen[-1] == "output.message.completed"
        assert "input.message" in seen
        await client.sessions.delete(session.id)
        await client.agents.delete(agent.id)


async def test_initial_files_example(server: Server, api: Api) -> None:
    """Starter files given at session creation are there, read-only where asked."""
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        agent = await client.agents.create(
            name="initial-files-example",
            system_prompt="You are a helpful assistant. Read the starter files before answering.",
        )
        session = await client.sessions.create(
            agent_id=agent.id,
            title="Session with starter files",
            initial_files=[
                InitialFile(
                    path="/workspace/README.md",
                    content="# Demo Project\n\nStarter files.\n",
                    encoding="text",
                    is_readonly=True,
                ),
                InitialFile(
                    path="/workspace/src/app.py",
                    content='def greet(name: str) -> str:\n    return f"hello, {name}"\n',
                    encoding="text",
                ),
            ],
        )
        readme = await asyncio.to_thread(
            api.ok, api.http.get(f"sessions/{session.id}/fs/workspace/README.md")
        )
        assert readme["content"].startswith("# Demo Project") and readme["is_readonly"] is True
        app = await asyncio.to_thread(
            api.ok, api.http.get(f"sessions/{session.id}/fs/workspace/src/app.py")
        )
        assert "def greet" in app["content"] and app["is_readonly"] is False
        message = await client.messages.create(session.id, "Summarize the project.")
        assert message.id
        await client.sessions.delete(session.id)
        await client.agents.delete(agent.id)


async def _dad_jokes_run(client: Everruns) -> str:
    agent = await client.agents.create(
        name="dad-jokes-bot",
        system_prompt="You are a dad joke expert. Tell one short, cheesy dad joke.",
    )
    session = await client.sessions.create(agent_id=agent.id)
    await client.messages.create(session.id, "Tell me a dad joke")
    inputs: list[str] = []
    outputs: list[str] = []
    async for event in EventStream(client, session.id, StreamOptions(max_retries=3)):
        if event.type == "input.message":
            inputs.append(text_of(event.data) or "")
        elif event.type == "output.message.completed":
            outputs.append(text_of(event.data) or "")
        elif event.type in {"turn.completed", "turn.failed"}:
            assert event.type == "turn.completed"
            break
    assert inputs == ["Tell me a dad joke"] and len(outputs) == 1 and outputs[0]
    return agent.id


async def test_dad_jokes_cookbook_runs_twice(server: Server) -> None:
    """The cookbook's first program creates its agent by a fixed name, so its second run
    creates the same name again: the create is an upsert and the same agent answers."""
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        first = await _dad_jokes_run(client)
        second = await _dad_jokes_run(client)
        assert first == second
        assert [a.id for a in await client.agents.list(search="dad-jokes-bot")] == [first]


WEATHER_TOOL = {
    "type": "client_side",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
WEATHER_DATA = {"paris": (18, "partly cloudy"), "tokyo": (22, "sunny")}


def _weather(city: str) -> dict[str, Any]:
    temp, condition = WEATHER_DATA.get(city.lower(), (20, "clear"))
    return {"city": city, "temperature_celsius": temp, "condition": condition}


async def test_weather_tools_cookbook(server: Server, api: Api) -> None:
    """Client-side tools: the agent and the session both declare ``get_weather`` (merged),
    the stream shows the model's call, the program runs it locally and sends the result back,
    and the answer uses it."""
    model_id = await asyncio.to_thread(
        api.llmsim_model,
        {
            "response": {"type": "echo"},
            "tool_calls": [
                {"when": "weather", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
        },
    )
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        agent = await client.agents.create(
            name="weather-assistant",
            system_prompt="You are a weather assistant. Call get_weather, then summarise.",
            default_model_id=model_id,
            tools=[ToolDefinition(**WEATHER_TOOL)],
        )
        session = await client.sessions.create(
            agent_id=agent.id, tools=[ToolDefinition(**WEATHER_TOOL)]
        )
        await client.messages.create(session.id, "What's the weather like in Paris?")
        requested: list[str] = []
        answers: list[str] = []
        async for event in EventStream(client, session.id, StreamOptions(max_retries=3)):
            if event.type == "output.message.completed":
                calls = extract_tool_calls(event.data)
                if calls:
                    requested += [f"{c.name}({c.arguments})" for c in calls]
                    results = [
                        ContentPart.make_tool_result(c.id, _weather(c.arguments["city"]))
                        for c in calls
                    ]
                    await client.messages.create_tool_results(session.id, results)
                else:
                    answers.append(text_of(event.data) or "")
            elif event.type in {"turn.completed", "turn.failed"}:
                assert event.type == "turn.completed"
                break
        assert requested == ["get_weather({'city': 'Paris'})"]
        assert len(answers) == 1 and "partly cloudy" in answers[0]
