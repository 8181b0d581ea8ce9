"""Forking an agent version: a new agent from a saved version's authored config, its first
version a ``fork`` naming the forked version as its source."""

from __future__ import annotations

from typing import Any

from everruns_sdk.models import Agent
from sqlalchemy import select

from everloop import ids
from everloop.store.tables import agents
from tests.api.conftest import OtherOrg, assert_error, create_agent
from tests.conftest import Api

TOOL = {
    "name": "lookup",
    "description": "Looks things up.",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
}


async def versions(api: Api, agent_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"/v1/agents/{agent_id}/versions")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def agent_count(api: Api) -> int:
    response = await api.client.get("/v1/agents", params={"include_archived": True})
    return int(response.json()["total"])


def fork_path(agent_id: str, version_id: str) -> str:
    return f"/v1/agents/{agent_id}/versions/{version_id}/fork"


async def test_fork_copies_the_versions_config_not_the_current_one(api: Api) -> None:
    agent = await create_agent(
        api,
        "origin",
        system_prompt="Version one.",
        display_name="Origin",
        description="The first.",
        harness_name="base",
        tags=["t"],
        capabilities=[{"ref": "current_time", "config": None}],
        tools=[TOOL],
        max_iterations=4,
        parallel_tool_calls=False,
    )
    (v1,) = await versions(api, agent["id"])
    changed = await api.client.patch(
        f"/v1/agents/{agent['id']}", json={"system_prompt": "Version two.", "tools": []}
    )
    assert changed.status_code == 200, changed.text

    response = await api.client.post(fork_path(agent["id"], v1["id"]), json={"name": "offshoot"})
    assert response.status_code == 200, response.text
    fork = Agent(**response.json())  # the everruns-sdk model parses it
    assert fork.id != agent["id"] and fork.name == "offshoot"
    assert fork.system_prompt == "Version one."
    assert [t.name for t in fork.tools] == ["lookup"]
    assert (fork.display_name, fork.description) == ("Origin", "The first.")
    assert (fork.max_iterations, fork.parallel_tool_calls) == (4, False)
    assert fork.harness_id == agent["harness_id"]
    assert [c.ref for c in fork.capabilities] == ["current_time"]
    assert fork.tags == ["t"]

    (first,) = await versions(api, fork.id)
    assert (first["change_kind"], first["source_version_id"]) == ("fork", v1["id"])
    assert (first["version_number"], first["version"]) == (1, "0.1.0")
    # The same authored config but the name.
    assert {k: v for k, v in first["authored_config"].items() if k != "name"} == {
        k: v for k, v in v1["authored_config"].items() if k != "name"
    }
    # The source agent is untouched.
    source = (await api.client.get(f"/v1/agents/{agent['id']}")).json()
    assert source["system_prompt"] == "Version two."
    assert len(await versions(api, agent["id"])) == 2


async def test_fork_takes_display_name_and_description_and_a_name_ref(api: Api) -> None:
    agent = await create_agent(api, "named-origin", display_name="Old", description="Old.")
    (v1,) = await versions(api, agent["id"])
    response = await api.client.post(
        fork_path("named-origin", v1["id"]),  # the agent by name, as the SDK allows
        json={"name": "renamed", "display_name": "New", "description": "New."},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["display_name"], response.json()["description"]) == ("New", "New.")


async def test_fork_keeps_mcp_header_values_sealed(api: Api) -> None:
    servers = {"docs": {"url": "http://127.0.0.1:9/mcp", "headers": {"X-Key": "s3cret"}}}
    agent = await create_agent(api, "keyed-origin", mcpServers=servers)
    (v1,) = await versions(api, agent["id"])
    response = await api.client.post(fork_path(agent["id"], v1["id"]), json={"name": "keyed-fork"})
    assert response.status_code == 200, response.text
    fork_id = response.json()["id"]
    assert "s3cret" not in response.text
    assert response.json()["mcpServers"] == {
        "docs": {"url": "http://127.0.0.1:9/mcp", "header_names": ["X-Key"]}
    }
    # The fork's stored header values open to the original ones (sealed afresh for it).
    async with api.services.db.read() as conn:
        row = (
            await conn.execute(select(agents.c.mcp_servers).where(agents.c.id == fork_id))
        ).scalar_one()
    assert "s3cret" not in str(row)
    assert api.services.mcp_servers.scoped.open(api.org_id, "docs", row["docs"]) == {
        "X-Key": "s3cret"
    }


async def test_a_taken_name_is_409_and_writes_nothing(api: Api) -> None:
    agent = await create_agent(api, "taken-origin")
    await create_agent(api, "taken")
    (v1,) = await versions(api, agent["id"])
    before = await agent_count(api)
    response = await api.client.post(fork_path(agent["id"], v1["id"]), json={"name": "taken"})
    assert_error(response, 409, "conflict", field="name")
    self_name = await api.client.post(
        fork_path(agent["id"], v1["id"]), json={"name": "taken-origin"}
    )
    assert_error(self_name, 409, "conflict", field="name")
    assert await agent_count(api) == before


async def test_bad_input_is_422_naming_the_field(api: Api) -> None:
    agent = await create_agent(api, "bad-input-origin")
    (v1,) = await versions(api, agent["id"])
    before = await agent_count(api)
    for body in ({"name": "Not A Slug"}, {}, {"name": ""}, {"name": "x" * 65}):
        response = await api.client.post(fork_path(agent["id"], v1["id"]), json=body)
        assert_error(response, 422, field="name")
    long_display = await api.client.post(
        fork_path(agent["id"], v1["id"]), json={"name": "ok-name", "display_name": "d" * 201}
    )
    assert_error(long_display, 422, field="display_name")
    bad_version = await api.client.post(
        fork_path(agent["id"], "agentver_nothex"), json={"name": "ok-name"}
    )
    assert bad_version.status_code in (404, 422), bad_version.text
    assert await agent_count(api) == before


async def test_unknown_and_other_org_agents_and_versions_are_404(
    api: Api, other_org: OtherOrg
) -> None:
    agent = await create_agent(api, "private-origin")
    (v1,) = await versions(api, agent["id"])
    other = await create_agent(api, "other-origin")
    (other_v1,) = await versions(api, other["id"])
    before = await agent_count(api)
    cases = [
        (api.client, fork_path(ids.new_id("agent"), v1["id"])),
        (api.client, fork_path(agent["id"], ids.new_id("agentver"))),
        (api.client, fork_path(agent["id"], other_v1["id"])),  # another agent's version
        (other_org.client, fork_path(agent["id"], v1["id"])),
        (other_org.client, fork_path("private-origin", v1["id"])),
    ]
    for client, path in cases:
        response = await client.post(path, json={"name": "stolen"})
        assert_error(response, 404, "not_found")
    assert await agent_count(api) == before
    theirs = await other_org.client.get("/v1/agents")
    assert theirs.json()["total"] == 0
