"""test_weather: deterministic demo data, and the tool through a real turn."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended

from everloop.capabilities.test_weather import CONDITIONS, weather_report


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def test_the_same_city_gets_the_same_report() -> None:
    paris = weather_report("Paris")
    assert weather_report("  paris ") == paris | {"city": "paris"}
    assert paris != weather_report("Kyiv")
    assert -10 <= paris["temperature_c"] <= 35 and paris["conditions"] in CONDITIONS


async def test_get_weather_through_a_turn(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "weather", "name": "get_weather", "arguments": {"city": "Oslo"}}],
    }
    sid = await new_session(engine, script, capabilities=[{"ref": "test_weather"}])
    await send(engine, sid, "what is the weather in Oslo?")
    found = await wait_turns_ended(engine, sid)
    (done,) = [e for e in found if e["type"] == "tool.completed"]
    assert done["data"]["success"] is True
    assert json.loads(done["data"]["result"][0]["text"]) == weather_report("Oslo")
    blank = await send(engine, sid, "weather")  # same call again: still deterministic
    assert blank["id"]
    found = await wait_turns_ended(engine, sid, count=2)
    results = [e["data"]["result"] for e in found if e["type"] == "tool.completed"]
    assert results[0] == results[1]
