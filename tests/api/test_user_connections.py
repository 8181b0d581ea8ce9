"""User connections over REST (``/v1/user/connections``): set (create or replace), list, remove,
their bad inputs, their injection into the caller's new sessions as secrets, and their isolation
between users and organizations. The key is in no response and no log line."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from everloop import ids
from everloop.crypto import SecretBox
from everloop.domain.timestamps import now
from everloop.services.auth import TOKEN_PREFIX, hash_token
from everloop.services.session_storage import SecretVault
from everloop.store.sql import Store
from everloop.store.tables import session_secrets, user_connections
from tests.api.conftest import OtherOrg, add_user_to_org, assert_error, create_session
from tests.conftest import Api

DAYTONA_KEY = "dtn-live-4c0a7e91b2f35d68-never-leak"
GITHUB_KEY = "ghp_9f2b7c1d0e4a6b3c5d8e7f1a2b3c4d5e"
URL = "/v1/user/connections"


async def set_key(client: httpx.AsyncClient, provider: str, key: str) -> httpx.Response:
    return await client.post(f"{URL}/{provider}", json={"api_key": key})


async def secret_names(client: httpx.AsyncClient, session_id: str) -> list[str]:
    listed = await client.get(f"/v1/sessions/{session_id}/storage/secrets")
    assert listed.status_code == 200, listed.text
    return [s["name"] for s in listed.json()["data"]]


async def secret_values(api: Api, session_id: str, org_id: str | None = None) -> dict[str, str]:
    """The session's secrets, opened with the server's key (what a turn's tools get)."""
    vault = SecretVault(SecretBox.from_settings(api.services.settings))
    async with api.services.db.read() as conn:
        return await vault.values(conn, org_id or api.org_id, session_id)


async def stored_connections(api: Api) -> list[tuple[Any, ...]]:
    async with api.services.db.read() as conn:
        return sorted(tuple(r) for r in await conn.execute(select(user_connections)))


async def test_set_list_replace_and_remove(api: Api) -> None:
    created = await set_key(api.client, "daytona", DAYTONA_KEY)
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"provider", "secret_name", "created_at", "updated_at"}
    assert body["provider"] == "daytona" and body["secret_name"] == "DAYTONA_API_KEY"
    replaced = await set_key(api.client, "daytona", "dtn-second-value-0001")
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["created_at"] == body["created_at"]
    assert replaced.json()["updated_at"] >= body["updated_at"]
    assert (await set_key(api.client, "github", GITHUB_KEY)).status_code == 201
    listed = await api.client.get(URL)
    assert listed.status_code == 200, listed.text
    assert [(c["provider"], c["secret_name"]) for c in listed.json()["data"]] == [
        ("daytona", "DAYTONA_API_KEY"),
        ("github", "GITHUB_TOKEN"),
    ]
    for response in (created, replaced, listed):
        assert DAYTONA_KEY not in response.text and GITHUB_KEY not in response.text
    # Sealed at rest.
    for row in await stored_connections(api):
        assert DAYTONA_KEY not in repr(row) and GITHUB_KEY not in repr(row)
    removed = await api.client.delete(f"{URL}/daytona")
    assert removed.status_code == 204 and removed.content == b""
    assert_error(await api.client.delete(f"{URL}/daytona"), 404, "not_found")
    assert [c["provider"] for c in (await api.client.get(URL)).json()["data"]] == ["github"]


@pytest.mark.parametrize(
    "provider", ["GitHub", "git_hub", "-x", "x-", "a--b", "1password", "a" * 65, "sp%20ace"]
)
async def test_a_bad_provider_name_is_422_naming_provider(api: Api, provider: str) -> None:
    assert_error(await set_key(api.client, provider, "k"), 422, field="provider")
    assert_error(await api.client.delete(f"{URL}/{provider}"), 422, field="provider")
    assert await stored_connections(api) == []


@pytest.mark.parametrize(
    "body",
    [{}, {"api_key": ""}, {"api_key": "   "}, {"api_key": 5}, {"api_key": "x" * (64 * 1024 + 1)}],
)
async def test_a_bad_api_key_is_422_naming_it(api: Api, body: dict[str, Any]) -> None:
    response = await api.client.post(f"{URL}/daytona", json=body)
    error = assert_error(response, 422, field="api_key")
    assert "xxxxxxxx" not in error["message"]
    assert await stored_connections(api) == []


async def test_a_new_session_gets_the_connections_as_secrets(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = await create_session(api)
    assert (await set_key(api.client, "daytona", DAYTONA_KEY)).status_code == 201
    assert (await set_key(api.client, "github", GITHUB_KEY)).status_code == 201
    assert (await set_key(api.client, "open-weather", "ow-key-123456")).status_code == 201
    created = await api.client.post("/v1/sessions", json={})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert await secret_names(api.client, sid) == [
        "DAYTONA_API_KEY",
        "GITHUB_TOKEN",
        "OPEN_WEATHER_API_KEY",
    ]
    assert await secret_values(api, sid) == {
        "DAYTONA_API_KEY": DAYTONA_KEY,
        "GITHUB_TOKEN": GITHUB_KEY,
        "OPEN_WEATHER_API_KEY": "ow-key-123456",
    }
    # A session created before the connections existed does not get them.
    assert await secret_names(api.client, before["id"]) == []
    responses = [created]
    for path in (
        f"/v1/sessions/{sid}",
        f"/v1/sessions/{sid}/storage/secrets",
        f"/v1/sessions/{sid}/storage/keys",
        f"/v1/sessions/{sid}/events",
        "/v1/sessions",
        URL,
    ):
        responses.append(await api.client.get(path))
    for response in responses:
        assert response.status_code == 200 or response.status_code == 201, response.text
        assert DAYTONA_KEY not in response.text and GITHUB_KEY not in response.text
    assert DAYTONA_KEY not in caplog.text and GITHUB_KEY not in caplog.text
    async with api.services.db.read() as conn:
        for sealed in await conn.scalars(select(session_secrets.c.value_encrypted)):
            assert DAYTONA_KEY not in sealed and GITHUB_KEY not in sealed


async def test_the_session_keeps_its_copy_and_an_explicit_secret_wins(api: Api) -> None:
    assert (await set_key(api.client, "daytona", DAYTONA_KEY)).status_code == 201
    sid = (await create_session(api))["id"]
    # The creator's own secret of the same name replaces the injected one.
    put = await api.client.put(
        f"/v1/sessions/{sid}/storage/secrets", json={"secrets": {"DAYTONA_API_KEY": "explicit-1"}}
    )
    assert put.status_code == 200, put.text
    assert await secret_values(api, sid) == {"DAYTONA_API_KEY": "explicit-1"}
    # Changing or removing the connection later leaves existing sessions alone...
    assert (await set_key(api.client, "daytona", "dtn-rotated-000001")).status_code == 200
    assert await secret_values(api, sid) == {"DAYTONA_API_KEY": "explicit-1"}
    rotated = (await create_session(api))["id"]
    assert await secret_values(api, rotated) == {"DAYTONA_API_KEY": "dtn-rotated-000001"}
    assert (await api.client.delete(f"{URL}/daytona")).status_code == 204
    assert await secret_values(api, rotated) == {"DAYTONA_API_KEY": "dtn-rotated-000001"}
    # ...and sessions created afterwards no longer get it.
    assert await secret_names(api.client, (await create_session(api))["id"]) == []


@contextmanager
def statements(api: Api) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = api.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


async def test_without_connections_a_create_costs_one_read_of_them(api: Api) -> None:
    await create_session(api)  # warm: the first create may read other things once
    with statements(api) as seen:
        await create_session(api)
    touching = [s for s in seen if "user_connections" in s]
    assert len(touching) == 1 and touching[0].lstrip().upper().startswith("SELECT"), touching
    assert "organization_id" in touching[0] and "user_id" in touching[0]
    assert not [s for s in seen if "session_secrets" in s]


async def second_user(api: Api, org_id: str) -> httpx.AsyncClient:
    """Another user, member of ``org_id``, with a client sending their token."""
    store = Store()
    user_id = uuid.uuid4().hex
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with api.services.db.write() as conn:
        await store.insert_user(conn, user_id, "second", now())
        await store.insert_token(
            conn,
            token_id=ids.new_id("pat"),
            user_id=user_id,
            name="second",
            token_hash=hash_token(token),
            hint=token[:12],
            ts=now(),
        )
    await add_user_to_org(api, org_id, user_id)
    return httpx.AsyncClient(
        transport=api.client._transport,
        base_url=str(api.client.base_url),
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_another_user_of_the_org_neither_sees_nor_gets_them(api: Api) -> None:
    assert (await set_key(api.client, "daytona", DAYTONA_KEY)).status_code == 201
    async with await second_user(api, api.org_id) as other:
        assert (await other.get(URL)).json() == {"data": []}
        assert_error(await other.delete(f"{URL}/daytona"), 404)
        theirs = (await other.post("/v1/sessions", json={})).json()["id"]
        assert await secret_names(other, theirs) == []
        # Their own connection of the same provider is theirs alone.
        assert (await set_key(other, "daytona", "their-own-key-0001")).status_code == 201
        theirs = (await other.post("/v1/sessions", json={})).json()["id"]
        assert await secret_values(api, theirs) == {"DAYTONA_API_KEY": "their-own-key-0001"}
    mine = (await create_session(api))["id"]
    assert await secret_values(api, mine) == {"DAYTONA_API_KEY": DAYTONA_KEY}


async def test_another_org_neither_sees_nor_touches_them(api: Api, other_org: OtherOrg) -> None:
    assert (await set_key(api.client, "daytona", DAYTONA_KEY)).status_code == 201
    mine_before = await stored_connections(api)
    client = other_org.client
    listed = await client.get(URL)
    assert listed.json() == {"data": []} and DAYTONA_KEY not in listed.text
    assert_error(await client.delete(f"{URL}/daytona"), 404)
    assert (await set_key(client, "github", "their-github-token")).status_code == 201
    sid = (await client.post("/v1/sessions", json={})).json()["id"]
    assert await secret_values(api, sid, other_org.organization_id) == {
        "GITHUB_TOKEN": "their-github-token"
    }
    mine = (await create_session(api))["id"]
    assert await secret_values(api, mine) == {"DAYTONA_API_KEY": DAYTONA_KEY}
    assert [r for r in await stored_connections(api) if r[0] == api.org_id] == mine_before


async def test_one_user_in_two_orgs_has_two_sets(api: Api, other_org: OtherOrg) -> None:
    # The other org's user becomes a member of this org too: X-Org-Id picks the set.
    await add_user_to_org(api, api.org_id, other_org.user_id)
    here = {"X-Org-Id": api.org_id}
    there = {"X-Org-Id": other_org.organization_id}
    client = other_org.client
    put = await client.post(f"{URL}/daytona", json={"api_key": DAYTONA_KEY}, headers=there)
    assert put.status_code == 201, put.text
    assert (await client.get(URL, headers=here)).json() == {"data": []}
    assert [c["provider"] for c in (await client.get(URL, headers=there)).json()["data"]] == [
        "daytona"
    ]
    sid = (await client.post("/v1/sessions", json={}, headers=here)).json()["id"]
    assert await secret_values(api, sid) == {}
    assert_error(await client.delete(f"{URL}/daytona", headers=here), 404)
