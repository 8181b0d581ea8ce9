"""Agent identities: CRUD with their principals, bad input naming the field, 409s, another
org's identities, and sessions naming them (``agent_identity_id``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update

from everloop import ids
from everloop.store import agent_identities as identity_store
from everloop.store.tables import agent_identities, principals, sessions
from tests.api.conftest import (
    OtherOrg,
    assert_error,
    create_identity,
    create_session,
    session_total,
)
from tests.conftest import POSTGRES_URL, Api

RESPONSE_FIELDS = {
    "id",
    "name",
    "display_name",
    "description",
    "locale",
    "timezone",
    "principal_id",
    "owner_principal_id",
    "created_at",
    "updated_at",
}


async def principal_row(api: Api, principal_id: str) -> dict[str, Any] | None:
    async with api.services.db.read() as conn:
        row = (
            await conn.execute(select(principals).where(principals.c.id == principal_id))
        ).first()
    return dict(row._mapping) if row else None


async def row_counts(api: Api) -> tuple[int, int]:
    """(identities, principals) in the whole database."""
    async with api.services.db.read() as conn:
        identities = await conn.scalar(select(func.count()).select_from(agent_identities))
        people = await conn.scalar(select(func.count()).select_from(principals))
    return int(identities or 0), int(people or 0)


async def caller_principal(api: Api) -> str:
    session = await create_session(api)
    return str(session["owner_principal_id"])


# -- CRUD -------------------------------------------------------------------------------------


async def test_crud_with_its_own_principal(api: Api) -> None:
    owner = await caller_principal(api)
    created = await create_identity(
        api,
        "night-shift",
        display_name="Night shift",
        description="Runs the nightly reports.",
        locale="uk-UA",
        timezone="Europe/Kyiv",
    )
    assert set(created) == RESPONSE_FIELDS
    assert ids.is_valid("identity", created["id"])
    assert created["owner_principal_id"] == owner
    assert (created["name"], created["display_name"]) == ("night-shift", "Night shift")
    assert (created["locale"], created["timezone"]) == ("uk-UA", "Europe/Kyiv")
    assert created["created_at"] == created["updated_at"]
    # Its principal: kind agent_identity, under the principal of the user who created it.
    principal = await principal_row(api, created["principal_id"])
    assert principal is not None
    assert principal["kind"] == "agent_identity"
    assert principal["parent_principal_id"] == owner
    assert principal["organization_id"] == api.org_id
    assert principal["name"] == "night-shift"

    url = f"/v1/agent-identities/{created['id']}"
    assert (await api.client.get(url)).json() == created
    listed = (await api.client.get("/v1/agent-identities")).json()
    assert listed == {"data": [created], "total": 1}
    second = await create_identity(api, "day-shift")
    assert [i["id"] for i in (await api.client.get("/v1/agent-identities")).json()["data"]] == [
        created["id"],
        second["id"],
    ]
    searched = (await api.client.get("/v1/agent-identities", params={"search": "NIGHT"})).json()
    assert [i["id"] for i in searched["data"]] == [created["id"]]

    patched = await api.client.patch(
        url, json={"name": "late-shift", "display_name": None, "locale": "en", "timezone": "UTC"}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["display_name"], body["locale"]) == ("late-shift", None, "en")
    assert body["timezone"] == "UTC"
    assert body["description"] == "Runs the nightly reports."  # left out: kept
    assert body["created_at"] == created["created_at"]
    assert body["principal_id"] == created["principal_id"]
    assert (await api.client.get(url)).json() == body
    assert (await principal_row(api, created["principal_id"]) or {})["name"] == "late-shift"
    # An empty PATCH changes nothing.
    assert (await api.client.patch(url, json={})).json() == body

    assert (await api.client.delete(url)).status_code == 204
    assert_error(await api.client.get(url), 404, "not_found")
    assert_error(await api.client.delete(url), 404, "not_found")
    assert await principal_row(api, created["principal_id"]) is None
    assert (await api.client.get("/v1/agent-identities")).json()["total"] == 1


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "Night Shift"}, "name"),
        ({"name": "night_shift"}, "name"),
        ({"name": "-night"}, "name"),
        ({"name": "n" * 65}, "name"),
        ({"name": "ok", "display_name": "d" * 201}, "display_name"),
        ({"name": "ok", "locale": "not a locale!"}, "locale"),
        ({"name": "ok", "locale": "english-please"}, "locale"),
        ({"name": "ok", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"name": "ok", "timezone": "../etc/passwd"}, "timezone"),
        ({"name": "ok", "timezone": ""}, "timezone"),
        ({"name": "ok", "timezone": "Z" * 65}, "timezone"),
    ],
)
async def test_create_rejects_bad_values_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    before = await row_counts(api)
    assert_error(await api.client.post("/v1/agent-identities", json=body), 422, field=field)
    assert await row_counts(api) == before


async def test_patch_rejects_bad_values_and_keeps_the_identity(api: Api) -> None:
    created = await create_identity(api, "steady", locale="en", timezone="UTC")
    url = f"/v1/agent-identities/{created['id']}"
    for body, field in (
        ({"name": None}, "name"),
        ({"name": "Not A Slug"}, "name"),
        ({"locale": "!!"}, "locale"),
        ({"timezone": "Nowhere/Special"}, "timezone"),
        ({"display_name": "d" * 201}, "display_name"),
    ):
        assert_error(await api.client.patch(url, json=body), 422, field=field)
    assert (await api.client.get(url)).json() == created


async def test_malformed_ids_are_422_naming_the_path_parameter(api: Api) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = await api.client.request(
            method, "/v1/agent-identities/agent_1", json={} if method == "PATCH" else None
        )
        assert_error(response, 422, "invalid_id", field="identity_id")


async def test_duplicate_names_are_409(api: Api) -> None:
    first = await create_identity(api, "twin")
    other = await create_identity(api, "other")
    before = await row_counts(api)
    assert_error(
        await api.client.post("/v1/agent-identities", json={"name": "twin"}), 409, field="name"
    )
    assert await row_counts(api) == before
    renamed = await api.client.patch(
        f"/v1/agent-identities/{other['id']}", json={"name": "twin", "display_name": "x"}
    )
    assert_error(renamed, 409, "conflict", field="name")
    assert (await api.client.get(f"/v1/agent-identities/{other['id']}")).json() == other
    # Its own name again is no clash.
    same = await api.client.patch(f"/v1/agent-identities/{first['id']}", json={"name": "twin"})
    assert same.status_code == 200, same.text


# -- deleting an identity sessions name ---------------------------------------------------------


async def test_delete_is_409_while_live_sessions_name_it(api: Api) -> None:
    identity = await create_identity(api, "busy")
    url = f"/v1/agent-identities/{identity['id']}"
    first = await create_session(api, agent_identity_id=identity["id"])
    second = await create_session(api, agent_identity_id=identity["id"])
    error = assert_error(await api.client.delete(url), 409, "agent_identity_in_use")
    assert "2 live sessions" in error["message"]
    assert "agent_identity_id" in error["message"]
    assert (await api.client.get(url)).status_code == 200
    assert await principal_row(api, identity["principal_id"]) is not None

    # A deleted session no longer counts; one moved to no identity neither.
    assert (await api.client.delete(f"/v1/sessions/{first['id']}")).status_code == 204
    error = assert_error(await api.client.delete(url), 409, "agent_identity_in_use")
    assert "1 live session names it" in error["message"]
    moved = await api.client.patch(f"/v1/sessions/{second['id']}", json={"agent_identity_id": None})
    assert moved.status_code == 200 and moved.json()["agent_identity_id"] is None
    assert (await api.client.delete(url)).status_code == 204
    assert await principal_row(api, identity["principal_id"]) is None


# -- sessions naming an identity ----------------------------------------------------------------


async def test_a_session_names_an_identity_of_its_org(api: Api, other_org: OtherOrg) -> None:
    mine = await create_identity(api, "mine")
    session = await create_session(api, agent_identity_id=mine["id"])
    assert session["agent_identity_id"] == mine["id"]
    fetched = (await api.client.get(f"/v1/sessions/{session['id']}")).json()
    assert fetched["agent_identity_id"] == mine["id"]

    response = await other_org.client.post("/v1/agent-identities", json={"name": "theirs"})
    assert response.status_code == 201, response.text
    theirs = response.json()
    unknown = ids.new_id("identity")
    total = await session_total(api)
    for identity_id in (theirs["id"], unknown):
        response = await api.client.post("/v1/sessions", json={"agent_identity_id": identity_id})
        error = assert_error(response, 422, "unknown_agent_identity", field="agent_identity_id")
        assert identity_id in error["message"]
        patched = await api.client.patch(
            f"/v1/sessions/{session['id']}", json={"agent_identity_id": identity_id}
        )
        assert_error(patched, 422, "unknown_agent_identity", field="agent_identity_id")
    assert await session_total(api) == total
    assert (await api.client.get(f"/v1/sessions/{session['id']}")).json() == fetched
    # The other org may use its own.
    response = await other_org.client.post("/v1/sessions", json={"agent_identity_id": theirs["id"]})
    assert response.status_code == 201, response.text


async def test_another_orgs_identity_is_404(api: Api, other_org: OtherOrg) -> None:
    mine = await create_identity(api, "private")
    url = f"/v1/agent-identities/{mine['id']}"
    assert_error(await other_org.client.get(url), 404, "not_found")
    assert_error(await other_org.client.patch(url, json={"display_name": "x"}), 404, "not_found")
    assert_error(await other_org.client.delete(url), 404, "not_found")
    assert (await other_org.client.get("/v1/agent-identities")).json() == {"data": [], "total": 0}
    assert (await api.client.get(url)).json() == mine
    # Names are unique per org: the other org may use the same one.
    response = await other_org.client.post("/v1/agent-identities", json={"name": "private"})
    assert response.status_code == 201, response.text


async def test_get_identity_is_scoped_to_the_organization(api: Api, other_org: OtherOrg) -> None:
    mine = await create_identity(api, "scoped", timezone="Asia/Tokyo")
    async with api.services.db.read() as conn:
        found = await identity_store.get_identity(conn, api.org_id, mine["id"])
        foreign = await identity_store.get_identity(conn, other_org.organization_id, mine["id"])
    assert found is not None and foreign is None
    assert (found.id, found.organization_id, found.timezone) == (
        mine["id"],
        api.org_id,
        "Asia/Tokyo",
    )


# -- PostgreSQL: a session naming an identity and its delete do not both win ---------------------

postgres_only = pytest.mark.skipif(
    not POSTGRES_URL, reason="SQLite serializes writers: there is no interleaving to test"
)


async def wait_until_blocked(api: Api, request: asyncio.Task[httpx.Response]) -> None:
    """Until another backend waits on a row lock; fails if ``request`` ends first."""
    deadline = time.monotonic() + 20
    while True:
        assert not request.done(), f"the request did not wait: {request.result().text}"
        async with api.services.db.read() as conn:
            waiting = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
        if waiting:
            return
        assert time.monotonic() < deadline, "no transaction waited for the lock"
        await asyncio.sleep(0.02)


@postgres_only
async def test_a_delete_waits_for_a_session_naming_the_identity(api: Api) -> None:
    identity = await create_identity(api, "contended")
    session = await create_session(api)
    async with api.services.db.write() as conn:
        # What a session create or PATCH does: hold the identity, then name it.
        assert await identity_store.hold(conn, api.org_id, identity["id"])
        await conn.execute(
            update(sessions)
            .where(sessions.c.id == session["id"])
            .values(agent_identity_id=identity["id"])
        )
        deleting = asyncio.create_task(api.client.delete(f"/v1/agent-identities/{identity['id']}"))
        await wait_until_blocked(api, deleting)
    assert_error(await deleting, 409, "agent_identity_in_use")
    assert (await api.client.get(f"/v1/agent-identities/{identity['id']}")).status_code == 200


@postgres_only
async def test_a_session_create_waits_for_a_delete_of_its_identity(api: Api) -> None:
    identity = await create_identity(api, "leaving")
    total = await session_total(api)
    async with api.services.db.write() as conn:
        # What the delete does: lock the identity, (count,) delete it.
        assert await identity_store.lock(conn, api.org_id, identity["id"]) is not None
        creating = asyncio.create_task(
            api.client.post("/v1/sessions", json={"agent_identity_id": identity["id"]})
        )
        await wait_until_blocked(api, creating)
        assert await identity_store.delete_identity(conn, api.org_id, identity["id"])
    assert_error(await creating, 422, "unknown_agent_identity", field="agent_identity_id")
    assert await session_total(api) == total
