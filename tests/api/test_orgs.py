"""Organizations, members and roles through the API (issue 25): creating organizations,
inviting people, changing and removing roles under the owner rules, and the caller's account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from everloop.config import Settings
from everloop.store.tables import principals, users
from tests.api.conftest import assert_error
from tests.conftest import Api


def client_for(api: Api, token: str, org_id: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"}
    if org_id is not None:
        headers["X-Org-Id"] = org_id
    return httpx.AsyncClient(
        transport=api.client._transport, base_url=str(api.client.base_url), headers=headers
    )


async def invite(
    api: Api, email: str, role: str = "member", org_id: str | None = None
) -> dict[str, Any]:
    added = await api.client.post(
        f"/v1/orgs/{org_id or api.org_id}/members", json={"email": email, "role": role}
    )
    assert added.status_code == 201, added.text
    return dict(added.json())


async def row_counts(api: Api) -> tuple[int, int]:
    async with api.services.db.read() as conn:
        people = await conn.scalar(select(func.count()).select_from(users))
        members = await conn.scalar(select(func.count()).select_from(principals))
    return int(people or 0), int(members or 0)


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The shared settings, with what a test asks for (``indirect``)."""
    return settings.model_copy(update=getattr(request, "param", {}))


@pytest.fixture
async def member(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    added = await invite(api, "mia@example.com")
    async with client_for(api, added["token"]) as client:
        yield client


async def test_the_operator_creates_an_organization_and_acts_in_it(api: Api) -> None:
    created = await api.client.post("/v1/orgs", json={"name": "Acme"})
    assert created.status_code == 201, created.text
    org = created.json()
    assert org["id"].startswith("org_") and org["name"] == "Acme" and org["role"] == "owner"
    # Listing one's organizations needs no X-Org-Id, even from a member of several.
    listed = (await api.client.get("/v1/orgs")).json()
    assert [(o["id"], o["role"]) for o in listed["data"]] == [
        (api.org_id, "owner"),
        (org["id"], "owner"),
    ]
    async with client_for(api, api.token, org["id"]) as acme:
        harnesses = (await acme.get("/v1/harnesses")).json()["data"]
        assert "generic" in {h["name"] for h in harnesses}  # seeded with the built-ins
        got = await acme.get(f"/v1/orgs/{org['id']}")
        assert got.status_code == 200 and got.json()["name"] == "Acme"
        renamed = await acme.patch(f"/v1/orgs/{org['id']}", json={"name": "Acme Corp"})
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["name"] == "Acme Corp"
        assert renamed.json()["updated_at"] >= org["updated_at"]
    # The token now belongs to two organizations: a request must say which.
    ambiguous = await api.client.get("/v1/sessions")
    assert_error(ambiguous, 422, field="X-Org-Id")


async def test_a_member_may_not_create_organizations(api: Api, member: httpx.AsyncClient) -> None:
    refused = await member.post("/v1/orgs", json={"name": "Mine"})
    body = assert_error(refused, 403, "forbidden")
    assert "operator" in body["message"] and "EVERLOOP_ANY_USER_CREATES_ORGS" in body["message"]


@pytest.mark.parametrize("settings", [{"any_user_creates_orgs": True}], indirect=True)
async def test_with_the_setting_any_user_creates_organizations(
    api: Api, member: httpx.AsyncClient
) -> None:
    created = await member.post("/v1/orgs", json={"name": "Mine"})
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "owner"


async def test_an_invited_person_gets_a_token_once_and_their_role(api: Api) -> None:
    added = await invite(api, "Ada@Example.com", "admin")
    assert added["user_id"].startswith("user_") and added["role"] == "admin"
    assert added["email"] == "Ada@Example.com" and added["name"] == "Ada"
    async with client_for(api, added["token"]) as ada:
        me = (await ada.get("/v1/users/me")).json()
        assert me == {
            "id": added["user_id"],
            "email": "Ada@Example.com",
            "name": "Ada",
            "avatar_url": None,
            "organization_id": api.org_id,
            "role": "admin",
        }
        renamed = await ada.patch("/v1/users/me", json={"name": "Ada Lovelace"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "Ada Lovelace"
    # Listed with their role; the token is never shown again.
    users_ = (await api.client.get("/v1/users")).json()["data"]
    assert {(u["email"], tuple(u["roles"])) for u in users_} >= {("Ada@Example.com", ("admin",))}
    members = (await api.client.get(f"/v1/orgs/{api.org_id}/members")).json()["data"]
    assert all("token" not in m for m in members)
    # The same address again (in any case) is a conflict, and writes nothing.
    before = await row_counts(api)
    again = await api.client.post(
        f"/v1/orgs/{api.org_id}/members", json={"email": "ada@example.com"}
    )
    assert_error(again, 409, "conflict")
    assert await row_counts(api) == before


async def test_an_existing_user_joins_another_organization_without_a_new_token(api: Api) -> None:
    added = await invite(api, "bo@example.com")
    acme = (await api.client.post("/v1/orgs", json={"name": "Acme"})).json()
    joined = await invite(api, "bo@example.com", "admin", org_id=acme["id"])
    assert joined["token"] is None and joined["user_id"] == added["user_id"]
    async with client_for(api, added["token"], acme["id"]) as bo:
        me = (await bo.get("/v1/users/me")).json()
        assert (me["organization_id"], me["role"]) == (acme["id"], "admin")
    async with client_for(api, added["token"], api.org_id) as bo:
        assert (await bo.get("/v1/users/me")).json()["role"] == "member"


async def test_a_new_role_applies_from_the_next_request(
    api: Api, member: httpx.AsyncClient
) -> None:
    refused = await member.post("/v1/agents", json={"name": "a1", "system_prompt": "p"})
    assert "admin role" in assert_error(refused, 403, "forbidden")["message"]
    me = (await member.get("/v1/users/me")).json()
    promoted = await api.client.patch(
        f"/v1/orgs/{api.org_id}/members/{me['id']}", json={"role": "admin"}
    )
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    created = await member.post("/v1/agents", json={"name": "a1", "system_prompt": "p"})
    assert created.status_code == 201, created.text


async def test_owner_rules_only_owners_touch_owners_and_one_always_stays(api: Api) -> None:
    admin = await invite(api, "al@example.com", "admin")
    owner_id = (await api.client.get("/v1/users/me")).json()["id"]
    async with client_for(api, admin["token"]) as al:
        # An admin neither grants the owner role nor touches an owner.
        grant = await al.patch(
            f"/v1/orgs/{api.org_id}/members/{admin['user_id']}", json={"role": "owner"}
        )
        assert "owner" in assert_error(grant, 403, "forbidden")["message"]
        demote = await al.patch(
            f"/v1/orgs/{api.org_id}/members/{owner_id}", json={"role": "member"}
        )
        assert_error(demote, 403, "forbidden")
        assert_error(await al.delete(f"/v1/orgs/{api.org_id}/members/{owner_id}"), 403)
        added_owner = await al.post(
            f"/v1/orgs/{api.org_id}/members", json={"email": "x@example.com", "role": "owner"}
        )
        assert_error(added_owner, 403, "forbidden")
        # Org settings are the owner's.
        assert_error(await al.patch(f"/v1/orgs/{api.org_id}", json={"name": "x"}), 403)
    # The last owner can neither step down nor leave.
    last = await api.client.patch(
        f"/v1/orgs/{api.org_id}/members/{owner_id}", json={"role": "admin"}
    )
    assert "at least one owner" in assert_error(last, 409, "conflict")["message"]
    assert_error(await api.client.delete(f"/v1/orgs/{api.org_id}/members/{owner_id}"), 409)
    assert_error(await api.client.delete("/v1/users/me"), 409, "conflict")
    # With a second owner, the first may step down.
    made = await api.client.patch(
        f"/v1/orgs/{api.org_id}/members/{admin['user_id']}", json={"role": "owner"}
    )
    assert made.status_code == 200 and made.json()["role"] == "owner"
    stepped = await api.client.patch(
        f"/v1/orgs/{api.org_id}/members/{owner_id}", json={"role": "admin"}
    )
    assert stepped.status_code == 200 and stepped.json()["role"] == "admin"


async def test_removing_a_member_cuts_their_tokens_off_at_once(api: Api) -> None:
    gone = await invite(api, "gus@example.com")
    stays = await invite(api, "sue@example.com")
    acme = (await api.client.post("/v1/orgs", json={"name": "Acme"})).json()
    await invite(api, "sue@example.com", org_id=acme["id"])
    async with client_for(api, gone["token"]) as gus, client_for(api, stays["token"]) as sue:
        assert (await gus.get("/v1/sessions")).status_code == 200
        removed = await api.client.delete(f"/v1/orgs/{api.org_id}/members/{gone['user_id']}")
        assert removed.status_code == 204
        # Their last organization: every token of theirs is revoked.
        assert_error(await gus.get("/v1/sessions"), 401, "unauthorized")
        tokens = (
            await api.client.get("/v1/admin/api-keys", headers={"X-Org-Id": api.org_id})
        ).json()
        assert all(t["revoked_at"] is not None for t in tokens if t["user_id"] == gone["user_id"])
        # Sue still belongs to Acme: her token stops reaching this organization only.
        await api.client.delete(f"/v1/orgs/{api.org_id}/members/{stays['user_id']}")
        assert (await sue.get("/v1/sessions")).status_code == 200  # Acme, her only org now
        outside = await sue.get("/v1/sessions", headers={"X-Org-Id": api.org_id})
        assert_error(outside, 404, "not_found")
    # Added again, the person is back with the new role.
    back = await invite(api, "sue@example.com", "admin")
    assert back["token"] is None and back["role"] == "admin"


async def test_closing_an_account_revokes_its_tokens(api: Api, member: httpx.AsyncClient) -> None:
    closed = await member.delete("/v1/users/me")
    assert closed.status_code == 200 and closed.json() == {"deleted": True}
    assert_error(await member.get("/v1/users/me"), 401, "unauthorized")
    emails = [u["email"] for u in (await api.client.get("/v1/users")).json()["data"]]
    assert "mia@example.com" not in emails


async def test_bad_input_names_the_field_and_writes_nothing(api: Api) -> None:
    before = await row_counts(api)
    for body, field in (
        ({"email": "not-an-address"}, "email"),
        ({"email": "x@example.com", "role": "boss"}, "role"),
        ({"email": "x@example.com", "name": ""}, "name"),
        ({}, "email"),
    ):
        answer = await api.client.post(f"/v1/orgs/{api.org_id}/members", json=body)
        assert_error(answer, 422, field=field)
    assert_error(await api.client.post("/v1/orgs", json={"name": " "}), 422, field="name")
    extra = await api.client.patch(
        f"/v1/orgs/{api.org_id}", json={"name": "x", "default_model_id": "model_1"}
    )
    assert_error(extra, 422, field="default_model_id")
    bad_id = await api.client.patch(f"/v1/orgs/{api.org_id}/members/nobody", json={"role": "admin"})
    assert_error(bad_id, 422, field="user_id")
    assert await row_counts(api) == before
