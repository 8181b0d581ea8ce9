"""Malformed tool-call arguments through the real SDK drivers: the llmsim HTTP simulator sends
the arguments text as the user wrote it (``add({...})`` with text that is not JSON), each
driver marks the call unparsed, and ``tool_call_repair`` answers it with the parse error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.conftest import Api
from tests.engine.conftest import send, types_of, wait_turns_ended
from tests.llm.conftest import LlmSimServer

from everloop.config import Settings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The simulator is on loopback: the operator allows it."""
    return settings.model_copy(update={"egress_allowed_private_networks": "127.0.0.0/8"})


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


async def _session(api: Api, server: LlmSimServer, driver: str, capabilities: list[str]) -> str:
    base_url = server.url if driver == "anthropic" else server.url + "/v1"
    provider = await api.client.post(
        "/v1/providers",
        json={"name": f"sim-{driver}", "driver": driver, "base_url": base_url, "api_key": "sk-x"},
    )
    assert provider.status_code == 201, provider.text
    model = await api.client.post(
        f"/v1/providers/{provider.json()['id']}/models", json={"model_id": "sim"}
    )
    assert model.status_code == 201, model.text
    created = await api.client.post(
        "/v1/sessions",
        json={
            "model_id": model.json()["id"],
            "capabilities": [{"ref": ref} for ref in capabilities],
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.mark.parametrize("driver", ["openai_completions", "openai", "anthropic"])
async def test_bad_json_arguments_get_a_repair_error(
    engine: Api, llmsim: LlmSimServer, driver: str
) -> None:
    sid = await _session(engine, llmsim, driver, ["test_math", "tool_call_repair"])
    await send(engine, sid, 'please add({"a": 1, "b": 2,})')
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found), found[-3:]
    (completed,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    assert completed["success"] is False
    assert completed["error_kind"] == "invalid_arguments"
    assert completed["error"].startswith(
        "the arguments of add are not valid JSON: Expecting property name enclosed in double "
        "quotes at line 1 column 17 (char 16)"
    )
    call = next(e for e in found if e["type"] == "output.message.completed")
    arguments = call["data"]["message"]["content"][0]["arguments"]
    assert arguments["_invalid_json"] == '{"a": 1, "b": 2,}'
    final = [e for e in found if e["type"] == "output.message.completed"][-1]
    assert "add: error: the arguments of add are not valid JSON" in str(final["data"]["message"])


async def test_without_repair_the_tool_schema_refuses_bad_json(
    engine: Api, llmsim: LlmSimServer
) -> None:
    sid = await _session(engine, llmsim, "openai_completions", ["test_math"])
    await send(engine, sid, 'please add({"a": 1 "b": 2})')
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    (completed,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    # Today's behaviour: the schema's complaint, which says nothing about the JSON.
    assert completed["error"] == "invalid arguments for add: 'a' is a required property"
