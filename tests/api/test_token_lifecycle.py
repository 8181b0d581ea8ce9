"""Token lifecycle: expiry (at the instant, even for a cached token), an organization admin's
view of its members' tokens, and the limit on failed authentications per client address."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from everloop import ids
from everloop.api.app import create_app
from everloop.bootstrap import Services, build_services
from everloop.config import Settings
from everloop.domain.resources import Principal, PrincipalKind
from everloop.domain.timestamps import format_ts, now
from everloop.errors import Unauthenticated
from everloop.services.auth import TOKEN_PREFIX, AuthService, hash_token
from everloop.services.token_cache import TokenCache
from everloop.store.sql import Store
from tests.api.conftest import OtherOrg, assert_error
from tests.conftest import Api


async def _insert_token(
    api: Api, user_id: str, *, expires_at: str | None = None, name: str = "t"
) -> tuple[str, str]:
    """A token of ``user_id`` written straight through the store: (id, token)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = ids.new_id("pat")
    async with api.services.db.write() as conn:
        await Store().insert_token(
            conn,
            token_id=token_id,
            user_id=user_id,
            name=name,
            token_hash=hash_token(token),
            hint=token[:12],
            ts=now(),
            expires_at=expires_at,
        )
    return token_id, token


async def _status(api: Api, token: str) -> int:
    async with api.anonymous() as client:
        response = await client.get("/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def _admin_user_id(api: Api) -> str:
    return (await api.services.auth.authenticate(f"Bearer {api.token}", None)).user_id


# -- expiry ---------------------------------------------------------------------------------


async def test_a_key_may_expire_and_says_when(api: Api) -> None:
    at = datetime.now(UTC) + timedelta(days=3)
    created = await api.client.post(
        "/v1/auth/api-keys", json={"name": "ci", "expires_at": at.isoformat()}
    )
    assert created.status_code == 201, created.text
    assert created.json()["expires_at"] == format_ts(at)
    assert await _status(api, created.json()["key"]) == 200
    by_days = await api.client.post("/v1/auth/api-keys", json={"name": "d", "expires_in_days": 2})
    assert by_days.status_code == 201, by_days.text
    listed = {k["name"]: k for k in (await api.client.get("/v1/auth/api-keys")).json()}
    assert listed["ci"]["expires_at"] == format_ts(at)
    assert listed["d"]["expires_at"] > listed["ci"]["created_at"]
    assert listed["admin"]["expires_at"] is None


async def test_a_key_that_would_be_born_expired_is_422_and_nothing_is_written(api: Api) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    response = await api.client.post("/v1/auth/api-keys", json={"name": "x", "expires_at": past})
    assert_error(response, 422, "validation_error", field="expires_at")
    assert [k["name"] for k in (await api.client.get("/v1/auth/api-keys")).json()] == ["admin"]


async def test_an_expired_token_is_refused(api: Api) -> None:
    user_id = await _admin_user_id(api)
    gone = format_ts(datetime.now(UTC) - timedelta(milliseconds=1))
    _, expired = await _insert_token(api, user_id, expires_at=gone)
    _, later = await _insert_token(api, user_id, expires_at="2999-01-01T00:00:00.000Z")
    assert await _status(api, later) == 200
    async with api.anonymous() as client:
        refused = await client.get("/v1/sessions", headers={"Authorization": f"Bearer {expired}"})
    assert_error(refused, 401, "unauthorized")


async def test_a_cached_token_is_refused_at_the_instant_it_expires(api: Api) -> None:
    wall = [datetime(2030, 1, 1, tzinfo=UTC)]
    expiry = wall[0] + timedelta(minutes=5)

    def service() -> AuthService:
        # An hour-long cache on a clock that stands still: only the expiry can end an entry.
        cache = TokenCache(3600.0, clock=lambda: 0.0)
        return AuthService(api.services.db, Store(), tokens=cache, clock=lambda: wall[0])

    auth = service()
    caller = await auth.authenticate(f"Bearer {api.token}", None)
    record, token = await auth.create_api_key(caller, "short", expiry)
    assert record.expires_at == format_ts(expiry)
    wall[0] = expiry - timedelta(milliseconds=1)
    assert (await auth.authenticate(token, None)).user_id == caller.user_id  # now cached
    assert (await service().authenticate(token, None)).user_id == caller.user_id
    wall[0] = expiry
    for fresh in (auth, service()):  # the cached entry, and a lookup in the database
        with pytest.raises(Unauthenticated):
            await fresh.authenticate(token, None)


# -- an organization's admin and its members' tokens ----------------------------------------


@dataclass
class Member:
    user_id: str
    token_id: str
    token: str


async def _add_member(api: Api) -> Member:
    user_id = uuid.uuid4().hex
    async with api.services.db.write() as conn:
        await Store().insert_user(conn, user_id, "member", now())
        principal = Principal(
            ids.new_id("principal"), api.org_id, PrincipalKind.USER, user_id, "member"
        )
        await Store().insert_principal(conn, principal, now())
    token_id, token = await _insert_token(api, user_id, name="member's")
    return Member(user_id, token_id, token)


async def test_an_admin_lists_and_revokes_its_members_tokens(api: Api, other_org: OtherOrg) -> None:
    member = await _add_member(api)
    assert await _status(api, member.token) == 200  # cached in this process now
    listed = (await api.client.get("/v1/admin/api-keys")).json()
    assert {k["name"] for k in listed} == {"admin", "member's"}  # not the other org's
    mine = next(k for k in listed if k["id"] == member.token_id)
    assert mine["user_id"] == member.user_id and mine["revoked_at"] is None
    assert all("key" not in k for k in listed)

    revoked = await api.client.delete(f"/v1/admin/api-keys/{member.token_id}")
    assert revoked.status_code == 204, revoked.text
    assert await _status(api, member.token) == 401
    listed = (await api.client.get("/v1/admin/api-keys")).json()
    assert next(k for k in listed if k["id"] == member.token_id)["revoked_at"] is not None

    theirs = (await other_org.client.get("/v1/auth/api-keys")).json()[0]["id"]
    assert_error(await api.client.delete(f"/v1/admin/api-keys/{theirs}"), 404, "not_found")
    assert (await other_org.client.get("/v1/sessions")).status_code == 200


async def test_a_member_may_not_manage_the_organizations_tokens(api: Api) -> None:
    member = await _add_member(api)
    admins = (await api.client.get("/v1/auth/api-keys")).json()[0]["id"]
    headers = {"Authorization": f"Bearer {member.token}"}
    async with api.anonymous() as client:
        assert_error(await client.get("/v1/admin/api-keys", headers=headers), 403, "forbidden")
        refused = await client.delete(f"/v1/admin/api-keys/{admins}", headers=headers)
        assert_error(refused, 403, "forbidden")
        # Its own tokens are its own to manage.
        own = await client.delete(f"/v1/auth/api-keys/{member.token_id}", headers=headers)
        assert own.status_code == 204
    assert (await api.client.get("/v1/sessions")).status_code == 200


# -- failed authentications per client address ----------------------------------------------


@dataclass
class Limited:
    services: Services
    app: Any
    token: str

    def client(self, address: str, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.ASGITransport(app=self.app, client=(address, 50_000))
        return httpx.AsyncClient(
            transport=transport, base_url="http://everloop.test/api", headers=headers
        )

    @contextmanager
    def token_lookups(self) -> Iterator[list[str]]:
        """The statements that read ``access_tokens`` meanwhile."""
        seen: list[str] = []

        def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "access_tokens" in statement:
                seen.append(statement)

        engine = self.services.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", note)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", note)


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Limited]:
    services = build_services(settings.model_copy(update={"auth_failure_limit": "3/minute"}))
    try:
        boot = await services.auth.bootstrap()
        assert boot.token is not None
        yield Limited(services, create_app(services), boot.token)
    finally:
        await services.close()


def _guess() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def _sessions(client: httpx.AsyncClient, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return await client.get("/v1/sessions", headers=headers)


async def test_an_address_that_keeps_failing_gets_429_without_token_lookups(
    limited: Limited,
) -> None:
    async with limited.client("203.0.113.9") as attacker:
        assert (await _sessions(attacker, limited.token)).status_code == 200
        for _ in range(3):
            assert_error(await _sessions(attacker, _guess()), 401, "unauthorized")
        with limited.token_lookups() as lookups:
            for token in (_guess(), None, "not-a-token"):
                refused = await _sessions(attacker, token)
                error = assert_error(refused, 429, "too_many_requests")
                assert "retry" in error["message"]
                assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert lookups == []
        # A token that authenticated from here before still works from here.
        assert (await _sessions(attacker, limited.token)).status_code == 200
    async with limited.client("198.51.100.4") as elsewhere:
        assert_error(await _sessions(elsewhere, _guess()), 401)  # its own count
        assert (await _sessions(elsewhere, limited.token)).status_code == 200


async def test_successful_requests_do_not_count(limited: Limited) -> None:
    async with limited.client("192.0.2.33") as client:
        for _ in range(2):
            assert_error(await _sessions(client, _guess()), 401)
        for _ in range(10):
            assert (await _sessions(client, limited.token)).status_code == 200
        assert_error(await _sessions(client, _guess()), 401)  # the third failure
        assert_error(await _sessions(client, _guess()), 429)


def test_a_limit_that_is_not_one_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="EVERLOOP_AUTH_FAILURE_LIMIT"):
        Settings(auth_failure_limit="lots")
