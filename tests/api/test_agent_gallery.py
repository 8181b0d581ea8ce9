"""The built-in galleries: agent examples imported with ``?from-example=`` (through the document
import path, so they round-trip through export) and harness examples listed by
``GET /v1/harness-examples``."""

from __future__ import annotations

from typing import Any

import pytest
from everruns_sdk.models import Agent, HarnessExample

from everloop.domain.examples import AGENT_EXAMPLES, BUILT_IN_HARNESSES, HARNESS_EXAMPLES
from tests.api.conftest import OtherOrg, assert_error
from tests.conftest import Api

EXAMPLE_NAMES = [example.name for example in AGENT_EXAMPLES]


async def import_example(client: Any, name: str, body: str = "") -> Any:
    return await client.post(
        "/v1/agents/import",
        params={"from-example": name},
        content=body.encode(),
        headers={"Content-Type": "text/plain"},
    )


async def registered_capabilities(api: Api) -> set[str]:
    response = await api.client.get("/v1/capabilities", params={"limit": 100})
    assert response.status_code == 200, response.text
    assert response.json()["total"] <= 100
    return {c["id"] for c in response.json()["data"]}


async def agent_count(api: Api) -> int:
    response = await api.client.get("/v1/agents", params={"include_archived": True})
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
async def test_every_example_imports_and_round_trips(api: Api, name: str) -> None:
    response = await import_example(api.client, name)
    assert response.status_code == 201, response.text
    agent = Agent(**response.json())  # the everruns-sdk model parses it
    assert agent.name == name
    assert agent.system_prompt and agent.description
    known = await registered_capabilities(api)
    assert agent.capabilities or name == "dad-jokes-agent"
    for capability in agent.capabilities:
        assert capability.ref in known

    # Through the document path: its export is the example's document, byte for byte.
    (example,) = [e for e in AGENT_EXAMPLES if e.name == name]
    exported = await api.client.get(f"/v1/agents/{agent.id}/export")
    assert exported.status_code == 200, exported.text
    assert exported.text == example.document()

    versions = (await api.client.get(f"/v1/agents/{agent.id}/versions")).json()
    assert [v["change_kind"] for v in versions] == ["import"]

    # A session can run it: its harness and capabilities assemble.
    session = await api.client.post("/v1/sessions", json={"agent_id": agent.id})
    assert session.status_code == 201, session.text
    report = await api.client.get(f"/v1/sessions/{session.json()['id']}/context-report")
    assert report.status_code == 200, report.text
    assert agent.system_prompt in report.json()["system_prompt"]
    offered = {t["capability_id"] for t in report.json()["tools"]}
    assert {c.ref for c in agent.capabilities} <= offered


async def test_the_body_is_ignored_with_from_example(api: Api) -> None:
    response = await import_example(api.client, "weather-demo", "---\nname: other\n---\nHi")
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "weather-demo"


async def test_an_unknown_example_is_404_naming_it(api: Api) -> None:
    before = await agent_count(api)
    error = assert_error(await import_example(api.client, "no-such-example"), 404, "not_found")
    assert "no-such-example" in error["message"]
    assert "dad-jokes-agent" in error["message"]  # the known ones are listed
    assert await agent_count(api) == before


async def test_importing_an_example_twice_is_409(api: Api) -> None:
    first = await import_example(api.client, "data-analyst")
    assert first.status_code == 201, first.text
    before = await agent_count(api)
    again = await import_example(api.client, "data-analyst")
    assert_error(again, 409, "conflict", field="name")
    assert await agent_count(api) == before


async def test_examples_import_in_each_org(api: Api, other_org: OtherOrg) -> None:
    mine = await import_example(api.client, "research-assistant")
    theirs = await import_example(other_org.client, "research-assistant")
    assert (mine.status_code, theirs.status_code) == (201, 201), theirs.text
    assert mine.json()["id"] != theirs.json()["id"]
    assert mine.json()["harness_id"] != theirs.json()["harness_id"]  # each org's own `generic`


async def test_harness_examples_are_a_bare_list_of_real_shapes(api: Api) -> None:
    response = await api.client.get("/v1/harness-examples")
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, list)
    examples = [HarnessExample(**e) for e in body]  # the everruns-sdk model parses them
    assert [e.name for e in examples] == [e.name for e in HARNESS_EXAMPLES]
    assert len({e.name for e in examples}) == len(examples)
    known = await registered_capabilities(api)
    names = {e.name for e in examples}
    for example in examples:
        assert example.display_name and example.description
        for capability in example.capabilities:
            assert capability.ref in known, (example.name, capability.ref)
        assert example.parent_name is None or example.parent_name in names
    assert [e.name for e in examples if e.dev_only] == ["tool-playground"]


async def test_harness_examples_match_the_built_in_harnesses(api: Api) -> None:
    examples = {e["name"]: e for e in (await api.client.get("/v1/harness-examples")).json()}
    harnesses = (await api.client.get("/v1/harnesses")).json()["data"]
    built_in = {h["name"]: h for h in harnesses if h["is_built_in"]}
    assert set(built_in) == {spec["name"] for spec in BUILT_IN_HARNESSES}
    for name, harness in built_in.items():
        assert examples[name]["capabilities"] == harness["capabilities"]
        assert examples[name]["display_name"] == harness["display_name"]
        assert examples[name]["parent_name"] is None


async def test_a_harness_example_can_be_created_as_a_harness(api: Api) -> None:
    """An example's fields make a valid harness (its parent resolved by name)."""
    examples = (await api.client.get("/v1/harness-examples")).json()
    harnesses = (await api.client.get("/v1/harnesses")).json()["data"]
    ids_by_name = {h["name"]: h["id"] for h in harnesses}
    for example in examples:
        if example["name"] in ids_by_name:
            continue  # the built-in ones exist already
        created = await api.client.post(
            "/v1/harnesses",
            json={
                "name": example["name"],
                "display_name": example["display_name"],
                "description": example["description"],
                "tags": example["tags"],
                "capabilities": example["capabilities"],
                "parent_harness_id": ids_by_name[example["parent_name"]],
            },
        )
        assert created.status_code == 201, created.text


async def test_harness_examples_need_a_token(api: Api) -> None:
    response = await api.client.get(
        "/v1/harness-examples", headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
