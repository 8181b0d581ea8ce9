"""The role x route matrix (issue 25), generated from the route table ``api/access.py``.

Every operation of the app must have an entry in ``ROUTES`` (a new route without one fails
here, and is refused to everyone at run time). Every entry is then called as the organization's
owner, an admin, a member, another organization's admin and an agent key; the expected answer
comes from the table: a caller below the entry gets 403 naming the role needed (404 for an
operator-only view), one at or above it gets past the check (the route itself then answers:
404 for the unknown ids the matrix sends, 422 for an empty body, 2xx where that is enough).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from everloop.api.access import ROUTES, Access
from everloop.config import Settings
from tests.api.conftest import OtherOrg, create_agent
from tests.conftest import Api

_PARAM = re.compile(r"{([a-z_]+)(?::path)?}")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The hidden debug route exists too, so the table's entry for it is checked against it.
    return settings.model_copy(update={"debug_counters": True})


def app_operations(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) of the API, as the table names them (without ``/api``)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if not path.startswith("/api/v1/"):
            continue
        path = re.sub(r"{(\w+):\w+}", r"{\1}", path).removeprefix("/api")
        found.update((m, path) for m in route.methods or () if m != "HEAD")
    return found


def test_every_route_has_exactly_one_access_rule(api: Api) -> None:
    app = api.client._transport.app  # type: ignore[attr-defined]
    operations = app_operations(app)
    missing = sorted(operations - set(ROUTES))
    assert missing == [], (
        f"routes without an access rule: {missing}. Add each to ROUTES in api/access.py: "
        "until then it is refused to everyone."
    )
    assert sorted(set(ROUTES) - operations) == [], "ROUTES names routes the app does not have"


@dataclass
class Principals:
    owner: httpx.AsyncClient
    admin: httpx.AsyncClient
    member: httpx.AsyncClient
    other_admin: httpx.AsyncClient
    agent_key: httpx.AsyncClient


def _client(api: Api, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=api.client._transport,
        base_url=str(api.client.base_url),
        headers={"Authorization": f"Bearer {token}"},
    )


async def invite(api: Api, email: str, role: str) -> str:
    added = await api.client.post(
        f"/v1/orgs/{api.org_id}/members", json={"email": email, "role": role}
    )
    assert added.status_code == 201, added.text
    token = added.json()["token"]
    assert isinstance(token, str) and token.startswith("evr_pat_")
    return token


@pytest.fixture
async def principals(api: Api, other_org: OtherOrg) -> AsyncIterator[Principals]:
    agent = await create_agent(api, "keyed")
    key = await api.client.post(f"/v1/agents/{agent['id']}/keys", json={"name": "k"})
    assert key.status_code == 201, key.text
    clients = Principals(
        owner=api.client,
        admin=_client(api, await invite(api, "admin@example.com", "admin")),
        member=_client(api, await invite(api, "member@example.com", "member")),
        other_admin=other_org.client,
        agent_key=_client(api, key.json()["key"]),
    )
    yield clients
    for client in (clients.admin, clients.member, clients.agent_key):
        await client.aclose()


ROLE_RANK = {"member": 0, "admin": 1, "owner": 2}


def expected_denial(access: Access, who: str, path: str) -> int | None:
    """The status the table gives ``who`` on a route (None: allowed past the check)."""
    if who == "agent_key":
        return 403  # an agent key reaches its channel routes only
    if who == "other_admin" and "{org_id}" in path:
        return 404  # another organization's id names nothing for them
    role = {"owner": "owner", "admin": "admin", "member": "member", "other_admin": "admin"}[who]
    operator = who in ("owner", "admin")  # admins of the default organization
    match access:
        case Access.MEMBER:
            return None
        case Access.ADMIN | Access.OWNER:
            return None if ROLE_RANK[role] >= ROLE_RANK[access.value] else 403
        case Access.OPERATOR:
            return None if operator else 404
        case Access.ORG_CREATOR:
            return None if operator else 403
    raise AssertionError(access)


def fill(path: str, org_id: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "org_id":
            return org_id
        if name == "path":
            return "notes.txt"
        if name in ("name", "provider", "capability_id"):
            return "no-such-thing"
        prefix = {
            "session_id": "session",
            "agent_id": "agent",
            "user_id": "user",
            "key_id": "pat",
            "agent_key_id": "agentkey",
            "run_id": "healthcheck",
            "identity_id": "identity",
            "harness_id": "harness",
            "provider_id": "provider",
            "model_id": "model",
            "server_id": "mcp",
            "schedule_id": "sched",
            "budget_id": "budget",
            "memory_id": "mem",
            "workspace_id": "wsp",
            "task_id": "task",
            "channel_id": "apichan",
            "version_id": "agentver",
            "from_version_id": "agentver",
            "to_version_id": "agentver",
        }.get(name, "agent")
        return f"{prefix}_{'0' * 31}9"

    return _PARAM.sub(value, path)


# Last: it closes the caller's account.
LAST = ("DELETE", "/v1/users/me")


@pytest.mark.parametrize("who", ["owner", "admin", "member", "other_admin", "agent_key"])
async def test_every_route_answers_each_role_as_the_table_says(
    api: Api, principals: Principals, who: str
) -> None:
    client: httpx.AsyncClient = getattr(principals, who)
    entries = sorted(
        ((k, v) for k, v in ROUTES.items() if v is not Access.CHANNEL and k != LAST),
        key=lambda item: item[0],
    )
    entries.append((LAST, ROUTES[LAST]))
    wrong = []
    for (method, template), access in entries:
        path = fill(template, api.org_id)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        response = await client.request(method, path, json=body, timeout=15)
        denial = expected_denial(access, who, template)
        if denial is None:
            if response.status_code in (401, 403):
                wrong.append((method, template, response.status_code, response.text[:160]))
        elif response.status_code != denial:
            wrong.append((method, template, response.status_code, response.text[:160]))
        elif denial == 403 and who != "agent_key":
            message = response.json()["error"]["message"]
            if access in (Access.ADMIN, Access.OWNER) and access.value not in message:
                wrong.append((method, template, "message", message))
    assert wrong == [], f"{who}: {len(wrong)} routes answer otherwise than the table: {wrong}"


async def test_a_member_sees_and_changes_only_their_own_sessions(
    api: Api, principals: Principals
) -> None:
    mine = await principals.member.post("/v1/sessions", json={"title": "mine"})
    assert mine.status_code == 201, mine.text
    theirs = await api.client.post("/v1/sessions", json={"title": "the owner's"})
    assert theirs.status_code == 201, theirs.text
    listed = (await principals.member.get("/v1/sessions")).json()
    assert [s["id"] for s in listed["data"]] == [mine.json()["id"]] and listed["total"] == 1
    other = theirs.json()["id"]
    for method, path in (
        ("GET", f"/v1/sessions/{other}"),
        ("PATCH", f"/v1/sessions/{other}"),
        ("GET", f"/v1/sessions/{other}/events"),
        ("POST", f"/v1/sessions/{other}/cancel"),
        ("DELETE", f"/v1/sessions/{other}"),
    ):
        body = {"title": "taken"} if method == "PATCH" else None
        answer = await principals.member.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    # Admins see every session of the organization.
    everyone = (await principals.admin.get("/v1/sessions")).json()
    assert {mine.json()["id"], other} <= {s["id"] for s in everyone["data"]}
    assert (await principals.admin.get(f"/v1/sessions/{mine.json()['id']}")).status_code == 200
    assert (await api.client.get(f"/v1/sessions/{other}")).json()["title"] == "the owner's"
