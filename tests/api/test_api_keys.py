"""Personal access tokens over ``/v1/auth/api-keys``, and the in-process cache of who a token
is: revoking a token refuses it at once in this process, even right after it was cached, at
once in another process on the same data dir, and within the cache's second in any other."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from everloop import ids
from everloop.bootstrap_admin import revocation_marker
from everloop.config import Settings
from everloop.domain.resources import Principal, PrincipalKind
from everloop.errors import Unauthenticated
from everloop.services.auth import AuthService, hash_token
from everloop.services.token_cache import TokenCache
from everloop.store.db import Database
from everloop.store.sql import Store
from everloop.store.tables import access_tokens
from tests.api.conftest import OtherOrg, assert_error
from tests.conftest import Api


async def _create(api: Api, name: str = "ci") -> dict[str, object]:
    response = await api.client.post("/v1/auth/api-keys", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _sessions_with(api: Api, token: str) -> int:
    async with api.anonymous() as client:
        response = await client.get("/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_create_list_and_use_a_key(api: Api) -> None:
    created = await _create(api, "deploy")
    key = str(created["key"])
    assert key.startswith("evr_pat_")
    assert created["key_prefix"] == key[:12]
    assert created["scopes"] == ["*"]
    assert created["expires_at"] is None
    assert await _sessions_with(api, key) == 200  # works at once
    listed = (await api.client.get("/v1/auth/api-keys")).json()
    assert [k["name"] for k in listed] == ["admin", "deploy"]
    assert all("key" not in k for k in listed)
    mine = next(k for k in listed if k["id"] == created["id"])
    assert mine["key_prefix"] == created["key_prefix"]
    # Only the hash is stored.
    async with api.services.db.read() as conn:
        stored = await conn.scalar(
            select(access_tokens.c.token_hash).where(access_tokens.c.id == created["id"])
        )
    assert stored == hash_token(key)


async def test_a_revoked_key_is_refused_at_once_though_it_was_cached(api: Api) -> None:
    created = await _create(api)
    key = str(created["key"])
    for _ in range(3):  # authenticated, and so cached in this process
        assert await _sessions_with(api, key) == 200
    deleted = await api.client.delete(f"/v1/auth/api-keys/{created['id']}")
    assert deleted.status_code == 204, deleted.text
    async with api.anonymous() as client:
        refused = await client.get("/v1/sessions", headers={"Authorization": f"Bearer {key}"})
    assert_error(refused, 401, "unauthorized")
    listed = (await api.client.get("/v1/auth/api-keys")).json()
    assert created["id"] not in [k["id"] for k in listed]
    # The other keys are untouched.
    assert (await api.client.get("/v1/sessions")).status_code == 200
    again = await api.client.delete(f"/v1/auth/api-keys/{created['id']}")
    assert_error(again, 404, "not_found")


async def test_a_key_can_revoke_itself(api: Api) -> None:
    created = await _create(api)
    key = str(created["key"])
    async with api.anonymous() as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert (await client.get("/v1/sessions", headers=headers)).status_code == 200
        gone = await client.delete(f"/v1/auth/api-keys/{created['id']}", headers=headers)
        assert gone.status_code == 204, gone.text
        assert_error(await client.get("/v1/sessions", headers=headers), 401)


async def test_keys_belong_to_their_user(api: Api, other_org: OtherOrg) -> None:
    theirs = (await other_org.client.get("/v1/auth/api-keys")).json()
    assert [k["name"] for k in theirs] == ["test"]
    refused = await api.client.delete(f"/v1/auth/api-keys/{theirs[0]['id']}")
    assert_error(refused, 404, "not_found")
    assert (await other_org.client.get("/v1/sessions")).status_code == 200


async def test_bad_key_requests(api: Api) -> None:
    for body, field in (
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "x", "scopes": ["sessions:read"]}, "scopes"),
        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "expires_at": "next tuesday"}, "expires_at"),
        ({"name": "x", "expires_at": "2999-01-01T00:00:00Z", "expires_in_days": 1}, "expires_at"),
    ):
        response = await api.client.post("/v1/auth/api-keys", json=body)
        assert_error(response, 422, field=field)
    malformed = await api.client.delete("/v1/auth/api-keys/pat_123")
    assert_error(malformed, 422, "invalid_id", field="key_id")
    unknown = await api.client.delete(f"/v1/auth/api-keys/{ids.new_id('pat')}")
    assert_error(unknown, 404, "not_found")
    assert len((await api.client.get("/v1/auth/api-keys")).json()) == 1


async def test_another_process_refuses_a_revoked_key_once_its_entry_runs_out(api: Api) -> None:
    created = await _create(api)
    key = f"Bearer {created['key']}"
    clock = [100.0]
    elsewhere_db = Database(api.services.db.url)
    elsewhere = AuthService(elsewhere_db, Store(), tokens=TokenCache(1.0, clock=lambda: clock[0]))
    try:
        caller = await elsewhere.authenticate(key, None)
        assert caller.organization_id == api.org_id
        deleted = await api.client.delete(f"/v1/auth/api-keys/{created['id']}")
        assert deleted.status_code == 204
        clock[0] += 1.0  # its cached entry has run out: it reads the revocation
        try:
            await elsewhere.authenticate(key, None)
        except Unauthenticated:
            pass
        else:
            raise AssertionError("a revoked token authenticated after the cache's second")
    finally:
        await elsewhere_db.close()


async def test_a_process_on_the_same_data_dir_refuses_a_revoked_key_at_once(
    api: Api, settings: Settings
) -> None:
    created = await _create(api)
    key = f"Bearer {created['key']}"
    elsewhere_db = Database(api.services.db.url)
    # A cache whose clock stands still: only the data dir's revocation marker can end it.
    elsewhere = AuthService(
        elsewhere_db,
        Store(),
        tokens=TokenCache(1.0, clock=lambda: 0.0),
        revocations=revocation_marker(settings),
    )
    try:
        await elsewhere.authenticate(key, None)
        await elsewhere.authenticate(f"Bearer {api.token}", None)
        deleted = await api.client.delete(f"/v1/auth/api-keys/{created['id']}")
        assert deleted.status_code == 204
        with pytest.raises(Unauthenticated):
            await elsewhere.authenticate(key, None)
        assert (await elsewhere.authenticate(f"Bearer {api.token}", None)).user_id
    finally:
        await elsewhere_db.close()


WALL = datetime(2030, 1, 1, tzinfo=UTC)


def _principal() -> Principal:
    return Principal(ids.new_id("principal"), ids.DEFAULT_ORG_ID, PrincipalKind.USER, "u", "admin")


def test_a_lookup_that_raced_a_revocation_is_not_kept() -> None:
    cache = TokenCache(60.0)
    generation = cache.generation  # a lookup starts reading the database ...
    cache.forget_all()  # ... a revocation commits meanwhile ...
    cache.put("h", "u", None, (_principal(),), generation)  # ... and its answer comes back
    assert cache.get("h", WALL) is None
    cache.put("h", "u", None, (_principal(),), cache.generation)
    assert cache.get("h", WALL) is not None


def test_cache_entries_run_out_and_stay_bounded() -> None:
    clock = [0.0]
    cache = TokenCache(1.0, max_entries=3, clock=lambda: clock[0])
    for n in range(3):
        cache.put(f"h{n}", "u", None, (), cache.generation)
    clock[0] = 0.5
    cache.put("h3", "u", None, (), cache.generation)  # full of live entries: starts over
    found = [cache.get(f"h{n}", WALL) is not None for n in range(4)]
    assert found == [False, False, False, True]
    clock[0] = 1.5
    assert cache.get("h3", WALL) is None
