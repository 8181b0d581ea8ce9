from __future__ import annotations

import pytest

from everloop import ids
from tests.api.conftest import OtherOrg, add_user_to_org, assert_error, create_agent, create_session
from tests.conftest import Api

ROUTES = [
    ("GET", "/v1/harnesses"),
    ("POST", "/v1/harnesses"),
    ("GET", "/v1/harnesses/generic"),
    ("PATCH", "/v1/harnesses/generic"),
    ("DELETE", "/v1/harnesses/generic"),
    ("GET", "/v1/agents"),
    ("POST", "/v1/agents"),
    ("GET", f"/v1/agents/{ids.new_id('agent')}"),
    ("PUT", f"/v1/agents/{ids.new_id('agent')}"),
    ("PATCH", f"/v1/agents/{ids.new_id('agent')}"),
    ("DELETE", f"/v1/agents/{ids.new_id('agent')}"),
    ("GET", "/v1/sessions"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions/stats"),
    ("GET", f"/v1/sessions/{ids.new_id('session')}"),
    ("PATCH", f"/v1/sessions/{ids.new_id('session')}"),
    ("DELETE", f"/v1/sessions/{ids.new_id('session')}"),
    ("PUT", f"/v1/sessions/{ids.new_id('session')}/pin"),
    ("DELETE", f"/v1/sessions/{ids.new_id('session')}/pin"),
]


def _body(method: str) -> dict[str, str] | None:
    return {"name": "x", "system_prompt": "p"} if method in ("POST", "PUT", "PATCH") else None


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_no_token_is_401(api: Api, method: str, path: str) -> None:
    async with api.anonymous() as client:
        response = await client.request(method, path, json=_body(method))
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_wrong_token_is_401(api: Api, method: str, path: str) -> None:
    async with api.anonymous() as client:
        response = await client.request(
            method, path, json=_body(method), headers={"Authorization": "Bearer evr_pat_wrong"}
        )
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "evr_pat_", "token"]
)
async def test_malformed_authorization_is_401(api: Api, authorization: str) -> None:
    async with api.anonymous() as client:
        response = await client.get("/v1/sessions", headers={"Authorization": authorization})
    assert_error(response, 401, "unauthorized")


async def test_a_failed_auth_writes_nothing(api: Api) -> None:
    async with api.anonymous() as client:
        response = await client.post("/v1/sessions", json={"title": "sneaky"})
    assert_error(response, 401)
    assert (await api.client.get("/v1/sessions")).json()["total"] == 0


@pytest.mark.parametrize("scheme", ["", "Bearer ", "bearer ", "BEARER "])
async def test_token_with_or_without_bearer(api: Api, scheme: str) -> None:
    async with api.anonymous() as client:
        response = await client.get("/v1/sessions", headers={"Authorization": scheme + api.token})
    assert response.status_code == 200, response.text


async def test_other_orgs_objects_are_404(api: Api, other_org: OtherOrg) -> None:
    session = await create_session(api, title="secret")
    agent = await create_agent(api, "private")
    harness = (await api.client.post("/v1/harnesses", json={"name": "inner"})).json()
    generic = (await api.client.get("/v1/harnesses/generic")).json()
    theirs = other_org.client
    for path in (
        f"/v1/sessions/{session['id']}",
        f"/v1/agents/{agent['id']}",
        f"/v1/harnesses/{harness['id']}",
        f"/v1/harnesses/{generic['id']}",
    ):
        assert_error(await theirs.get(path), 404, "not_found")
        assert_error(await theirs.delete(path), 404, "not_found")
    for path, body in (
        (f"/v1/sessions/{session['id']}", {"title": "mine"}),
        (f"/v1/agents/{agent['id']}", {"description": "mine"}),
        (f"/v1/harnesses/{harness['id']}", {"description": "mine"}),
    ):
        assert_error(await theirs.patch(path, json=body), 404, "not_found")
    assert_error(await theirs.put(f"/v1/sessions/{session['id']}/pin"), 404, "not_found")
    assert_error(await theirs.delete(f"/v1/sessions/{session['id']}/pin"), 404, "not_found")
    # Names are per org: theirs resolve to their own objects or to nothing.
    assert_error(await theirs.get("/v1/harnesses/inner"), 404, "not_found")
    mine_generic = (await theirs.get("/v1/harnesses/generic")).json()
    assert mine_generic["id"] != generic["id"]
    assert mine_generic["organization_id"] == other_org.organization_id
    # Another org's agent or harness cannot back a session.
    for body in (
        {"agent_id": agent["id"]},
        {"agent_name": "private"},
        {"harness_id": harness["id"]},
    ):
        assert_error(await theirs.post("/v1/sessions", json=body), 404, "not_found")
    # Lists and stats show none of it.
    assert (await theirs.get("/v1/sessions")).json()["total"] == 0
    assert (await theirs.get("/v1/agents")).json()["total"] == 0
    assert (await theirs.get("/v1/sessions/stats")).json()["total"] == 0
    listed = (await theirs.get("/v1/harnesses")).json()["data"]
    assert sorted(h["name"] for h in listed) == ["base", "generic"]
    # And nothing of the first org changed.
    assert (await api.client.get(f"/v1/sessions/{session['id']}")).json() == session
    assert (await api.client.get(f"/v1/agents/{agent['id']}")).json() == agent


async def test_names_are_unique_per_org_only(api: Api, other_org: OtherOrg) -> None:
    await create_agent(api, "shared-name")
    theirs = await other_org.client.post(
        "/v1/agents", json={"name": "shared-name", "system_prompt": "p"}
    )
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["organization_id"] == other_org.organization_id
    harness = await other_org.client.post("/v1/harnesses", json={"name": "h"})
    assert harness.status_code == 201
    assert (await api.client.post("/v1/harnesses", json={"name": "h"})).status_code == 201


async def test_put_of_another_orgs_agent_id_does_not_touch_it(
    api: Api, other_org: OtherOrg
) -> None:
    agent = await create_agent(api, "owned")
    response = await other_org.client.put(
        f"/v1/agents/{agent['id']}", json={"name": "hijack", "system_prompt": "p"}
    )
    assert_error(response, 404, "not_found")
    assert (await api.client.get(f"/v1/agents/{agent['id']}")).json() == agent
    assert (await other_org.client.get("/v1/agents")).json()["total"] == 0


async def test_x_org_id_of_a_foreign_org_is_404(api: Api, other_org: OtherOrg) -> None:
    response = await api.client.get("/v1/sessions", headers={"X-Org-Id": other_org.organization_id})
    assert_error(response, 404, "not_found")
    unknown = await api.client.get("/v1/sessions", headers={"X-Org-Id": ids.new_id("org")})
    assert_error(unknown, 404, "not_found")
    own = await api.client.get("/v1/sessions", headers={"X-Org-Id": api.org_id})
    assert own.status_code == 200


@pytest.mark.parametrize("org_id", ["org_1", "nope", "session_" + "0" * 32, "ORG_" + "0" * 32])
async def test_malformed_x_org_id_is_422(api: Api, org_id: str) -> None:
    response = await api.client.get("/v1/sessions", headers={"X-Org-Id": org_id})
    assert_error(response, 422, "invalid_id", field="X-Org-Id")


async def test_x_org_id_picks_among_several_orgs(api: Api, other_org: OtherOrg) -> None:
    await add_user_to_org(api, api.org_id, other_org.user_id)
    mine = await create_session(api, title="in the default org")
    # With two memberships the org must be named.
    ambiguous = await other_org.client.get("/v1/sessions")
    assert_error(ambiguous, 422, field="X-Org-Id")
    default = await other_org.client.get(
        f"/v1/sessions/{mine['id']}", headers={"X-Org-Id": api.org_id}
    )
    assert default.status_code == 200
    own = await other_org.client.get(
        f"/v1/sessions/{mine['id']}", headers={"X-Org-Id": other_org.organization_id}
    )
    assert_error(own, 404, "not_found")
    created = await other_org.client.post(
        "/v1/sessions", json={}, headers={"X-Org-Id": other_org.organization_id}
    )
    assert created.status_code == 201
    assert created.json()["organization_id"] == other_org.organization_id
    assert created.json()["owner_principal_id"] == other_org.principal_id
