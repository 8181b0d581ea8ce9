"""The Agent Execution API's credentials and isolation (issue 18): which credential reaches which
channel and which session, against the real app and database (SQLite, or PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from everloop.config import Settings
from everloop.store.tables import agent_keys, principals
from tests.api.conftest import OtherOrg, assert_error, create_agent
from tests.conftest import Api


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Runtime tokens live one second here, so that a test sees one expire (by polling).
    return settings.model_copy(update={"runtime_token_ttl_seconds": 1})


def _client(api: Api, credential: str, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=api.client._transport,
        base_url=str(api.client.base_url),
        headers={"Authorization": f"Bearer {credential}", **headers},
    )


async def _agent(api: Api, name: str, **channel: Any) -> tuple[str, str]:
    """An agent and a channel of it: (agent id, channel id)."""
    agent = await create_agent(api, name)
    made = await api.client.post(f"/v1/agents/{agent['id']}/channels", json=channel)
    assert made.status_code == 201, made.text
    assert made.json()["path"] == f"/api/v1/channels/{made.json()['id']}"
    return agent["id"], made.json()["id"]


async def _key(api: Api, agent_id: str, *permissions: str) -> dict[str, Any]:
    made = await api.client.post(
        f"/v1/agents/{agent_id}/keys", json={"name": "app", "permissions": list(permissions)}
    )
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


@pytest.fixture
async def world(api: Api) -> AsyncIterator[dict[str, Any]]:
    agent_a, channel_a = await _agent(api, "agent-a")
    agent_b, channel_b = await _agent(api, "agent-b")
    key_a = await _key(api, agent_a, "end_user")
    key_b = await _key(api, agent_b)
    yield {
        "agent_a": agent_a,
        "channel_a": channel_a,
        "agent_b": agent_b,
        "channel_b": channel_b,
        "key_a": key_a,
        "key_b": key_b,
    }


async def test_a_key_reaches_its_agents_channels_only(api: Api, world: dict[str, Any]) -> None:
    async with _client(api, world["key_a"]["key"]) as key_a:
        assert (await key_a.get(f"/v1/channels/{world['channel_a']}")).status_code == 200
        mine = await key_a.post(f"/v1/channels/{world['channel_a']}/sessions", json={})
        assert mine.status_code == 201, mine.text
        # Agent B's channel, and a session of agent B: as if they did not exist.
        assert_error(await key_a.get(f"/v1/channels/{world['channel_b']}"), 404, "not_found")
        theirs = await key_a.post(f"/v1/channels/{world['channel_b']}/sessions", json={})
        assert_error(theirs, 404, "not_found")
        # The management API: known, but not reachable with an agent key.
        for method, path in (("GET", "/v1/sessions"), ("GET", f"/v1/agents/{world['agent_a']}")):
            refused = await key_a.request(method, path)
            assert_error(refused, 403, "forbidden")
        # A session made through the management API is not the key's.
        managed = await api.client.post("/v1/sessions", json={"agent_id": world["agent_a"]})
        session = managed.json()["id"]
        hidden = await key_a.get(f"/v1/channels/{world['channel_a']}/sessions/{session}")
        assert_error(hidden, 404, "not_found")
        for verb, tail in (("POST", "messages"), ("POST", "cancel"), ("GET", "events")):
            body = {"message": {"content": [{"type": "text", "text": "hi"}]}}
            answer = await key_a.request(
                verb,
                f"/v1/channels/{world['channel_a']}/sessions/{session}/{tail}",
                json=body if tail == "messages" else None,
            )
            assert_error(answer, 404, "not_found")


async def test_end_users_never_see_each_others_sessions(api: Api, world: dict[str, Any]) -> None:
    base = f"/v1/channels/{world['channel_a']}"
    key = world["key_a"]["key"]
    async with (
        _client(api, key, **{"End-User": "x"}) as x,
        _client(api, key, **{"End-User": "y"}) as y,
        _client(api, key) as app,
    ):
        made = await x.post(f"{base}/sessions", json={"title": "x's"})
        assert made.status_code == 201, made.text
        xs = made.json()
        assert xs["end_user"] == "x" and xs["owner"]["kind"] == "end_user"
        assert_error(await y.get(f"{base}/sessions/{xs['id']}"), 404, "not_found")
        assert_error(await app.get(f"{base}/sessions/{xs['id']}"), 404, "not_found")
        assert (await y.get(f"{base}/sessions")).json()["data"] == []
        assert [s["id"] for s in (await x.get(f"{base}/sessions")).json()["data"]] == [xs["id"]]
        # The same end user of another agent is someone else.
        key_b = await _key(api, world["agent_b"], "end_user")
        async with _client(api, key_b["key"], **{"End-User": "x"}) as x_of_b:
            other = f"/v1/channels/{world['channel_b']}"
            assert (await x_of_b.get(f"{other}/sessions")).json()["data"] == []
        # The organization still sees every session, as any session of its agents.
        listed = await api.client.get("/v1/sessions", params={"agent_id": world["agent_a"]})
        assert xs["id"] in [s["id"] for s in listed.json()["data"]]


async def test_end_user_needs_the_permission(api: Api, world: dict[str, Any]) -> None:
    async with _client(api, world["key_b"]["key"], **{"End-User": "x"}) as no_permission:
        refused = await no_permission.post(f"/v1/channels/{world['channel_b']}/sessions", json={})
        assert_error(refused, 403, "forbidden")
        minted = await no_permission.post(f"/v1/channels/{world['channel_b']}/runtime-auth")
        assert_error(minted, 403, "forbidden")
    async with _client(api, world["key_a"]["key"]) as no_end_user:
        minted = await no_end_user.post(f"/v1/channels/{world['channel_a']}/runtime-auth")
        assert_error(minted, 422, field="End-User")


async def test_a_revoked_key_is_refused_at_once(api: Api, world: dict[str, Any]) -> None:
    key = world["key_a"]
    base = f"/v1/channels/{world['channel_a']}"
    async with (
        _client(api, key["key"]) as app,
        _client(api, key["key"], **{"End-User": "x"}) as x,
    ):
        assert (await app.get(base)).status_code == 200  # known, and kept for a moment
        runtime = (await x.post(f"{base}/runtime-auth")).json()["access_token"]
        revoked = await api.client.delete(f"/v1/agents/{world['agent_a']}/keys/{key['id']}")
        assert revoked.status_code == 204
        assert_error(await app.get(base), 401, "unauthorized")
        assert_error(await app.get("/v1/sessions"), 401, "unauthorized")
        async with _client(api, runtime) as browser:
            assert_error(await browser.get(f"{base}/sessions"), 401, "unauthorized")
    listed = (await api.client.get(f"/v1/agents/{world['agent_a']}/keys")).json()
    assert [k["revoked_at"] is not None for k in listed] == [True]
    again = await api.client.delete(f"/v1/agents/{world['agent_a']}/keys/{key['id']}")
    assert_error(again, 404, "not_found")


async def test_a_runtime_token_is_scoped_and_expires(api: Api, world: dict[str, Any]) -> None:
    base = f"/v1/channels/{world['channel_a']}"
    async with _client(api, world["key_a"]["key"], **{"End-User": "x"}) as x:
        minted = await x.post(f"{base}/runtime-auth")
        assert minted.status_code == 200, minted.text
        token = minted.json()
        assert token["token_type"] == "Bearer" and token["expires_in"] == 1
        mine = (await x.post(f"{base}/sessions", json={})).json()["id"]
        theirs_made = await api.client.post(f"/v1/agents/{world['agent_a']}/channels", json={})
        second_channel = theirs_made.json()["id"]
    async with _client(api, token["access_token"]) as browser:
        got = await browser.get(f"{base}/sessions/{mine}")
        assert got.status_code == 200 and got.json()["owner"]["id"] == token["virtual_user_id"]
        # Another channel of the same agent, another end user, the management API.
        assert_error(await browser.get(f"/v1/channels/{second_channel}"), 404, "not_found")
        as_y = await browser.get(f"{base}/sessions", headers={"End-User": "y"})
        assert_error(as_y, 403, "forbidden")
        assert_error(await browser.get("/v1/sessions"), 403, "forbidden")
        assert_error(await browser.post(f"{base}/runtime-auth"), 403, "forbidden")
        # Past its lifetime (one second here) it is refused: polled, within a deadline.
        deadline = time.monotonic() + 15
        while (status := (await browser.get(base)).status_code) == 200:
            assert time.monotonic() < deadline, "the runtime token never expired"
            await asyncio.sleep(0.1)
        assert status == 401


async def test_member_tokens_reach_a_channel_that_allows_them(
    api: Api, world: dict[str, Any], other_org: OtherOrg
) -> None:
    closed = f"/v1/channels/{world['channel_a']}"
    assert_error(await api.client.get(closed), 403, "forbidden")
    agent, open_channel = await _agent(api, "agent-open", allow_member_tokens=True)
    base = f"/v1/channels/{open_channel}"
    card = (await api.client.get(base)).json()
    assert "personal_access_token" in card["credentials"]
    made = await api.client.post(f"{base}/sessions", json={})
    assert made.status_code == 201 and made.json()["owner"]["kind"] == "user"
    assert_error(await api.client.get(base, headers={"End-User": "x"}), 403, "forbidden")
    # A member of another organization: the channel does not exist for it.
    assert_error(await other_org.client.get(base), 404, "not_found")
    # The app's key does not see the member's session, nor the member the key's.
    key = await _key(api, agent)
    async with _client(api, key["key"]) as app:
        assert (await app.get(f"{base}/sessions")).json()["data"] == []
        hidden = await app.get(f"{base}/sessions/{made.json()['id']}")
        assert_error(hidden, 404, "not_found")


async def test_managing_keys_and_channels_refuses_bad_input(
    api: Api, world: dict[str, Any]
) -> None:
    async def count() -> tuple[int, int]:
        async with api.services.db.read() as conn:
            keys = await conn.scalar(select(func.count()).select_from(agent_keys))
            people = await conn.scalar(select(func.count()).select_from(principals))
        return int(keys or 0), int(people or 0)

    before = await count()
    agent = world["agent_a"]
    unknown = await api.client.post(
        f"/v1/agents/{agent}/keys", json={"name": "x", "permissions": ["admin"]}
    )
    assert_error(unknown, 422, field="permissions")
    past = await api.client.post(
        f"/v1/agents/{agent}/keys", json={"name": "x", "expires_at": "2001-01-01T00:00:00Z"}
    )
    assert_error(past, 422, field="expires_at")
    blank = await api.client.post(f"/v1/agents/{agent}/keys", json={"name": " "})
    assert_error(blank, 422, field="name")
    assert await count() == before
    # The key is shown once: listings give its prefix only.
    made = await _key(api, agent)
    listed = (await api.client.get(f"/v1/agents/{agent}/keys")).json()
    assert made["key"] not in str(listed) and made["key"].startswith(made["key_prefix"])
    # A closed channel answers 404 to everyone.
    deleted = await api.client.delete(f"/v1/agents/{agent}/channels/{world['channel_a']}")
    assert deleted.status_code == 204
    async with _client(api, made["key"]) as app:
        assert_error(await app.get(f"/v1/channels/{world['channel_a']}"), 404, "not_found")
    bad_page = await api.client.get(
        f"/v1/channels/{world['channel_b']}/sessions", params={"page_token": "!!"}
    )
    assert_error(bad_page, 403)  # members do not reach channel B at all


async def test_a_bad_page_token_names_the_field(api: Api, world: dict[str, Any]) -> None:
    async with _client(api, world["key_a"]["key"]) as app:
        refused = await app.get(
            f"/v1/channels/{world['channel_a']}/sessions", params={"page_token": "bm9wZQ"}
        )
        assert_error(refused, 422, field="page_token")
        no_credentials = await api.anonymous().get(f"/v1/channels/{world['channel_a']}")
        assert_error(no_credentials, 401, "unauthorized")
