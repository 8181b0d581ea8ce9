from __future__ import annotations

from typing import Any

import pytest

from everloop import ids
from tests.api.conftest import assert_error
from tests.conftest import Api


async def _create(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/harnesses", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _names(api: Api, **params: Any) -> list[str]:
    response = await api.client.get("/v1/harnesses", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["data"])
    return [h["name"] for h in body["data"]]


async def test_list_shows_the_built_ins(api: Api) -> None:
    response = await api.client.get("/v1/harnesses")
    assert response.status_code == 200
    by_name = {h["name"]: h for h in response.json()["data"]}
    assert set(by_name) == {"base", "generic"}
    for harness in by_name.values():
        assert harness["is_built_in"] is True
        assert harness["status"] == "active"
        assert harness["organization_id"] == api.org_id
        assert ids.is_valid("harness", harness["id"])
    assert by_name["generic"]["capabilities"] == [
        {"ref": "current_time", "config": None},
        {"ref": "compaction", "config": None},
    ]


@pytest.mark.parametrize("name", ["base", "generic"])
async def test_built_ins_are_read_only(api: Api, name: str) -> None:
    patched = await api.client.patch(f"/v1/harnesses/{name}", json={"description": "mine"})
    assert_error(patched, 409, "conflict")
    deleted = await api.client.delete(f"/v1/harnesses/{name}")
    assert_error(deleted, 409, "conflict")
    harness = (await api.client.get(f"/v1/harnesses/{name}")).json()
    assert harness["status"] == "active"
    assert harness["description"] != "mine"
    by_id = await api.client.delete(f"/v1/harnesses/{harness['id']}")
    assert_error(by_id, 409, "conflict")


async def test_create_then_get_by_id_and_by_name(api: Api) -> None:
    created = await _create(
        api,
        "research",
        display_name="Research",
        description="Digs things up",
        system_prompt="Be thorough.",
        tags=["a", "b"],
        capabilities=[{"ref": "current_time"}],
        mcpServers={"docs": {"url": "http://127.0.0.1:1/mcp"}},
    )
    assert ids.is_valid("harness", created["id"])
    assert created["is_built_in"] is False
    assert created["status"] == "active"
    assert created["archived_at"] is None
    assert created["tags"] == ["a", "b"]
    assert created["mcpServers"]["docs"]["url"] == "http://127.0.0.1:1/mcp"
    for ref in (created["id"], "research"):
        fetched = await api.client.get(f"/v1/harnesses/{ref}")
        assert fetched.status_code == 200
        assert fetched.json() == created
    assert await _names(api) == ["base", "generic", "research"]


async def test_create_with_client_supplied_id(api: Api) -> None:
    harness_id = ids.new_id("harness")
    created = await _create(api, "mine", id=harness_id)
    assert created["id"] == harness_id
    again = await api.client.post("/v1/harnesses", json={"name": "other", "id": harness_id})
    assert_error(again, 409, "conflict", field="id")


async def test_duplicate_name_is_409_and_changes_nothing(api: Api) -> None:
    first = await _create(api, "dup", description="first")
    second = await api.client.post("/v1/harnesses", json={"name": "dup", "description": "second"})
    assert_error(second, 409, "conflict", field="name")
    assert (await api.client.get("/v1/harnesses/dup")).json() == first
    built_in = await api.client.post("/v1/harnesses", json={"name": "generic"})
    assert_error(built_in, 409, "conflict", field="name")


@pytest.mark.parametrize("name", ["Bad_Name", "a" * 65, "-x", "x-", "a--b", "", "a b", "ünï"])
async def test_name_rules(api: Api, name: str) -> None:
    response = await api.client.post("/v1/harnesses", json={"name": name})
    assert_error(response, 422, "validation_error", field="name")
    assert await _names(api) == ["base", "generic"]


async def test_longest_name_is_accepted(api: Api) -> None:
    created = await _create(api, "a" * 64)
    assert created["name"] == "a" * 64
    await _create(api, "a1-b2-3c")


async def test_patch_fields(api: Api) -> None:
    created = await _create(api, "editable", description="old", tags=["x"])
    response = await api.client.patch(
        f"/v1/harnesses/{created['id']}",
        json={
            "name": "edited",
            "description": "new",
            "system_prompt": "Be brief.",
            "tags": ["y", "z"],
            "parallel_tool_calls": True,
        },
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["id"] == created["id"]
    assert patched["name"] == "edited"
    assert patched["description"] == "new"
    assert patched["system_prompt"] == "Be brief."
    assert patched["tags"] == ["y", "z"]
    assert patched["parallel_tool_calls"] is True
    assert patched["created_at"] == created["created_at"]
    assert patched["updated_at"] >= created["updated_at"]
    assert (await api.client.get("/v1/harnesses/edited")).json() == patched
    assert_error(await api.client.get("/v1/harnesses/editable"), 404, "not_found")


async def test_patch_to_a_taken_name_is_409(api: Api) -> None:
    await _create(api, "one")
    two = await _create(api, "two")
    response = await api.client.patch("/v1/harnesses/two", json={"name": "one"})
    assert_error(response, 409, "conflict", field="name")
    assert (await api.client.get(f"/v1/harnesses/{two['id']}")).json()["name"] == "two"


async def test_patch_with_a_bad_name_is_422(api: Api) -> None:
    await _create(api, "keep")
    response = await api.client.patch("/v1/harnesses/keep", json={"name": "Not_OK"})
    assert_error(response, 422, "validation_error", field="name")


async def test_delete_archives(api: Api) -> None:
    created = await _create(api, "short-lived")
    deleted = await api.client.delete("/v1/harnesses/short-lived")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert await _names(api) == ["base", "generic"]
    assert await _names(api, include_archived="true") == ["base", "generic", "short-lived"]
    fetched = await api.client.get(f"/v1/harnesses/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["status"] == "archived"
    assert fetched.json()["archived_at"] is not None
    # Deleting twice is harmless.
    assert (await api.client.delete(f"/v1/harnesses/{created['id']}")).status_code == 204


async def test_archived_harness_cannot_back_new_sessions_or_agents(api: Api) -> None:
    await _create(api, "retired")
    assert (await api.client.delete("/v1/harnesses/retired")).status_code == 204
    session = await api.client.post("/v1/sessions", json={"harness_name": "retired"})
    assert_error(session, 422, "validation_error")
    agent = await api.client.post(
        "/v1/agents", json={"name": "a", "system_prompt": "p", "harness_name": "retired"}
    )
    assert_error(agent, 422, "validation_error")


async def test_parent_harness(api: Api) -> None:
    parent = await _create(api, "parent")
    child = await _create(api, "child", parent_harness_id=parent["id"])
    assert child["parent_harness_id"] == parent["id"]
    unknown = await api.client.post(
        "/v1/harnesses", json={"name": "orphan", "parent_harness_id": ids.new_id("harness")}
    )
    assert_error(unknown, 404, "not_found")
    malformed = await api.client.post(
        "/v1/harnesses", json={"name": "orphan", "parent_harness_id": "harness_nope"}
    )
    assert_error(malformed, 422, "invalid_id", field="parent_harness_id")
    itself = await api.client.patch(
        f"/v1/harnesses/{child['id']}", json={"parent_harness_id": child["id"]}
    )
    assert_error(itself, 422, "validation_error", field="parent_harness_id")
    assert await _names(api) == ["base", "generic", "child", "parent"]


async def test_search(api: Api) -> None:
    await _create(api, "alpha", description="Finds Needles in haystacks")
    await _create(api, "beta", display_name="The NEEDLE finder")
    await _create(api, "gamma")
    assert sorted(await _names(api, search="needle")) == ["alpha", "beta"]
    assert await _names(api, search="gam") == ["gamma"]
    assert await _names(api, search="nothing-like-this") == []
    # LIKE wildcards are literal.
    assert await _names(api, search="%") == []
    assert await _names(api, search="_") == []
