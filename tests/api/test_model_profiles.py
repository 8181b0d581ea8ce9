"""Models in Everruns' full shape: catalogue profiles, enabled, healthy from the latest call,
favourites (none stored)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.engine.conftest import scripted_model, send, wait_turns_ended

SDK_FIELDS = {
    "capabilities",
    "created_at",
    "display_name",
    "enabled",
    "healthy",
    "id",
    "is_favorite",
    "model_id",
    "model_vendor",
    "profile",
    "provider_id",
    "provider_name",
    "provider_type",
    "source",
    "updated_at",
}
PROFILE_FIELDS = {
    "name",
    "family",
    "attachment",
    "reasoning",
    "temperature",
    "tool_call",
    "structured_output",
    "open_weights",
}


async def _provider(api: Api, **fields: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/providers", json=fields)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _model(api: Api, provider_id: str, **fields: Any) -> dict[str, Any]:
    response = await api.client.post(f"/v1/providers/{provider_id}/models", json=fields)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _get(api: Api, model_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/models/{model_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_the_built_in_model_has_the_full_shape(api: Api) -> None:
    (model,) = (await api.client.get("/v1/models")).json()["data"]
    assert set(model) >= SDK_FIELDS and set(model["profile"]) >= PROFILE_FIELDS
    assert model["model_vendor"] == "llmsim" and model["provider_type"] == "llmsim"
    assert model["capabilities"] == ["text", "tools"]
    assert (model["enabled"], model["healthy"], model["is_favorite"]) == (True, True, False)
    assert model["profile"]["family"] == "llmsim"
    assert model["profile"]["cost"] == {"input": 0.0, "output": 0.0, "cache_read": 0.0}
    assert model["profile"]["modalities"] == {"input": ["text"], "output": ["text"]}
    assert await _get(api, model["id"]) == model


async def test_catalogue_models_by_wire_name_and_dated_names(api: Api) -> None:
    provider = await _provider(api, name="Anthropic", driver="anthropic", api_key="sk-test")
    dated = await _model(api, provider["id"], model_id="claude-sonnet-4-5-20250929")
    assert dated["model_vendor"] == "anthropic"
    assert dated["capabilities"] == ["text", "tools", "vision", "thinking"]
    profile = dated["profile"]
    assert (profile["name"], profile["family"]) == ("Claude Sonnet 4.5", "claude-sonnet")
    assert profile["reasoning"] and profile["attachment"] and profile["tool_call"]
    assert profile["open_weights"] is False
    assert profile["release_date"] == "2025-09-29"
    # No limits stored on the row: the catalogue's; stored ones win.
    assert profile["limits"] == {"context": 200_000, "output": 64_000}
    assert profile["context_window"] is None
    own = await _model(
        api,
        provider["id"],
        model_id="claude-haiku-4-5",
        profile={"context_window": 100_000, "max_output_tokens": 4_000},
    )
    assert own["profile"]["limits"] == {"context": 100_000, "output": 4_000}
    assert own["profile"]["family"] == "claude-haiku"
    assert (dated["healthy"], own["healthy"]) == (True, True)

    openai = await _provider(api, name="OpenAI", driver="openai", api_key="sk-test")
    gpt = await _model(api, openai["id"], model_id="gpt-5-mini")
    assert gpt["model_vendor"] == "openai" and gpt["profile"]["family"] == "gpt-5"
    assert gpt["profile"]["temperature"] is False and gpt["profile"]["structured_output"]


async def test_an_unknown_model_gets_a_modest_profile(api: Api) -> None:
    provider = await _provider(api, name="Compat", driver="openai_completions", api_key="k")
    model = await _model(api, provider["id"], model_id="acme-large-2025-01-01", display_name="Acme")
    assert model["model_vendor"] is None
    assert model["capabilities"] == ["text", "tools"]
    profile = model["profile"]
    assert (profile["name"], profile["family"]) == ("Acme", "acme-large")
    assert not any(profile[k] for k in ("attachment", "reasoning", "structured_output"))
    assert profile["temperature"] and profile["tool_call"]
    assert profile["limits"] is None
    guessed = await _model(api, provider["id"], model_id="gemini-2.5-pro-latest")
    assert guessed["model_vendor"] == "google"
    assert guessed["profile"]["family"] == "gemini-2.5-pro"


async def test_enabled_and_healthy_follow_the_provider(api: Api) -> None:
    keyless = await _provider(api, name="No key", driver="anthropic")
    model = await _model(api, keyless["id"], model_id="claude-opus-4-1")
    assert (model["enabled"], model["healthy"]) == (True, False)
    await api.client.patch(f"/v1/providers/{keyless['id']}", json={"api_key": "sk-now"})
    assert (await _get(api, model["id"]))["healthy"] is True
    await api.client.patch(f"/v1/providers/{keyless['id']}", json={"status": "disabled"})
    disabled = await _get(api, model["id"])
    assert (disabled["enabled"], disabled["healthy"]) == (False, False)


async def test_healthy_follows_the_latest_generation_of_the_model(api: Api) -> None:
    await api.services.start_engine()
    failing = {"response": {"type": "error", "status": 400, "message": "bad request"}}
    model_id = await scripted_model(api, failing)
    untouched = await scripted_model(api, {"response": {"type": "echo"}})
    assert (await _get(api, model_id))["healthy"] is True  # never called

    created = await api.client.post("/v1/sessions", json={"model_id": model_id})
    session_id = created.json()["id"]
    await send(api, session_id, "hello")
    found = await wait_turns_ended(api, session_id)
    generations = [e for e in found if e["type"] == "llm.generation"]
    assert [g["data"]["metadata"]["success"] for g in generations] == [False]
    assert (await _get(api, model_id))["healthy"] is False
    assert (await _get(api, untouched))["healthy"] is True

    fixed = {"settings": {"llmsim": {"response": {"type": "fixed", "text": "fine"}}}}
    assert (await api.client.patch(f"/v1/models/{model_id}", json=fixed)).status_code == 200
    await send(api, session_id, "again")
    await wait_turns_ended(api, session_id, count=2)
    assert (await _get(api, model_id))["healthy"] is True
    listed = {m["id"]: m for m in (await api.client.get("/v1/models")).json()["data"]}
    assert listed[model_id]["healthy"] is True and listed[untouched]["healthy"] is True
