"""Idempotency-Key on session create, message post and tool results."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.api.conftest import add_user_to_org, make_org
from tests.conftest import Api
from tests.engine.conftest import events, new_session, types_of, wait_turns_ended

pytestmark = pytest.mark.timeout(60)

MESSAGE = {"message": {"role": "user", "content": [{"type": "text", "text": "hello"}]}}


async def post(api: Api, path: str, body: dict[str, Any], key: str) -> Any:
    return await api.client.post(path, json=body, headers={"Idempotency-Key": key})


async def test_same_key_same_message_replays_and_starts_nothing_new(engine: Api) -> None:
    sid = await new_session(engine)
    first = await post(engine, f"/v1/sessions/{sid}/messages", MESSAGE, "k-1")
    assert first.status_code == 201
    await wait_turns_ended(engine, sid)
    again = await post(engine, f"/v1/sessions/{sid}/messages", MESSAGE, "k-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    found = await events(engine, sid)
    assert types_of(found).count("input.message") == 1
    assert types_of(found).count("turn.started") == 1


async def test_same_key_different_body_is_refused(engine: Api) -> None:
    sid = await new_session(engine)
    await post(engine, f"/v1/sessions/{sid}/messages", MESSAGE, "k-2")
    other = {"message": {"role": "user", "content": [{"type": "text", "text": "other"}]}}
    reused = await post(engine, f"/v1/sessions/{sid}/messages", other, "k-2")
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    await wait_turns_ended(engine, sid)


async def test_session_create_replays_the_same_session(engine: Api) -> None:
    first = await post(engine, "/v1/sessions", {"title": "once"}, "create-1")
    again = await post(engine, "/v1/sessions", {"title": "once"}, "create-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    listed = (await engine.client.get("/v1/sessions", params={"search": "once"})).json()
    assert listed["total"] == 1


async def test_a_failed_request_releases_its_key(engine: Api) -> None:
    bad = await post(engine, "/v1/sessions", {"agent_name": "nobody"}, "create-2")
    assert bad.status_code == 404
    again = await post(engine, "/v1/sessions", {"agent_name": "nobody"}, "create-2")
    assert again.status_code == 404
    assert "Idempotent-Replayed" not in again.headers


async def test_a_duplicate_while_the_first_is_in_flight_is_a_conflict(engine: Api) -> None:
    sid = await new_session(engine)
    results = await asyncio.gather(
        *(post(engine, f"/v1/sessions/{sid}/messages", MESSAGE, "k-race") for _ in range(6))
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) >= 1
    assert set(codes) <= {201, 409}
    conflicts = [r for r in results if r.status_code == 409]
    assert all(r.json()["error"]["code"] == "idempotency_key_in_progress" for r in conflicts)
    await wait_turns_ended(engine, sid)
    assert types_of(await events(engine, sid)).count("input.message") == 1


async def test_keys_are_per_caller_scope(engine: Api) -> None:
    """A key is the caller's own (organization and principal): another caller using the same
    key gets a result of its own, never the first caller's; the same caller, even through
    another of its tokens, gets the first result again."""
    body = {"title": "scoped"}
    mine = await post(engine, "/v1/sessions", body, "shared-key")
    assert mine.status_code == 201, mine.text

    my_other_token = await engine.services.auth.create_token("second")
    again = await engine.client.post(
        "/v1/sessions",
        json=body,
        headers={"Idempotency-Key": "shared-key", "Authorization": f"Bearer {my_other_token}"},
    )
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == mine.json()["id"]

    # Another user, a member of another organization and of this one (picked by X-Org-Id).
    other_org, user_id, _, token = await make_org(engine)
    await add_user_to_org(engine, engine.org_id, user_id)
    created: dict[str, str] = {}
    for org_id in (other_org, engine.org_id):
        theirs = await engine.client.post(
            "/v1/sessions",
            json=body,
            headers={
                "Idempotency-Key": "shared-key",
                "Authorization": f"Bearer {token}",
                "X-Org-Id": org_id,
            },
        )
        assert theirs.status_code == 201, theirs.text
        assert "Idempotent-Replayed" not in theirs.headers
        assert theirs.json()["organization_id"] == org_id
        created[org_id] = theirs.json()["id"]
    assert len({mine.json()["id"], *created.values()}) == 3
    listed = (await engine.client.get("/v1/sessions", params={"search": "scoped"})).json()
    assert listed["total"] == 2  # this organization: mine and the other user's


async def test_a_key_that_is_too_long_is_refused(engine: Api) -> None:
    too_long = await post(engine, "/v1/sessions", {}, "x" * 300)
    assert too_long.status_code == 422
    assert too_long.json()["error"]["field"] == "Idempotency-Key"
