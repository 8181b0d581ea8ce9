"""Agents as portable documents: export, import, and the round trip between them."""

from __future__ import annotations

from typing import Any

import yaml

from everloop import ids
from tests.api.conftest import OtherOrg, assert_error, create_agent
from tests.conftest import Api

# What a round trip does not keep: ids, timestamps, status and the org.
NOT_KEPT = {
    "id",
    "organization_id",
    "harness_id",
    "default_version_id",
    "created_at",
    "updated_at",
    "archived_at",
    "status",
}
PROMPT = "You are terse.\n\n---\nA line of dashes above, trailing spaces here:   \n"


def kept(agent: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in agent.items() if k not in NOT_KEPT}


async def export(api: Api, agent_id: str) -> str:
    response = await api.client.get(f"/v1/agents/{agent_id}/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/markdown")
    return response.text


async def import_text(client: Any, text: str) -> Any:
    return await client.post(
        "/v1/agents/import", content=text.encode(), headers={"Content-Type": "text/plain"}
    )


async def full_agent(api: Api, name: str) -> dict[str, Any]:
    return await create_agent(
        api,
        name,
        system_prompt=PROMPT,
        display_name="Full — ünïcode",
        description="Every field set.",
        harness_name="base",
        tags=["a", "b"],
        capabilities=[{"ref": "current_time", "config": {"zone": "UTC"}}],
        tools=[
            {
                "name": "lookup",
                "description": "Looks things up.",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                "timeout_seconds": 30,
            }
        ],
        initial_files=[{"path": "/notes.md", "content": "# Notes\n"}],
        network_access={"allowed": ["example.com"], "blocked": []},
        mcpServers={"docs": {"url": "http://127.0.0.1:9/mcp"}},
        max_iterations=9,
        parallel_tool_calls=False,
    )


async def test_export_is_markdown_with_front_matter(api: Api) -> None:
    agent = await full_agent(api, "documented")
    text = await export(api, agent["id"])
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    meta = yaml.safe_load(front)
    assert meta["name"] == "documented"
    assert meta["harness"] == "base"
    assert meta["tags"] == ["a", "b"]
    assert body == "\n" + PROMPT
    assert agent["id"] not in text and "created_at" not in text


async def test_round_trip_into_another_org(api: Api, other_org: OtherOrg) -> None:
    agent = await full_agent(api, "traveller")
    response = await import_text(other_org.client, await export(api, agent["id"]))
    assert response.status_code == 201, response.text
    imported = response.json()
    assert imported["organization_id"] == other_org.organization_id
    assert kept(imported) == kept(agent)
    harness = (await other_org.client.get(f"/v1/harnesses/{imported['harness_id']}")).json()
    assert harness["name"] == "base"


async def test_round_trip_in_the_same_org_after_a_rename(api: Api) -> None:
    agent = await full_agent(api, "renamed")
    text = await export(api, agent["id"])
    assert (await import_text(api.client, text)).status_code == 409
    patched = await api.client.patch(f"/v1/agents/{agent['id']}", json={"name": "old-one"})
    assert patched.status_code == 200
    response = await import_text(api.client, text)
    assert response.status_code == 201, response.text
    assert response.json()["id"] != agent["id"]
    assert kept(response.json()) == kept(agent)
    assert await export(api, response.json()["id"]) == text


async def test_a_minimal_agent_round_trips(api: Api) -> None:
    agent = await create_agent(api, "minimal", system_prompt="")
    text = await export(api, agent["id"])
    await api.client.delete(f"/v1/agents/{agent['id']}")
    await api.client.patch(f"/v1/agents/{agent['id']}", json={"name": "minimal-old"})
    imported = (await import_text(api.client, text)).json()
    assert kept(imported) == kept(agent)


async def test_import_json_yaml_and_plain_text(api: Api) -> None:
    as_json = await import_text(
        api.client, '{"name": "from-json", "system_prompt": "J", "harness": "base"}'
    )
    assert as_json.status_code == 201, as_json.text
    assert (as_json.json()["name"], as_json.json()["system_prompt"]) == ("from-json", "J")
    as_yaml = await import_text(api.client, "name: from-yaml\nsystem_prompt: Y\ntags: [t]\n")
    assert as_yaml.status_code == 201, as_yaml.text
    assert as_yaml.json()["tags"] == ["t"]
    plain = await import_text(api.client, "Just answer: briefly.")
    assert plain.status_code == 201, plain.text
    assert (plain.json()["name"], plain.json()["system_prompt"]) == (
        "imported-agent",
        "Just answer: briefly.",
    )
    again = await import_text(api.client, "Another.")
    assert again.json()["name"] == "imported-agent-2"


async def test_bad_documents_name_the_problem_and_write_nothing(api: Api) -> None:
    cases = [
        ("---\nname: x\nno closing fence", "body"),
        ("---\nname: [unclosed\n---\nprompt", "body"),
        ("---\n- a list\n---\nprompt", "body"),
        ('{"name": "x", ', "body"),
        ("---\nname: Bad_Name\n---\nprompt", "name"),
        ("---\nname: ok\ntools: 3\n---\nprompt", "tools"),
        ("---\nname: ok\nwhat: 1\n---\nprompt", "what"),
    ]
    for text, field in cases:
        response = await import_text(api.client, text)
        assert_error(response, 422, field=field)
    unknown_cap = "---\nname: ok\ncapabilities: [{ref: no_such}]\n---\np"
    assert_error(await import_text(api.client, unknown_cap), 422, field="capabilities.0.ref")
    not_utf8 = await api.client.post("/v1/agents/import", content=b"\xff\xfe")
    assert_error(not_utf8, 422, field="body")
    assert (await api.client.get("/v1/agents")).json()["total"] == 0


async def test_export_of_another_orgs_agent_is_404(api: Api, other_org: OtherOrg) -> None:
    agent = await create_agent(api, "secretive")
    response = await other_org.client.get(f"/v1/agents/{agent['id']}/export")
    assert_error(response, 404, "not_found")
    missing = await api.client.get(f"/v1/agents/{ids.new_id('agent')}/export")
    assert_error(missing, 404, "not_found")


async def test_mcp_header_values_never_leave(api: Api) -> None:
    servers = {"docs": {"url": "http://127.0.0.1:9/mcp", "headers": {"X-Key": "s3cret"}}}
    agent = await create_agent(api, "keyed", mcpServers=servers)
    text = await export(api, agent["id"])
    assert "s3cret" not in text
    assert "X-Key" in text  # the header's name, so whoever imports knows to set it
