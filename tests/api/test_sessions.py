from __future__ import annotations

from typing import Any

import pytest

from everloop import ids
from everloop.services.auth import Caller
from tests.api.conftest import (
    add_user_to_org,
    assert_error,
    create_agent,
    create_identity,
    create_session,
    make_org,
    session_total,
)
from tests.conftest import Api

SEED_FIELDS = {
    "id",
    "organization_id",
    "harness_id",
    "agent_id",
    "agent_version_id",
    "agent_identity_id",
    "owner_principal_id",
    "resolved_owner_user_id",
    "owner",
    "effective_owner",
    "title",
    "locale",
    "preview",
    "output_preview",
    "tags",
    "model_id",
    "capabilities",
    "tools",
    "mcpServers",
    "system_prompt",
    "initial_files",
    "hints",
    "network_access",
    "max_iterations",
    "status",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "usage",
    "is_pinned",
    "active_schedule_count",
    "features",
    "parent_session_id",
    "subagent_name",
    "subagent_task",
    "subagent_status",
    "blueprint_id",
    "blueprint_config",
}


async def _harness_id(api: Api, name: str) -> str:
    return (await api.client.get(f"/v1/harnesses/{name}")).json()["id"]  # type: ignore[no-any-return]


async def _list(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.client.get("/v1/sessions", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _ids(api: Api, **params: Any) -> list[str]:
    return [s["id"] for s in (await _list(api, **params))["data"]]


# -- create -----------------------------------------------------------------------------------


async def test_create_with_nothing_uses_the_generic_harness(api: Api) -> None:
    session = await create_session(api)
    assert ids.is_valid("session", session["id"])
    assert session["harness_id"] == await _harness_id(api, "generic")
    assert session["agent_id"] is None
    assert session["organization_id"] == api.org_id
    assert session["status"] == "started"
    assert session["tags"] == []
    assert session["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_creation_tokens": 0,
    }
    assert session["is_pinned"] is False


async def test_every_seed_field_is_in_the_json(api: Api) -> None:
    session = await create_session(api, title="Fields", locale="uk-UA", tags=["t"])
    fetched = await api.client.get(f"/v1/sessions/{session['id']}")
    assert fetched.status_code == 200
    body = fetched.json()
    assert set(body) >= SEED_FIELDS, SEED_FIELDS - set(body)
    assert body["title"] == "Fields"
    assert body["locale"] == "uk-UA"
    assert body["owner"]["kind"] == "user"
    assert body["owner"]["id"] == body["owner_principal_id"]
    assert body["effective_owner"] == body["owner"]
    assert body["created_at"].endswith("Z")
    listed = (await _list(api))["data"][0]
    assert set(listed) >= SEED_FIELDS
    assert listed == body


async def test_create_with_an_agent_uses_its_harness(api: Api) -> None:
    agent = await create_agent(api, "on-base", harness_name="base")
    by_id = await create_session(api, agent_id=agent["id"])
    assert by_id["agent_id"] == agent["id"]
    assert by_id["harness_id"] == agent["harness_id"] == await _harness_id(api, "base")
    by_name = await create_session(api, agent_name="on-base")
    assert by_name["agent_id"] == agent["id"]
    assert by_name["harness_id"] == agent["harness_id"]


async def test_explicit_harness_overrides_the_agents(api: Api) -> None:
    agent = await create_agent(api, "on-base", harness_name="base")
    session = await create_session(api, agent_id=agent["id"], harness_name="generic")
    assert session["agent_id"] == agent["id"]
    assert session["harness_id"] == await _harness_id(api, "generic")


async def test_agent_id_and_agent_name_together_are_422(api: Api) -> None:
    agent = await create_agent(api, "both")
    response = await api.client.post(
        "/v1/sessions", json={"agent_id": agent["id"], "agent_name": "both"}
    )
    assert_error(response, 422, "validation_error", field="agent_id")
    assert await session_total(api) == 0


async def test_archived_agent_is_422(api: Api) -> None:
    agent = await create_agent(api, "retired")
    assert (await api.client.delete(f"/v1/agents/{agent['id']}")).status_code == 204
    for body in ({"agent_id": agent["id"]}, {"agent_name": "retired"}):
        response = await api.client.post("/v1/sessions", json=body)
        assert_error(response, 422, "validation_error", field="agent_id")
    assert await session_total(api) == 0


async def test_unknown_agent_or_harness_is_404_and_writes_nothing(api: Api) -> None:
    for body in (
        {"agent_id": ids.new_id("agent")},
        {"agent_name": "nobody"},
        {"harness_id": ids.new_id("harness")},
        {"harness_name": "nothing"},
    ):
        response = await api.client.post("/v1/sessions", json=body)
        assert_error(response, 404, "not_found")
    assert await session_total(api) == 0


async def test_mcp_servers_accepted_under_both_keys(api: Api) -> None:
    server = {"url": "http://127.0.0.1:1/mcp", "headers": {"X-Key": "v"}}
    wire = await create_session(api, mcpServers={"docs": server})
    alias = await create_session(api, mcp_servers={"docs": server})
    for session in (wire, alias):
        # Header values are write-only: the response names them (test_mcp_scoped_headers).
        assert session["mcpServers"] == {
            "docs": {"url": "http://127.0.0.1:1/mcp", "header_names": ["X-Key"]}
        }
        assert "mcp_servers" not in session


async def test_create_stores_the_config_fields(api: Api) -> None:
    tool = {"type": "client_side", "name": "lookup", "description": "d", "parameters": {}}
    # A model id must name a model of the org (422 otherwise): use the seeded llmsim model.
    next(m for m in (await api.client.get("/v1/models")).json()["data"])["id"]
    identity_id = (await create_identity(api, "configured"))["id"]
    session = await create_session(
        api,
        title="Configured",
        system_prompt="Be terse.",
        agent_identity_id=identity_id,
        tools=[tool],
        capabilities=[{"ref": "current_time"}],
        hints={"reasoning": "low"},
        network_access={"allowed": ["example.com"]},
        initial_files=[{"path": "/a.txt", "content": "hi"}],
        max_iterations=3,
        blueprint_id="research_pack",
        blueprint_config={"topic": "tides", "max_points": 2},
    )
    fetched = (await api.client.get(f"/v1/sessions/{session['id']}")).json()
    assert fetched == session
    assert fetched["system_prompt"] == "Be terse."
    assert fetched["agent_identity_id"] == identity_id
    assert [t["name"] for t in fetched["tools"]] == ["lookup"]
    assert fetched["hints"] == {"reasoning": "low"}
    assert fetched["network_access"] == {"allowed": ["example.com"], "blocked": []}
    assert fetched["initial_files"][0]["path"] == "/a.txt"
    assert fetched["max_iterations"] == 3
    assert fetched["blueprint_config"] == {"topic": "tides", "max_points": 2}


async def test_client_supplied_id(api: Api) -> None:
    session_id = ids.new_id("session")
    session = await create_session(api, id=session_id)
    assert session["id"] == session_id
    again = await api.client.post("/v1/sessions", json={"id": session_id})
    assert_error(again, 409, "conflict", field="id")
    malformed = await api.client.post("/v1/sessions", json={"id": "session_123"})
    assert_error(malformed, 422, "invalid_id", field="id")
    assert await session_total(api) == 1


async def test_failed_validation_writes_nothing(api: Api) -> None:
    await create_session(api, title="kept")
    tool = {"name": "dup"}
    for body in (
        {"title": "x" * 501},
        {"tools": [tool, tool]},
        {"model_id": "gpt-4"},
        {"locale": "not a locale!"},
        {"tags": ["t" * 101]},
    ):
        response = await api.client.post("/v1/sessions", json=body)
        assert_error(response, 422)
    listed = await _list(api)
    assert listed["total"] == 1
    assert listed["data"][0]["title"] == "kept"


# -- list -------------------------------------------------------------------------------------


async def test_list_newest_first_with_offset_and_limit(api: Api) -> None:
    made = [(await create_session(api, title=f"s{i}"))["id"] for i in range(7)]
    newest_first = list(reversed(made))
    body = await _list(api)
    assert body["total"] == 7
    assert (body["offset"], body["limit"]) == (0, 20)
    assert [s["id"] for s in body["data"]] == newest_first
    page = await _list(api, offset=2, limit=3)
    assert page["total"] == 7
    assert (page["offset"], page["limit"]) == (2, 3)
    assert [s["id"] for s in page["data"]] == newest_first[2:5]
    assert await _ids(api, offset=6, limit=3) == newest_first[6:]
    assert await _ids(api, offset=7) == []


async def test_order_holds_for_sessions_made_in_one_burst(api: Api) -> None:
    # Sessions made faster than the millisecond clock ticks must still list newest first.
    first = await create_session(api)
    caller = Caller(api.org_id, first["owner_principal_id"], first["owner"]["subject_id"])
    made = [first["id"]] + [(await api.services.sessions.create(caller, {})).id for _ in range(40)]
    assert await _ids(api, limit=100) == list(reversed(made))


async def test_filter_by_agent(api: Api) -> None:
    agent = await create_agent(api, "filtered")
    other = await create_agent(api, "other")
    mine = await create_session(api, agent_id=agent["id"])
    await create_session(api, agent_id=other["id"])
    await create_session(api)
    assert await _ids(api, agent_id=agent["id"]) == [mine["id"]]
    assert (await _list(api, agent_id=agent["id"]))["total"] == 1
    assert await _ids(api, agent_id=ids.new_id("agent")) == []
    malformed = await api.client.get("/v1/sessions", params={"agent_id": "agent_x"})
    assert_error(malformed, 422, "invalid_id", field="agent_id")


async def test_search_on_title(api: Api) -> None:
    plain = await create_session(api, title="Quarterly Report")
    percent = await create_session(api, title="100% done")
    underscore = await create_session(api, title="snake_case notes")
    await create_session(api, title="1000 done")
    await create_session(api, title="snakeXcase")
    await create_session(api)
    assert await _ids(api, search="quarterly") == [plain["id"]]
    assert await _ids(api, search="REPORT") == [plain["id"]]
    assert await _ids(api, search="0%") == [percent["id"]]
    assert await _ids(api, search="%") == [percent["id"]]
    assert await _ids(api, search="e_c") == [underscore["id"]]
    assert await _ids(api, search="_") == [underscore["id"]]
    assert await _ids(api, search="missing") == []
    assert (await _list(api, search="done"))["total"] == 2


async def test_search_follows_a_title_change(api: Api) -> None:
    session = await create_session(api, title="Before")
    await api.client.patch(f"/v1/sessions/{session['id']}", json={"title": "After Change"})
    assert await _ids(api, search="before") == []
    assert await _ids(api, search="after c") == [session["id"]]


async def test_filter_by_tags(api: Api) -> None:
    both = await create_session(api, tags=["red", "blue"])
    red = await create_session(api, tags=["red"])
    await create_session(api, tags=["green"])
    await create_session(api, tags=["reddish"])
    assert await _ids(api, tags="red") == [red["id"], both["id"]]
    assert await _ids(api, tags=["red", "blue"]) == [both["id"]]
    assert await _ids(api, tags="purple") == []
    assert (await _list(api, tags="red"))["total"] == 2


async def test_filter_by_status(api: Api) -> None:
    made = [(await create_session(api))["id"] for _ in range(2)]
    assert await _ids(api, status="started") == list(reversed(made))
    assert await _ids(api, status="idle") == []
    bad = await api.client.get("/v1/sessions", params={"status": "finished"})
    assert_error(bad, 422, "validation_error", field="status")


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"pinned": "maybe"}]
)
async def test_bad_list_parameters(api: Api, params: dict[str, Any]) -> None:
    response = await api.client.get("/v1/sessions", params=params)
    assert_error(response, 422, "validation_error", field=next(iter(params)))


# -- update, delete ---------------------------------------------------------------------------


async def test_patch_title_tags_locale_identity(api: Api) -> None:
    session = await create_session(api, title="Old", tags=["a"])
    identity_id = (await create_identity(api, "patched"))["id"]
    response = await api.client.patch(
        f"/v1/sessions/{session['id']}",
        json={"title": "New", "tags": ["b", "c"], "locale": "en", "agent_identity_id": identity_id},
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["title"] == "New"
    assert patched["tags"] == ["b", "c"]
    assert patched["locale"] == "en"
    assert patched["agent_identity_id"] == identity_id
    assert patched["created_at"] == session["created_at"]
    assert patched["harness_id"] == session["harness_id"]
    assert (await api.client.get(f"/v1/sessions/{session['id']}")).json() == patched
    cleared = await api.client.patch(f"/v1/sessions/{session['id']}", json={"title": None})
    assert cleared.status_code == 200
    assert cleared.json()["title"] is None
    assert cleared.json()["tags"] == ["b", "c"]


async def test_patch_rejects_bad_values(api: Api) -> None:
    session = await create_session(api, title="Stays", locale="en")
    url = f"/v1/sessions/{session['id']}"
    assert_error(await api.client.patch(url, json={"locale": "not a locale!"}), 422, field="locale")
    assert_error(await api.client.patch(url, json={"title": "t" * 501}), 422, field="title")
    assert_error(
        await api.client.patch(url, json={"agent_identity_id": "agent_x"}),
        422,
        "invalid_id",
        field="agent_identity_id",
    )
    after = (await api.client.get(url)).json()
    assert after["title"] == "Stays"
    assert after["locale"] == "en"


async def test_delete(api: Api) -> None:
    kept = await create_session(api)
    gone = await create_session(api)
    response = await api.client.delete(f"/v1/sessions/{gone['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await api.client.get(f"/v1/sessions/{gone['id']}"), 404, "not_found")
    assert await _ids(api) == [kept["id"]]
    assert (await _list(api))["total"] == 1
    assert_error(await api.client.delete(f"/v1/sessions/{gone['id']}"), 404, "not_found")
    assert_error(
        await api.client.patch(f"/v1/sessions/{gone['id']}", json={"title": "x"}), 404, "not_found"
    )
    assert_error(await api.client.put(f"/v1/sessions/{gone['id']}/pin"), 404, "not_found")


# -- pins and stats ---------------------------------------------------------------------------


async def test_pin_and_unpin(api: Api) -> None:
    pinned = await create_session(api, title="pinned")
    plain = await create_session(api, title="plain")
    url = f"/v1/sessions/{pinned['id']}/pin"
    response = await api.client.put(url)
    assert response.status_code == 204
    assert (await api.client.put(url)).status_code == 204  # idempotent
    assert (await api.client.get(f"/v1/sessions/{pinned['id']}")).json()["is_pinned"] is True
    assert (await api.client.get(f"/v1/sessions/{plain['id']}")).json()["is_pinned"] is False
    assert await _ids(api, pinned="true") == [pinned["id"]]
    assert await _ids(api, pinned="false") == [plain["id"]]
    listed = {s["id"]: s["is_pinned"] for s in (await _list(api))["data"]}
    assert listed == {pinned["id"]: True, plain["id"]: False}
    assert (await api.client.delete(url)).status_code == 204
    assert (await api.client.delete(url)).status_code == 204  # idempotent
    assert (await api.client.get(f"/v1/sessions/{pinned['id']}")).json()["is_pinned"] is False
    assert await _ids(api, pinned="true") == []


async def test_pins_belong_to_the_caller(api: Api) -> None:
    # A second user of the same org sees the session but not the admin's pin.
    org_id, user_id, _principal_id, token = await make_org(api, "Scratch")
    await add_user_to_org(api, api.org_id, user_id)
    session = await create_session(api)
    assert (await api.client.put(f"/v1/sessions/{session['id']}/pin")).status_code == 204
    headers = {"Authorization": f"Bearer {token}", "X-Org-Id": api.org_id}
    async with api.anonymous() as client:
        theirs = await client.get(f"/v1/sessions/{session['id']}", headers=headers)
        assert theirs.status_code == 200, theirs.text
        assert theirs.json()["is_pinned"] is False
        listed = await client.get("/v1/sessions", params={"pinned": "true"}, headers=headers)
        assert listed.json()["total"] == 0
        pin = await client.put(f"/v1/sessions/{session['id']}/pin", headers=headers)
        assert pin.status_code == 204
        unpin = await client.delete(f"/v1/sessions/{session['id']}/pin", headers=headers)
        assert unpin.status_code == 204
    assert (await api.client.get(f"/v1/sessions/{session['id']}")).json()["is_pinned"] is True
    assert org_id != api.org_id


async def test_stats(api: Api) -> None:
    empty = await api.client.get("/v1/sessions/stats")
    assert empty.status_code == 200
    assert empty.json() == {
        "total": 0,
        "started": 0,
        "active": 0,
        "idle": 0,
        "waiting_for_tool_results": 0,
        "paused": 0,
    }
    made = [await create_session(api) for _ in range(3)]
    assert (await api.client.delete(f"/v1/sessions/{made[0]['id']}")).status_code == 204
    stats = (await api.client.get("/v1/sessions/stats")).json()
    assert stats["total"] == 2
    assert stats["started"] == 2
    assert stats["active"] == stats["idle"] == stats["paused"] == 0
