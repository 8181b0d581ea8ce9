"""/v1/providers and /v1/models: CRUD, write-only keys, validation, built-ins."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from everloop import ids
from everloop.crypto import SecretBox
from everloop.domain.resources import Principal, PrincipalKind
from everloop.domain.timestamps import now
from everloop.errors import EverloopError
from everloop.services.auth import TOKEN_PREFIX, hash_token
from everloop.services.models import secret_aad
from everloop.store.sql import Store
from everloop.store.tables import providers
from tests.conftest import POSTGRES_URL, Api


def assert_error(
    response: httpx.Response, status: int, code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert error.get("field") == field, error
    return error


async def create_agent(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "system_prompt": "You help.", **fields}
    response = await api.client.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_session(api: Api, **fields: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/sessions", json=fields)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def other_org_client(api: Api) -> httpx.AsyncClient:
    """A client of a second organization (its own user, principal and token)."""
    store = Store()
    org_id, user_id = ids.new_id("org"), secrets.token_hex(16)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ts = now()
    async with api.services.db.write() as conn:
        await store.ensure_organization(conn, org_id, "Other", ts)
        await store.insert_user(conn, user_id, "other", ts)
        await store.insert_token(
            conn,
            token_id=ids.new_id("pat"),
            user_id=user_id,
            name="t",
            token_hash=hash_token(token),
            hint=token[:12],
            ts=ts,
        )
        principal = Principal(ids.new_id("principal"), org_id, PrincipalKind.USER, user_id, "admin")
        await store.insert_principal(conn, principal, ts)
    await api.services.providers.seed_built_ins(org_id)
    return httpx.AsyncClient(
        transport=api.client._transport,
        base_url=str(api.client.base_url),
        headers={"Authorization": f"Bearer {token}"},
    )


async def _create_provider(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"name": "Local", "driver": "llmsim", **fields}
    response = await api.client.post("/v1/providers", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _create_model(api: Api, provider_id: str, **fields: Any) -> dict[str, Any]:
    body = {"model_id": "sim-1", **fields}
    response = await api.client.post(f"/v1/providers/{provider_id}/models", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _built_in_model(api: Api) -> dict[str, Any]:
    listed = (await api.client.get("/v1/models")).json()
    (built_in,) = [m for m in listed["data"] if m["is_built_in"]]
    return built_in  # type: ignore[no-any-return]


# -- built-ins ---------------------------------------------------------------------------------


async def test_every_org_has_the_llmsim_provider_and_model(api: Api) -> None:
    listed = (await api.client.get("/v1/providers")).json()
    assert listed["total"] == 1
    (provider,) = listed["data"]
    assert provider["name"] == "llmsim"
    assert provider["driver"] == provider["provider_type"] == "llmsim"
    assert provider["is_built_in"] is True
    assert provider["credentials_set"] is provider["api_key_set"] is False
    model = await _built_in_model(api)
    assert model["model_id"] == "llmsim"
    assert model["provider_id"] == provider["id"]
    assert model["source"] == "predefined"
    assert model["profile"]["prices"] == {
        "input": 0.0,
        "output": 0.0,
        "cache_read": 0.0,
        "cache_write": 0.0,
    }


async def test_built_ins_cannot_be_deleted(api: Api) -> None:
    model = await _built_in_model(api)
    assert_error(await api.client.delete(f"/v1/models/{model['id']}"), 409, "conflict")
    response = await api.client.delete(f"/v1/providers/{model['provider_id']}")
    assert_error(response, 409, "conflict")
    response = await api.client.patch(
        f"/v1/providers/{model['provider_id']}", json={"driver": "openai"}
    )
    assert_error(response, 409, field="driver")


async def test_built_in_script_can_be_set(api: Api) -> None:
    model = await _built_in_model(api)
    script = {"response": {"type": "fixed", "text": "hi"}, "tool_calls": []}
    response = await api.client.patch(
        f"/v1/models/{model['id']}", json={"settings": {"llmsim": script}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["settings"] == {"llmsim": script}


# -- providers ---------------------------------------------------------------------------------


async def test_provider_crud(api: Api) -> None:
    created = await _create_provider(
        api, name="Ollama", driver="openai_completions", base_url="http://127.0.0.1:11434/v1"
    )
    assert ids.is_valid("provider", created["id"])
    assert created["credentials_set"] is False
    assert created["status"] == "active"
    assert created["settings"] == {}
    fetched = await api.client.get(f"/v1/providers/{created['id']}")
    assert fetched.json() == created
    updated = await api.client.patch(
        f"/v1/providers/{created['id']}",
        json={"name": "Ollama 2", "base_url": "https://ollama.example/v1", "status": "disabled"},
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["name"], body["base_url"], body["status"]) == (
        "Ollama 2",
        "https://ollama.example/v1",
        "disabled",
    )
    assert body["driver"] == "openai_completions"
    assert (await api.client.get("/v1/providers")).json()["total"] == 2
    deleted = await api.client.delete(f"/v1/providers/{created['id']}")
    assert deleted.status_code == 204
    assert_error(await api.client.get(f"/v1/providers/{created['id']}"), 404, "not_found")


async def test_provider_type_is_accepted_for_driver(api: Api) -> None:
    response = await api.client.post(
        "/v1/providers", json={"name": "Claude", "provider_type": "anthropic"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["driver"] == "anthropic"


async def test_api_key_is_write_only_and_encrypted_at_rest(api: Api) -> None:
    key = "sk-test-" + secrets.token_hex(16)
    seen: list[httpx.Response] = []
    created = await api.client.post(
        "/v1/providers", json={"name": "OpenAI", "driver": "openai", "api_key": key}
    )
    seen.append(created)
    provider = created.json()
    assert provider["credentials_set"] is True and provider["api_key_set"] is True
    pid = provider["id"]
    seen.append(await api.client.post(f"/v1/providers/{pid}/models", json={"model_id": "gpt-x"}))
    seen.append(await api.client.get(f"/v1/providers/{pid}"))
    seen.append(await api.client.get("/v1/providers"))
    seen.append(await api.client.get("/v1/models"))
    seen.append(await api.client.get(f"/v1/providers/{pid}/models"))
    seen.append(await api.client.patch(f"/v1/providers/{pid}", json={"name": "OpenAI 2"}))
    seen.append(await api.client.get("/openapi.json"))
    for response in seen:
        assert response.status_code < 300, response.text
        assert key not in response.text
        assert "credentials_encrypted" not in response.text
        assert 'api_key":' not in response.text or response.url.path.endswith("openapi.json")

    async with api.services.db.read() as conn:
        token = await conn.scalar(
            select(providers.c.credentials_encrypted).where(providers.c.id == pid)
        )
    assert token is not None and key not in token
    box = SecretBox.from_settings(api.services.settings)
    assert box.open(token, secret_aad(api.org_id, pid)) == key
    with pytest.raises(EverloopError):
        box.open(token, secret_aad(api.org_id, ids.new_id("provider")))
    if POSTGRES_URL is None:
        data_dir = api.services.settings.data_dir
        stored = b"".join(p.read_bytes() for p in data_dir.glob("everloop.db*"))
        assert len(stored) > 0
        assert key.encode() not in stored
        assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600

    cleared = await api.client.patch(f"/v1/providers/{pid}", json={"api_key": None})
    assert cleared.json()["credentials_set"] is False
    again = await api.client.patch(f"/v1/providers/{pid}", json={"api_key": "sk-other"})
    assert again.json()["credentials_set"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "driver": "gemini"}, "driver"),
        ({"name": "x", "driver": "openai", "base_url": "ftp://example.com/v1"}, "base_url"),
        ({"name": "x", "driver": "openai", "base_url": "file:///etc/passwd"}, "base_url"),
        ({"name": "x", "driver": "openai", "base_url": "http://"}, "base_url"),
        ({"name": "", "driver": "openai"}, "name"),
        ({"name": "   ", "driver": "openai"}, "name"),
        ({"name": "x" * 201, "driver": "openai"}, "name"),
        ({"driver": "openai"}, "name"),
        (
            {"name": "x", "driver": "llmsim", "settings": {"llmsim": {"response": {"type": "?"}}}},
            "settings.llmsim.response.type",
        ),
        (
            {"name": "x", "driver": "llmsim", "settings": {"llmsim": {"tool_calls": [{}]}}},
            "settings.llmsim.tool_calls[0].when",
        ),
        ({"name": "x", "driver": "llmsim", "settings": {"llmsim": "echo"}}, "settings.llmsim"),
    ],
)
async def test_bad_provider_input(api: Api, body: dict[str, Any], field: str) -> None:
    response = await api.client.post("/v1/providers", json=body)
    assert_error(response, 422, field=field)
    assert (await api.client.get("/v1/providers")).json()["total"] == 1


async def test_bad_provider_update(api: Api) -> None:
    provider = await _create_provider(api)
    url = f"/v1/providers/{provider['id']}"
    assert_error(await api.client.patch(url, json={"base_url": "ftp://x"}), 422, field="base_url")
    assert_error(await api.client.patch(url, json={"driver": "nope"}), 422, field="driver")
    bad_script = {"settings": {"llmsim": {"response": {"type": "fixed"}}}}
    error = assert_error(await api.client.patch(url, json=bad_script), 422)
    assert error["field"].startswith("settings.llmsim.response")
    assert (await api.client.get(url)).json() == provider


async def test_provider_ids_are_checked(api: Api) -> None:
    assert_error(await api.client.get("/v1/providers/prov_1"), 422, "invalid_id")
    assert_error(await api.client.get(f"/v1/providers/{ids.new_id('provider')}"), 404)


async def test_deleting_a_provider_in_use_is_a_conflict(api: Api) -> None:
    provider = await _create_provider(api)
    model = await _create_model(api, provider["id"])
    response = await api.client.delete(f"/v1/providers/{provider['id']}")
    assert_error(response, 409, "provider_in_use")
    assert (await api.client.delete(f"/v1/models/{model['id']}")).status_code == 204
    assert (await api.client.delete(f"/v1/providers/{provider['id']}")).status_code == 204


# -- models ------------------------------------------------------------------------------------


async def test_model_crud(api: Api) -> None:
    provider = await _create_provider(api, name="Sim")
    created = await _create_model(
        api,
        provider["id"],
        display_name="Sim One",
        profile={"context_window": 128_000, "max_output_tokens": 8_192, "prices": {"input": 2.5}},
    )
    assert ids.is_valid("model", created["id"])
    assert created["provider_id"] == provider["id"]
    assert created["provider_name"] == "Sim"
    assert created["source"] == "manual"
    stored = {k: created["profile"][k] for k in ("context_window", "max_output_tokens", "prices")}
    assert stored == {
        "context_window": 128_000,
        "max_output_tokens": 8_192,
        "prices": {"input": 2.5, "output": 0.0, "cache_read": 0.0, "cache_write": 0.0},
    }
    # Derived from the stored values (Everruns' names for them).
    assert created["profile"]["limits"] == {"context": 128_000, "output": 8_192}
    assert created["profile"]["cost"] == {"input": 2.5, "output": 0.0, "cache_read": 0.0}
    assert (await api.client.get(f"/v1/models/{created['id']}")).json() == created
    by_provider = (await api.client.get(f"/v1/providers/{provider['id']}/models")).json()
    assert [m["id"] for m in by_provider["data"]] == [created["id"]]
    assert by_provider["total"] == 1
    assert (await api.client.get("/v1/models")).json()["total"] == 2

    patched = await api.client.patch(
        f"/v1/models/{created['id']}",
        json={"model_id": "sim-2", "display_name": None, "profile": {"prices": {"output": 10}}},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["model_id"], body["display_name"]) == ("sim-2", "Sim One")
    assert body["profile"]["context_window"] is None
    assert body["profile"]["prices"]["output"] == 10.0

    assert (await api.client.delete(f"/v1/models/{created['id']}")).status_code == 204
    assert_error(await api.client.get(f"/v1/models/{created['id']}"), 404, "not_found")


async def test_display_name_defaults_to_the_wire_name(api: Api) -> None:
    provider = await _create_provider(api)
    assert (await _create_model(api, provider["id"], model_id="m-7"))["display_name"] == "m-7"


async def test_wire_model_id_is_unique_per_provider(api: Api) -> None:
    first = await _create_provider(api)
    second = await _create_provider(api)
    await _create_model(api, first["id"], model_id="same")
    await _create_model(api, second["id"], model_id="same")
    duplicate = await api.client.post(
        f"/v1/providers/{first['id']}/models", json={"model_id": "same"}
    )
    assert_error(duplicate, 409, field="model_id")
    other = await _create_model(api, first["id"], model_id="other")
    clash = await api.client.patch(f"/v1/models/{other['id']}", json={"model_id": "same"})
    assert_error(clash, 409, field="model_id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model_id": ""}, "model_id"),
        ({}, "model_id"),
        ({"model_id": "m", "settings": {"llmsim": {"response": {"type": "x"}}}}, None),
        ({"model_id": "m", "profile": {"context_window": 0}}, "profile.context_window"),
        ({"model_id": "m", "profile": {"prices": {"input": -1}}}, "profile.prices.input"),
    ],
)
async def test_bad_model_input(api: Api, body: dict[str, Any], field: str | None) -> None:
    provider = await _create_provider(api)
    response = await api.client.post(f"/v1/providers/{provider['id']}/models", json=body)
    error = assert_error(response, 422, field=field)
    if field is None:
        assert error["field"] == "settings.llmsim.response.type"


async def test_models_of_an_unknown_provider(api: Api) -> None:
    missing = ids.new_id("provider")
    assert_error(await api.client.get(f"/v1/providers/{missing}/models"), 404)
    response = await api.client.post(f"/v1/providers/{missing}/models", json={"model_id": "m"})
    assert_error(response, 404)


async def test_other_orgs_cannot_see_providers_or_models(api: Api) -> None:
    provider = await _create_provider(api, api_key="sk-secret")
    model = await _create_model(api, provider["id"])
    async with await other_org_client(api) as client:
        await _other_org_sees_nothing(client, provider, model)


async def _other_org_sees_nothing(
    client: httpx.AsyncClient, provider: dict[str, Any], model: dict[str, Any]
) -> None:
    assert_error(await client.get(f"/v1/providers/{provider['id']}"), 404)
    assert_error(await client.patch(f"/v1/providers/{provider['id']}", json={"name": "x"}), 404)
    assert_error(await client.delete(f"/v1/providers/{provider['id']}"), 404)
    assert_error(await client.get(f"/v1/models/{model['id']}"), 404)
    assert_error(await client.delete(f"/v1/models/{model['id']}"), 404)
    response = await client.post(f"/v1/providers/{provider['id']}/models", json={"model_id": "m"})
    assert_error(response, 404)
    listed = (await client.get("/v1/models")).json()["data"]
    assert [m["model_id"] for m in listed] == ["llmsim"]  # its own built-in only
    assert model["id"] not in [m["id"] for m in listed]


# -- model ids on sessions, agents and harnesses -----------------------------------------------


async def test_unknown_model_id_is_refused_where_it_is_set(api: Api) -> None:
    unknown = ids.new_id("model")
    response = await api.client.post("/v1/sessions", json={"model_id": unknown})
    assert_error(response, 422, "unknown_model", field="model_id")
    body = {"name": "a1", "system_prompt": "p", "default_model_id": unknown}
    assert_error(await api.client.post("/v1/agents", json=body), 422, field="default_model_id")
    body = {"name": "h1", "default_model_id": unknown}
    assert_error(await api.client.post("/v1/harnesses", json=body), 422, field="default_model_id")

    agent = await create_agent(api, "a2")
    response = await api.client.patch(
        f"/v1/agents/{agent['id']}", json={"default_model_id": unknown}
    )
    assert_error(response, 422, field="default_model_id")
    harness = await api.client.post("/v1/harnesses", json={"name": "h2"})
    response = await api.client.patch(
        f"/v1/harnesses/{harness.json()['id']}", json={"default_model_id": unknown}
    )
    assert_error(response, 422, field="default_model_id")


async def test_known_model_ids_are_accepted(api: Api) -> None:
    model = await _built_in_model(api)
    session = await create_session(api, model_id=model["id"])
    assert session["model_id"] == model["id"]
    agent = await create_agent(api, "a3", default_model_id=model["id"])
    assert agent["default_model_id"] == model["id"]
    cleared = await api.client.patch(f"/v1/agents/{agent['id']}", json={"default_model_id": None})
    assert cleared.json()["default_model_id"] is None
    harness = await api.client.post(
        "/v1/harnesses", json={"name": "h3", "default_model_id": model["id"]}
    )
    assert harness.status_code == 201, harness.text
