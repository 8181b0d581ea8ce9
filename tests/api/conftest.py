"""Helpers of the API tests: error-shape checks and a second organization with its own token."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from everloop import ids
from everloop.domain.resources import Principal, PrincipalKind
from everloop.domain.timestamps import now
from everloop.services.auth import TOKEN_PREFIX, hash_token
from everloop.store.sql import Store
from tests.conftest import Api


def assert_error(
    response: httpx.Response, status: int, code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """The response is an error of ``status`` shaped ``{"error": {"code", "message"}}``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], body
    assert error["code"] == error["code"].lower() and " " not in error["code"], body
    assert isinstance(error["message"], str) and error["message"].strip(), body
    if code is not None:
        assert error["code"] == code, body
    if field is not None:
        assert error.get("field") == field, body
    return error  # type: ignore[no-any-return]


@dataclass
class OtherOrg:
    """A second organization with one user, its principal and a token of its own."""

    organization_id: str
    user_id: str
    principal_id: str
    token: str
    client: httpx.AsyncClient


async def add_user_to_org(api: Api, org_id: str, user_id: str) -> str:
    """Make ``user_id`` a member of ``org_id``; return the new principal's id."""
    store = Store()
    principal = Principal(ids.new_id("principal"), org_id, PrincipalKind.USER, user_id, "admin")
    async with api.services.db.write() as conn:
        await store.insert_principal(conn, principal, now())
    return principal.id


async def make_org(api: Api, name: str = "Other") -> tuple[str, str, str, str]:
    """Create an org (with built-in harnesses), a user, its principal and a token."""
    store = Store()
    org_id = ids.new_id("org")
    user_id = uuid.uuid4().hex
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ts = now()
    async with api.services.db.write() as conn:
        assert await store.ensure_organization(conn, org_id, name, ts)
        await store.insert_user(conn, user_id, f"{name} user", ts)
        await store.insert_token(
            conn,
            token_id=ids.new_id("pat"),
            user_id=user_id,
            name="test",
            token_hash=hash_token(token),
            hint=token[:12],
            ts=ts,
        )
    principal_id = await add_user_to_org(api, org_id, user_id)
    await api.services.harnesses.seed_built_ins(org_id)
    return org_id, user_id, principal_id, token


@pytest.fixture
async def other_org(api: Api) -> AsyncIterator[OtherOrg]:
    org_id, user_id, principal_id, token = await make_org(api)
    async with httpx.AsyncClient(
        transport=api.client._transport,
        base_url=str(api.client.base_url),
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield OtherOrg(org_id, user_id, principal_id, token, client)


async def create_agent(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "system_prompt": "You help.", **fields}
    response = await api.client.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_identity(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/agent-identities", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_session(api: Api, **fields: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/sessions", json=fields)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def session_total(api: Api) -> int:
    response = await api.client.get("/v1/sessions")
    assert response.status_code == 200, response.text
    return response.json()["total"]  # type: ignore[no-any-return]
