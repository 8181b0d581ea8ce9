"""Whole turns through the API on a real SDK-based driver: a provider ``openai_completions`` (and
the other wire APIs) pointing at the llmsim HTTP simulator. The provider's key must reach the
simulator and appear nowhere else: not in responses, events, logs or the database file.

A provider's ``base_url`` is set by a tenant and goes through the egress guard: the simulator is
on loopback, so this module's processes allow ``127.0.0.0/8`` as the operator
(``EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS``) unless a test asks for the default policy."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.conftest import POSTGRES_URL, Api
from tests.engine.conftest import events, send, types_of, wait_turns_ended
from tests.llm.conftest import LlmSimServer

from everloop.config import Settings

pytestmark = pytest.mark.timeout(60)

PRICES = {"input": 1.0, "output": 2.0, "cache_read": 0.5, "cache_write": 0.0}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The shared settings with the operator's private networks: loopback unless parametrized."""
    networks = getattr(request, "param", "127.0.0.0/8")
    return settings.model_copy(update={"egress_allowed_private_networks": networks})


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


async def http_model(
    api: Api, server: LlmSimServer, model: str, *, driver: str = "openai_completions", key: str
) -> str:
    base_url = server.url if driver == "anthropic" else server.url + "/v1"
    provider = await api.client.post(
        "/v1/providers",
        json={"name": f"sim-{driver}", "driver": driver, "base_url": base_url, "api_key": key},
    )
    assert provider.status_code == 201, provider.text
    assert provider.json()["credentials_set"] is True
    created = await api.client.post(
        f"/v1/providers/{provider.json()['id']}/models",
        json={"model_id": model, "profile": {"prices": PRICES}},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def session_on(api: Api, model_id: str) -> str:
    created = await api.client.post(
        "/v1/sessions", json={"model_id": model_id, "capabilities": [{"ref": "current_time"}]}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.mark.parametrize("driver", ["openai_completions", "openai", "anthropic"])
async def test_a_turn_with_a_tool_call_over_http(
    engine: Api, llmsim: LlmSimServer, driver: str
) -> None:
    key = f"sk-test-{uuid.uuid4().hex}"
    sid = await session_on(engine, await http_model(engine, llmsim, "sim", driver=driver, key=key))
    await send(engine, sid, "what time is it?")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found), found[-3:]
    assert key in llmsim.app.state.api_keys
    tool = next(e for e in found if e["type"] == "tool.completed")
    assert tool["data"]["success"] is True
    final = [e for e in found if e["type"] == "output.message.completed"][-1]
    text = final["data"]["message"]["content"][0]["text"]
    assert text.startswith("Echo: what time is it?\nget_current_time: {")
    generations = [e["data"]["metadata"] for e in found if e["type"] == "llm.generation"]
    assert len(generations) == 2
    for meta in generations:
        usage = meta["usage"]
        assert meta["provider"] == f"sim-{driver}"
        assert usage["cache_read_tokens"] > 0 and usage["input_tokens"] > 0
        expected = (
            usage["input_tokens"] * PRICES["input"]
            + usage["output_tokens"] * PRICES["output"]
            + usage["cache_read_tokens"] * PRICES["cache_read"]
        ) / 1_000_000
        assert meta["estimated_cost_usd"] == pytest.approx(expected)
    session = (await engine.client.get(f"/v1/sessions/{sid}")).json()
    total = sum(meta["usage"]["cache_read_tokens"] for meta in generations)
    assert session["usage"]["cache_read_tokens"] == total


async def test_a_429_is_retried_by_the_runner(engine: Api, llmsim: LlmSimServer) -> None:
    model_id = await http_model(engine, llmsim, "error-429-once", key="sk-retry")
    sid = await session_on(engine, model_id)
    await send(engine, sid, "hello after a rate limit")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    generation = next(e for e in found if e["type"] == "llm.generation")
    assert generation["data"]["metadata"]["attempts"] == 2
    final = next(e for e in found if e["type"] == "output.message.completed")
    assert final["data"]["message"]["content"][0]["text"] == "Echo: hello after a rate limit"


async def test_a_permanent_400_fails_the_turn_at_once(engine: Api, llmsim: LlmSimServer) -> None:
    sid = await session_on(engine, await http_model(engine, llmsim, "error-400", key="sk-400"))
    await send(engine, sid, "hello")
    found = await wait_turns_ended(engine, sid)
    failed = next(e for e in found if e["type"] == "turn.failed")
    assert failed["data"]["error_code"] == "model_call_failed"
    generation = next(e for e in found if e["type"] == "llm.generation")
    assert generation["data"]["metadata"]["attempts"] == 1
    assert "answered 400" in generation["data"]["metadata"]["error"]


@pytest.mark.parametrize("settings", [""], indirect=True)
@pytest.mark.parametrize("driver", ["openai_completions", "openai", "anthropic"])
async def test_a_tenant_base_url_cannot_reach_loopback_past_the_operator(
    engine: Api, llmsim: LlmSimServer, driver: str
) -> None:
    model_id = await http_model(engine, llmsim, "sim", driver=driver, key="sk-never-sent")
    sid = await session_on(engine, model_id)
    await send(engine, sid, "hello")
    found = await wait_turns_ended(engine, sid)
    failed = next(e for e in found if e["type"] == "turn.failed")
    assert failed["data"]["error_code"] == "model_call_failed"
    generation = next(e for e in found if e["type"] == "llm.generation")
    # Refused by the address policy, not retried: another attempt cannot change the policy.
    assert generation["data"]["metadata"]["attempts"] == 1
    assert "(private_address)" in generation["data"]["metadata"]["error"]
    assert "sk-never-sent" not in llmsim.app.state.api_keys


async def test_the_key_appears_nowhere_but_on_the_wire(
    engine: Api, llmsim: LlmSimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = f"sk-secret-{uuid.uuid4().hex}"
    model_id = await http_model(engine, llmsim, "sim", key=key)
    sid = await session_on(engine, model_id)
    await send(engine, sid, "what time is it?")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    assert key in llmsim.app.state.api_keys  # decrypted and sent
    seen: list[Any] = [found, await events(engine, sid)]
    for path in (
        "/v1/providers",
        "/v1/models",
        f"/v1/sessions/{sid}",
        f"/v1/sessions/{sid}/messages",
    ):
        response = await engine.client.get(path)
        assert response.status_code == 200
        seen.append(response.text)
    provider_id = (await engine.client.get(f"/v1/models/{model_id}")).json()["provider_id"]
    seen.append((await engine.client.get(f"/v1/providers/{provider_id}")).text)
    for item in seen:
        assert key not in (item if isinstance(item, str) else json.dumps(item))
    assert key not in caplog.text
    if POSTGRES_URL is None:
        data_dir = engine.services.settings.data_dir
        files = [p for p in data_dir.rglob("*") if p.is_file()]
        assert any(p.name.startswith("everloop.db") for p in files)
        for path in files:
            assert key.encode() not in path.read_bytes(), path.name
