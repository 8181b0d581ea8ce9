from __future__ import annotations

import asyncio
from typing import Any

import pytest

from everloop import ids
from tests.api.conftest import OtherOrg, assert_error, create_agent
from tests.conftest import Api


async def _harness_id(api: Api, name: str) -> str:
    response = await api.client.get(f"/v1/harnesses/{name}")
    assert response.status_code == 200, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def _list(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.client.get("/v1/agents", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_create_defaults_to_the_generic_harness(api: Api) -> None:
    agent = await create_agent(api, "helper")
    assert ids.is_valid("agent", agent["id"])
    assert agent["harness_id"] == await _harness_id(api, "generic")
    assert agent["organization_id"] == api.org_id
    assert agent["system_prompt"] == "You help."
    assert agent["status"] == "active"
    assert agent["tags"] == []
    assert agent["tools"] == []
    assert agent["mcpServers"] == {}
    assert agent["archived_at"] is None


async def test_create_with_harness_name_or_id(api: Api) -> None:
    base_id = await _harness_id(api, "base")
    by_name = await create_agent(api, "by-name", harness_name="base")
    by_id = await create_agent(api, "by-id", harness_id=base_id)
    assert by_name["harness_id"] == base_id
    assert by_id["harness_id"] == base_id


async def test_harness_id_and_name_together_are_422(api: Api) -> None:
    response = await api.client.post(
        "/v1/agents",
        json={
            "name": "both",
            "system_prompt": "p",
            "harness_id": await _harness_id(api, "base"),
            "harness_name": "base",
        },
    )
    assert_error(response, 422, "validation_error", field="harness_id")
    assert (await _list(api))["total"] == 0


async def test_unknown_harness_is_404(api: Api) -> None:
    by_id = await api.client.post(
        "/v1/agents", json={"name": "x", "system_prompt": "p", "harness_id": ids.new_id("harness")}
    )
    assert_error(by_id, 404, "not_found")
    by_name = await api.client.post(
        "/v1/agents", json={"name": "x", "system_prompt": "p", "harness_name": "nope"}
    )
    assert_error(by_name, 404, "not_found")
    malformed = await api.client.post(
        "/v1/agents", json={"name": "x", "system_prompt": "p", "harness_id": "harness_1"}
    )
    assert_error(malformed, 422, "invalid_id", field="harness_id")
    assert (await _list(api))["total"] == 0


async def test_system_prompt_is_required(api: Api) -> None:
    response = await api.client.post("/v1/agents", json={"name": "x"})
    assert_error(response, 422, "validation_error", field="system_prompt")


@pytest.mark.parametrize("name", ["Bad_Name", "a" * 65, "-x", "a--b"])
async def test_name_rules(api: Api, name: str) -> None:
    response = await api.client.post("/v1/agents", json={"name": name, "system_prompt": "p"})
    assert_error(response, 422, "validation_error", field="name")


async def test_post_with_an_existing_name_updates_that_agent(api: Api) -> None:
    """The SDK's ``apply_by_name``: no id, a name the org uses: that agent is updated."""
    first = await create_agent(api, "same", description="first", tags=["a"])
    response = await api.client.post(
        "/v1/agents", json={"name": "same", "system_prompt": "other", "description": "second"}
    )
    assert response.status_code == 200, response.text
    applied = response.json()
    assert applied["id"] == first["id"]
    assert applied["created_at"] == first["created_at"]
    assert (applied["system_prompt"], applied["description"]) == ("other", "second")
    assert applied["tags"] == ["a"]  # a field the request leaves out keeps its value
    assert (await api.client.get(f"/v1/agents/{first['id']}")).json() == applied
    assert (await _list(api))["total"] == 1


async def test_post_by_name_brings_an_archived_agent_back(api: Api) -> None:
    agent = await create_agent(api, "sleeper")
    assert (await api.client.delete(f"/v1/agents/{agent['id']}")).status_code == 204
    response = await api.client.post("/v1/agents", json={"name": "sleeper", "system_prompt": "up"})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == agent["id"]
    assert (response.json()["status"], response.json()["archived_at"]) == ("active", None)


async def test_post_by_name_with_bad_input_changes_nothing(api: Api) -> None:
    agent = await create_agent(api, "steady")
    response = await api.client.post(
        "/v1/agents",
        json={"name": "steady", "system_prompt": "x", "capabilities": [{"ref": "no_such"}]},
    )
    assert_error(response, 422, "unknown_capability", field="capabilities.0.ref")
    assert (await api.client.get(f"/v1/agents/{agent['id']}")).json() == agent


async def test_post_by_name_reaches_only_the_own_org(api: Api, other_org: OtherOrg) -> None:
    mine = await create_agent(api, "shared-name")
    other = other_org
    response = await other.client.post(
        "/v1/agents", json={"name": "shared-name", "system_prompt": "theirs"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] != mine["id"]
    assert (await api.client.get(f"/v1/agents/{mine['id']}")).json() == mine


async def test_duplicate_tool_names_are_422(api: Api) -> None:
    tool = {"name": "lookup", "description": "d", "parameters": {"type": "object"}}
    response = await api.client.post(
        "/v1/agents", json={"name": "tools", "system_prompt": "p", "tools": [tool, tool]}
    )
    assert_error(response, 422, "validation_error", field="tools")
    assert (await _list(api))["total"] == 0
    agent = await create_agent(api, "tools", tools=[tool])
    assert [t["name"] for t in agent["tools"]] == ["lookup"]
    patched = await api.client.patch(f"/v1/agents/{agent['id']}", json={"tools": [tool, tool]})
    assert_error(patched, 422, "validation_error", field="tools")
    assert (await api.client.get(f"/v1/agents/{agent['id']}")).json()["tools"] == agent["tools"]


async def test_get(api: Api) -> None:
    agent = await create_agent(api, "getme")
    fetched = await api.client.get(f"/v1/agents/{agent['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == agent
    assert_error(await api.client.get(f"/v1/agents/{ids.new_id('agent')}"), 404, "not_found")


async def test_put_creates_then_updates(api: Api) -> None:
    agent_id = ids.new_id("agent")
    created = await api.client.put(
        f"/v1/agents/{agent_id}", json={"name": "putter", "system_prompt": "v1"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] == agent_id
    updated = await api.client.put(
        f"/v1/agents/{agent_id}", json={"name": "putter", "system_prompt": "v2"}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["system_prompt"] == "v2"
    assert updated.json()["created_at"] == created.json()["created_at"]
    listed = await _list(api)
    assert listed["total"] == 1
    assert listed["data"][0]["system_prompt"] == "v2"


async def test_put_with_a_malformed_id_is_422(api: Api) -> None:
    response = await api.client.put(
        "/v1/agents/agent_xyz", json={"name": "x", "system_prompt": "p"}
    )
    assert_error(response, 422, "invalid_id")


async def test_post_with_an_existing_own_id_updates(api: Api) -> None:
    agent = await create_agent(api, "poster", description="before")
    again = await api.client.post(
        "/v1/agents",
        json={"id": agent["id"], "name": "poster", "system_prompt": "new", "description": "after"},
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == agent["id"]
    assert again.json()["description"] == "after"
    assert again.json()["system_prompt"] == "new"
    assert (await _list(api))["total"] == 1


async def test_post_update_to_a_taken_name_changes_nothing(api: Api) -> None:
    await create_agent(api, "taken")
    mine = await create_agent(api, "mine", description="before")
    response = await api.client.post(
        "/v1/agents",
        json={"id": mine["id"], "name": "taken", "system_prompt": "x", "description": "after"},
    )
    assert_error(response, 409, "conflict", field="name")
    assert (await api.client.get(f"/v1/agents/{mine['id']}")).json() == mine


async def test_patch(api: Api) -> None:
    agent = await create_agent(api, "patchy")
    response = await api.client.patch(
        f"/v1/agents/{agent['id']}",
        json={
            "name": "patched",
            "description": "d",
            "tags": ["t"],
            "max_iterations": 7,
            "harness_name": "base",
        },
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["name"] == "patched"
    assert patched["description"] == "d"
    assert patched["tags"] == ["t"]
    assert patched["max_iterations"] == 7
    assert patched["harness_id"] == await _harness_id(api, "base")
    assert patched["system_prompt"] == agent["system_prompt"]
    assert (await api.client.get(f"/v1/agents/{agent['id']}")).json() == patched


async def test_patch_to_a_taken_name_is_409(api: Api) -> None:
    await create_agent(api, "first")
    second = await create_agent(api, "second")
    response = await api.client.patch(f"/v1/agents/{second['id']}", json={"name": "first"})
    assert_error(response, 409, "conflict", field="name")
    assert (await api.client.get(f"/v1/agents/{second['id']}")).json() == second


async def test_delete_archives(api: Api) -> None:
    agent = await create_agent(api, "gone")
    response = await api.client.delete(f"/v1/agents/{agent['id']}")
    assert response.status_code == 204
    assert (await _list(api))["total"] == 0
    archived = await _list(api, include_archived="true")
    assert [a["id"] for a in archived["data"]] == [agent["id"]]
    fetched = (await api.client.get(f"/v1/agents/{agent['id']}")).json()
    assert fetched["status"] == "archived"
    assert fetched["archived_at"] is not None
    assert_error(await api.client.delete(f"/v1/agents/{ids.new_id('agent')}"), 404, "not_found")


async def test_list_search_and_pagination(api: Api) -> None:
    made = [await create_agent(api, f"agent-{i}") for i in range(5)]
    await create_agent(api, "writer", description="Writes PROSE")
    everything = await _list(api)
    assert everything["total"] == 6
    assert everything["offset"] == 0
    # Newest first.
    assert [a["name"] for a in everything["data"]][:2] == ["writer", "agent-4"]
    page = await _list(api, offset=1, limit=2)
    assert page["total"] == 6
    assert (page["offset"], page["limit"]) == (1, 2)
    assert [a["id"] for a in page["data"]] == [made[4]["id"], made[3]["id"]]
    tail = await _list(api, offset=5, limit=2)
    assert [a["id"] for a in tail["data"]] == [made[0]["id"]]
    past = await _list(api, offset=50)
    assert past["data"] == [] and past["total"] == 6
    found = await _list(api, search="prose")
    assert [a["name"] for a in found["data"]] == ["writer"]
    assert found["total"] == 1
    assert (await _list(api, search="agent-"))["total"] == 5
    assert (await _list(api, search="%"))["total"] == 0
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "ten"}):
        response = await api.client.get("/v1/agents", params=bad)
        assert_error(response, 422, "validation_error", field=next(iter(bad)))


async def test_concurrent_posts_of_one_name_make_one_agent(api: Api) -> None:
    bodies = [{"name": "racer", "system_prompt": f"v{n}"} for n in range(8)]
    responses = await asyncio.gather(*(api.client.post("/v1/agents", json=b) for b in bodies))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201], [
        r.text for r in responses
    ]
    assert len({r.json()["id"] for r in responses}) == 1
    assert (await _list(api))["total"] == 1
