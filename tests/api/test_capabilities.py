"""GET /v1/capabilities[/{id}], and capability refs checked where agents, harnesses and sessions
name them."""

from __future__ import annotations

from tests.api.conftest import assert_error, create_agent, create_session
from tests.conftest import Api


async def test_list_is_paginated_and_shaped_like_capability_info(api: Api) -> None:
    response = await api.client.get("/v1/capabilities", params={"limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data", "total", "offset", "limit"}
    ids = [c["id"] for c in body["data"]]
    assert ids == sorted(ids) and body["total"] == len(ids)
    for wanted in ("current_time", "test_math", "test_weather", "web_fetch", "sql_database"):
        assert wanted in ids
    for capability in body["data"]:
        for key in (
            "id",
            "name",
            "description",
            "category",
            "features",
            "dependencies",
            "config_schema",
            "tool_definitions",
            "risk_level",
            "status",
        ):
            assert key in capability, (capability["id"], key)
        assert capability["risk_level"] in ("low", "medium", "high")
    page = (await api.client.get("/v1/capabilities", params={"offset": 1, "limit": 2})).json()
    assert [c["id"] for c in page["data"]] == ids[1:3] and page["offset"] == 1


async def test_search_and_get(api: Api) -> None:
    found = (await api.client.get("/v1/capabilities", params={"search": "WEATHER"})).json()
    assert [c["id"] for c in found["data"]] == ["test_weather"]
    weather = (await api.client.get("/v1/capabilities/test_weather")).json()
    (tool,) = weather["tool_definitions"]
    assert tool["name"] == "get_weather" and tool["parameters"]["required"] == ["city"]
    web = (await api.client.get("/v1/capabilities/web_fetch")).json()
    assert web["risk_level"] == "high"
    sql = (await api.client.get("/v1/capabilities/sql_database")).json()
    assert sql["features"] == ["sql_database"]
    assert {t["name"] for t in sql["tool_definitions"]} == {
        "create_database",
        "sql_query",
        "sql_execute",
        "list_tables",
    }


async def test_bad_requests(api: Api) -> None:
    assert_error(await api.client.get("/v1/capabilities/no_such_thing"), 404, "not_found")
    assert_error(await api.client.get("/v1/capabilities", params={"limit": 0}), 422)
    assert_error(await api.client.get("/v1/capabilities", params={"offset": -1}), 422)
    assert_error(await api.anonymous().get("/v1/capabilities"), 401)


async def test_unknown_capability_refs_are_refused_everywhere(api: Api) -> None:
    bad = [{"ref": "test_math"}, {"ref": "warp_drive"}]
    error = assert_error(
        await api.client.post("/v1/harnesses", json={"name": "h-bad", "capabilities": bad}),
        422,
        "unknown_capability",
        "capabilities.1.ref",
    )
    assert "warp_drive" in error["message"]
    assert_error(
        await api.client.post(
            "/v1/agents", json={"name": "a-bad", "system_prompt": "x", "capabilities": bad}
        ),
        422,
        "unknown_capability",
    )
    assert_error(
        await api.client.post("/v1/sessions", json={"capabilities": bad}), 422, "unknown_capability"
    )
    agent = await create_agent(api, "a-good", capabilities=[{"ref": "test_weather"}])
    assert_error(
        await api.client.patch(f"/v1/agents/{agent['id']}", json={"capabilities": bad}),
        422,
        "unknown_capability",
    )
    harness = await api.client.post("/v1/harnesses", json={"name": "h-good"})
    assert harness.status_code == 201, harness.text
    assert_error(
        await api.client.patch(f"/v1/harnesses/{harness.json()['id']}", json={"capabilities": bad}),
        422,
        "unknown_capability",
    )
    session = await create_session(api, capabilities=[{"ref": "sql_database"}])
    assert session["features"] == ["sql_database"]
