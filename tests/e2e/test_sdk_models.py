"""The published ``everruns-sdk`` lists and reads models of a real ``everloop serve``: the
built-in llmsim model and the seeded OpenAI and Anthropic models, parsed by the SDK's own
``ModelWithProvider``; ``healthy`` turns false after the model's call fails."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from everruns_sdk import Everruns
from everruns_sdk.errors import ApiError
from everruns_sdk.models import ModelWithProvider

from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow

SEEDED = {
    "llmsim": ("llmsim", "llmsim"),
    "gpt-5": ("openai", "gpt-5"),
    "gpt-5-mini": ("openai", "gpt-5"),
    "gpt-4.1-mini": ("openai", "gpt-4.1"),
    "claude-sonnet-4-5": ("anthropic", "claude-sonnet"),
    "claude-haiku-4-5": ("anthropic", "claude-haiku"),
    "claude-opus-4-1": ("anthropic", "claude-opus"),
}


async def test_models_list_and_get_with_seeded_providers(
    start_server: Callable[..., Server],
) -> None:
    # Keys that are never used: no model is called in this test (nothing leaves the machine).
    server = start_server(OPENAI_API_KEY="sk-e2e-unused", ANTHROPIC_API_KEY="sk-ant-e2e-unused")
    client = Everruns(api_key=server.token, base_url=server.api_url)
    try:
        listed = await client.models.list()
        assert all(isinstance(m, ModelWithProvider) for m in listed)
        by_wire = {m.model_id: m for m in listed}
        assert set(by_wire) == set(SEEDED)
        for wire, (vendor, family) in SEEDED.items():
            model = by_wire[wire]
            assert model.provider_type == vendor and model.model_vendor == vendor
            assert model.profile is not None and model.profile.family == family
            assert model.enabled and model.healthy and not model.is_favorite
            assert "text" in model.capabilities
        opus = by_wire["claude-opus-4-1"]
        assert opus.profile is not None and opus.profile.reasoning
        assert opus.capabilities == ["text", "tools", "vision", "thinking"]
        assert opus.profile.cost is not None and opus.profile.cost.output == 75.0
        assert opus.profile.limits is not None and opus.profile.limits.context == 200_000
        assert by_wire["llmsim"].source == "predefined" and by_wire["gpt-5"].source == "manual"

        fetched = await client.models.get(opus.id)
        assert fetched == opus
        with pytest.raises(ApiError):
            await client.models.get("model_00000000000000000000000000000000")
    finally:
        await client.close()


async def test_a_failed_call_makes_the_model_unhealthy(server: Server, api: Api) -> None:
    failing = api.llmsim_model({"response": {"type": "error", "status": 400, "message": "no"}})
    client = Everruns(api_key=server.token, base_url=server.api_url)
    try:
        assert (await client.models.get(failing)).healthy
        session_id = api.create_session(failing)
        api.post_message(session_id, "hello")
        api.wait_type(session_id, "turn.failed")
        model = await client.models.get(failing)
        assert model.healthy is False and model.enabled is True
        assert {m.id: m.healthy for m in await client.models.list()}[failing] is False
    finally:
        await client.close()
