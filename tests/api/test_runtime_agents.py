"""The assembled RuntimeAgent through the API: the context report reflects every layer, the
previews show unsaved drafts, and configurations that cannot assemble are refused."""

from __future__ import annotations

from typing import Any

from everloop.domain.runtime_agent import locale_instruction
from tests.api.conftest import create_agent, create_session
from tests.conftest import Api

OBJ = {"type": "object", "properties": {}}


def client_tool(name: str) -> dict[str, Any]:
    return {"type": "client_side", "name": name, "description": f"{name} tool", "parameters": OBJ}


async def create_harness(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/harnesses", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def report(api: Api, session_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/sessions/{session_id}/context-report")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_the_context_report_reflects_every_layer(api: Api) -> None:
    root = await create_harness(
        api,
        "root-h",
        system_prompt="Root prompt.",
        capabilities=[{"ref": "current_time"}],
        network_access={"allowed": ["a.com", "b.com"], "blocked": ["x.com"]},
        initial_files=[{"path": "/workspace/shared.txt", "content": "root"}],
        parallel_tool_calls=False,
    )
    leaf = await create_harness(
        api,
        "leaf-h",
        system_prompt="Leaf prompt.",
        parent_harness_id=root["id"],
        initial_files=[{"path": "leaf.txt", "content": "leaf"}],
    )
    agent = await create_agent(
        api,
        "layered",
        system_prompt="Agent prompt.",
        harness_id=leaf["id"],
        capabilities=[{"ref": "test_math", "config": {"v": 1}}],
        tools=[client_tool("ask_user")],
        network_access={"allowed": ["b.com", "c.com"]},
        max_iterations=7,
    )
    session = await create_session(
        api,
        agent_id=agent["id"],
        system_prompt="Session prompt.",
        capabilities=[{"ref": "test_math", "config": {"v": 2}}, {"ref": "file_system"}],
        tools=[client_tool("pick")],
        hints={"rich_media": True},
        locale="uk-UA",
        initial_files=[{"path": "/shared.txt", "content": "session"}],
    )
    got = await report(api, session["id"])
    assert got["session_id"] == session["id"]
    assert got["system_prompt"] == "\n\n".join(
        [
            "Root prompt.",
            "Leaf prompt.",
            "Session prompt.\n\nAgent prompt.",
            *[p for p in [_addition(api, "file_system")] if p],
            locale_instruction("uk-UA"),
        ]
    )
    assert [(c["ref"], c["config"]) for c in got["capabilities"]] == [
        ("current_time", None),
        ("test_math", {"v": 2}),
        ("file_system", None),
    ]
    names = [t["name"] for t in got["tools"]]
    assert names[0] == "get_current_time"
    assert {"add", "ask_user", "pick", "read_file"} <= set(names)
    pick = next(t for t in got["tools"] if t["name"] == "pick")
    assert pick == {
        "name": "pick",
        "description": "pick tool",
        "parameters": OBJ,
        "source": "client_side",
        "capability_id": None,
    }
    assert got["limits"] == {"max_iterations": 7, "parallel_tool_calls": False}
    assert got["hints"] == {"rich_media": True}
    assert got["network_access"] == {"allowed": ["b.com"], "blocked": ["x.com"]}
    assert got["locale"] == "uk-UA"
    assert got["initial_files"] == ["/leaf.txt", "/shared.txt"]
    assert got["features"] == ["file_system"]
    assert got["model"]["name"] == "llmsim"
    assert got["estimated_prompt_tokens"] > len(got["system_prompt"]) // 4
    assert got["estimated_input_tokens"] == got["estimated_prompt_tokens"]
    assert got["agent_version_id"] == session["agent_version_id"]
    assert [s["key"] for s in got["sections"]] == [
        "system_prompt",
        "tools",
        "compacted_summary",
        "history",
    ]
    assert [(s["tokens"], s["items"]) for s in got["sections"][2:]] == [(0, 0), (0, 0)]
    # The file_system capability's prompt addition is a contribution of the system prompt.
    prompt_parts = [c for c in got["contributions"] if c["section_key"] == "system_prompt"]
    assert [c["source_id"] for c in prompt_parts] == ["file_system"]
    # The session's features are the same resolved set.
    fetched = (await api.client.get(f"/v1/sessions/{session['id']}")).json()
    assert fetched["features"] == ["file_system"]
    # The merged initial files were copied in: the session's content won.
    shared = await api.client.get(f"/v1/sessions/{session['id']}/fs/shared.txt")
    assert shared.status_code == 200, shared.text
    assert "session" in shared.text


def _addition(api: Api, capability_id: str) -> str | None:
    return api.services.capabilities.get(capability_id).system_prompt_addition


async def test_the_model_follows_the_layers(api: Api) -> None:
    models = (await api.client.get("/v1/models")).json()["data"]
    llmsim = next(p for p in (await api.client.get("/v1/providers")).json()["data"])
    extra = await api.client.post(
        f"/v1/providers/{llmsim['id']}/models", json={"model_id": "sim-extra"}
    )
    assert extra.status_code == 201, extra.text
    agent = await create_agent(api, "modelled", default_model_id=models[0]["id"])
    session = await create_session(api, agent_id=agent["id"])
    assert (await report(api, session["id"]))["model"]["id"] == models[0]["id"]
    session = await create_session(api, agent_id=agent["id"], model_id=extra.json()["id"])
    got = await report(api, session["id"])
    assert (got["model"]["id"], got["model"]["name"]) == (extra.json()["id"], "sim-extra")


async def test_a_session_repeating_its_agents_tool_gets_one_tool_the_sessions(api: Api) -> None:
    agent = await create_agent(api, "asker", tools=[client_tool("ask_user"), client_tool("pick")])
    mine = {**client_tool("ask_user"), "description": "the session's ask"}
    session = await create_session(api, agent_id=agent["id"], tools=[mine])
    got = (await report(api, session["id"]))["tools"]
    tools = [(t["name"], t["description"]) for t in got if t["source"] == "client_side"]
    assert tools == [("ask_user", "the session's ask"), ("pick", "pick tool")]
    # The session's own definition is what it reads back.
    fetched = (await api.client.get(f"/v1/sessions/{session['id']}")).json()
    assert [t["description"] for t in fetched["tools"]] == ["the session's ask"]


async def test_tool_name_clashes_are_refused_naming_the_tool(api: Api) -> None:
    agent = await create_agent(api, "asker", tools=[client_tool("ask_user")])
    before = (await api.client.get("/v1/sessions")).json()["data"]
    twice = await api.client.post(
        "/v1/sessions",
        json={"agent_id": agent["id"], "tools": [client_tool("pick"), client_tool("pick")]},
    )
    assert twice.status_code == 422, twice.text
    error = twice.json()["error"]
    assert error.pop("request_id") == twice.headers["x-request-id"]  # every error names it
    assert error == {
        "code": "validation_error",
        "message": "tool 'pick' is defined twice",
        "field": "tools",
    }
    assert (await api.client.get("/v1/sessions")).json()["data"] == before
    timed = await create_agent(api, "timed", capabilities=[{"ref": "current_time"}])
    shadowing = await api.client.post(
        "/v1/sessions", json={"agent_id": timed["id"], "tools": [client_tool("get_current_time")]}
    )
    assert shadowing.status_code == 422, shadowing.text
    assert shadowing.json()["error"]["code"] == "tool_name_clash"
    assert "get_current_time" in shadowing.json()["error"]["message"]
    shadow = await api.client.post(
        "/v1/agents",
        json={
            "name": "shadow",
            "system_prompt": "x",
            "capabilities": [{"ref": "current_time"}],
            "tools": [client_tool("get_current_time")],
        },
    )
    assert shadow.status_code == 422, shadow.text
    assert "get_current_time" in shadow.json()["error"]["message"]
    update = await api.client.patch(
        f"/v1/agents/{agent['id']}",
        json={"capabilities": [{"ref": "test_math"}], "tools": [client_tool("add")]},
    )
    assert update.status_code == 422, update.text
    assert "'add'" in update.json()["error"]["message"]


async def test_harness_cycles_and_deep_chains_are_refused(api: Api) -> None:
    a = await create_harness(api, "cyc-a")
    b = await create_harness(api, "cyc-b", parent_harness_id=a["id"])
    cycle = await api.client.patch(f"/v1/harnesses/{a['id']}", json={"parent_harness_id": b["id"]})
    assert cycle.status_code == 422, cycle.text
    assert "cycle" in cycle.json()["error"]["message"]
    parent = b["id"]
    for depth in range(3, 9):  # a, b, then six more: eight deep
        parent = (await create_harness(api, f"deep-{depth}", parent_harness_id=parent))["id"]
    too_deep = await api.client.post(
        "/v1/harnesses", json={"name": "deep-9", "parent_harness_id": parent}
    )
    assert too_deep.status_code == 422, too_deep.text
    assert too_deep.json()["error"]["field"] == "parent_harness_id"
    # Re-parenting the root under another harness would push the leaf past eight too.
    other = await create_harness(api, "other-root")
    deeper = await api.client.patch(
        f"/v1/harnesses/{a['id']}", json={"parent_harness_id": other["id"]}
    )
    assert deeper.status_code == 422, deeper.text


async def test_agent_preview_shows_an_unsaved_draft(api: Api) -> None:
    harness = await create_harness(api, "pre-h", system_prompt="Harness says hi.")
    response = await api.client.post(
        "/v1/agents/preview",
        json={
            "system_prompt": "Draft agent.",
            "harness_id": harness["id"],
            "capabilities": [{"ref": "current_time"}],
            "tools": [client_tool("ask_user")],
        },
    )
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["system_prompt"] == "Harness says hi.\n\nDraft agent."
    assert [t["name"] for t in got["tools"]] == ["get_current_time", "ask_user"]
    assert got["findings"] == []
    assert (await api.client.get("/v1/agents")).json()["total"] == 0  # nothing saved
    clash = await api.client.post(
        "/v1/agents/preview",
        json={"system_prompt": "x", "tools": [client_tool("a"), client_tool("a")]},
    )
    assert clash.status_code == 422, clash.text
    unknown = await api.client.post(
        "/v1/agents/preview", json={"system_prompt": "x", "capabilities": [{"ref": "nope"}]}
    )
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"]["code"] == "unknown_capability"


async def test_harness_preview_layers_on_its_parent(api: Api) -> None:
    parent = await create_harness(
        api, "pre-parent", system_prompt="Parent.", capabilities=[{"ref": "test_math"}]
    )
    response = await api.client.post(
        "/v1/harnesses/preview",
        json={
            "parent_harness_id": parent["id"],
            "system_prompt": "Child.",
            "capabilities": [{"ref": "current_time"}],
            "parallel_tool_calls": False,
        },
    )
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["system_prompt"] == "Parent.\n\nChild."
    assert [c["ref"] for c in got["capabilities"]] == ["test_math", "current_time"]
    assert got["limits"]["parallel_tool_calls"] is False
    missing = await api.client.post(
        "/v1/harnesses/preview", json={"parent_harness_id": "harness_" + "0" * 32}
    )
    assert missing.status_code == 404, missing.text


async def test_blueprints_are_listed_and_build_sessions(api: Api) -> None:
    listed = (await api.client.get("/v1/blueprints")).json()
    assert "research_pack" in [b["id"] for b in listed["data"]]
    one = (await api.client.get("/v1/blueprints/research_pack")).json()
    assert one["config_schema"]["required"] == ["topic"]
    assert (await api.client.get("/v1/blueprints/nope")).status_code == 404
    session = await create_session(
        api,
        blueprint_id="research_pack",
        blueprint_config={"topic": "tidal power"},
        system_prompt="Be brief.",
    )
    assert session["blueprint_config"] == {"topic": "tidal power"}
    got = await report(api, session["id"])
    assert got["blueprint_id"] == "research_pack"
    assert got["system_prompt"].startswith("Be brief.\n\nYou are a careful research assistant.")
    assert "Your topic: tidal power." in got["system_prompt"]
    assert "at most 5 points" in got["system_prompt"]  # the schema default
    assert [c["ref"] for c in got["capabilities"]] == ["current_time"]


async def test_blueprint_config_is_validated(api: Api) -> None:
    cases = [
        ({}, "blueprint_config.topic"),
        ({"topic": "x", "max_points": "many"}, "blueprint_config.max_points"),
        ({"topic": "x", "extra": 1}, "blueprint_config"),
    ]
    for config, field in cases:
        response = await api.client.post(
            "/v1/sessions", json={"blueprint_id": "research_pack", "blueprint_config": config}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field, config
    unknown = await api.client.post("/v1/sessions", json={"blueprint_id": "nope"})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_blueprint"
    orphan = await api.client.post("/v1/sessions", json={"blueprint_config": {"topic": "x"}})
    assert orphan.status_code == 422
