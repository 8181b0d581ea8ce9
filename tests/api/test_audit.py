"""The audit log (issue 25): one record per management change, written with the change; none
for a failed request; secret values never in it; append-only in the database; read by admins."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy.exc
from sqlalchemy import func, select, text

from everloop.services.audit import route_action
from everloop.store.tables import audit_events
from tests.api.conftest import assert_error, create_agent
from tests.api.test_cross_org_matrix import CASES, World, build_world, call, fill, world_for
from tests.conftest import Api


async def records(api: Api) -> list[dict[str, Any]]:
    async with api.services.db.read() as conn:
        rows = await conn.execute(select(audit_events).order_by(audit_events.c.created_at))
        return [dict(r._mapping) for r in rows]


async def count(api: Api) -> int:
    async with api.services.db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(audit_events)) or 0)


async def test_a_change_leaves_one_record_and_a_failure_none(api: Api) -> None:
    before = await count(api)
    agent = await create_agent(api, "audited")
    bad = await api.client.patch(f"/v1/agents/{agent['id']}", json={"name": ""})
    assert bad.status_code == 422
    changed = await api.client.patch(
        f"/v1/agents/{agent['id']}", json={"description": "v2"}, headers={"X-Request-Id": "r-1"}
    )
    assert changed.status_code == 200, changed.text
    assert (await api.client.delete(f"/v1/agents/{agent['id']}")).status_code == 204
    found = (await records(api))[before:]
    assert [(r["action"], r["target_type"], r["target_id"]) for r in found] == [
        ("agents.create", "agents", agent["id"]),
        ("agents.update", "agents", agent["id"]),
        ("agents.delete", "agents", agent["id"]),
    ]
    update = found[1]
    assert update["changes"] == {"description": "v2"} and update["request_id"] == "r-1"
    assert update["organization_id"] == api.org_id and update["outcome"] == "success"
    me = (await api.client.get("/v1/users/me")).json()
    assert update["actor_user_id"] == me["id"].removeprefix("user_")
    assert update["route"] == "PATCH /v1/agents/{agent_id}"


async def test_secret_values_never_reach_the_record(api: Api) -> None:
    created = await api.client.post(
        "/v1/providers",
        json={"name": "Vendor", "driver": "openai", "api_key": "sk-very-secret-value"},
    )
    assert created.status_code == 201, created.text
    session = (await api.client.post("/v1/sessions", json={})).json()
    stored = await api.client.put(
        f"/v1/sessions/{session['id']}/storage/secrets",
        json={"secrets": {"DB_PASSWORD": "hunter2-secret"}},
    )
    assert stored.status_code in (200, 204), stored.text
    dumped = repr(await records(api))
    assert "sk-very-secret-value" not in dumped and "hunter2-secret" not in dumped
    provider = next(r for r in await records(api) if r["action"] == "providers.create")
    assert provider["changes"]["api_key"] == "[redacted]"
    assert provider["target_id"] == created.json()["id"]


async def test_every_management_change_leaves_exactly_one_record(api: Api) -> None:
    """Every mutating route of the cross-org matrix, called by org A on its own objects: a
    success leaves one record naming the route's target, a failure none."""
    world: World = await build_world(api)
    wrong = []
    for (method, template), case in sorted(CASES.items()):
        route = template.removeprefix("/api").replace("{path:path}", "{path}")
        what = route_action(method, route)
        if method == "GET" or what is None or route.startswith("/v1/channels/"):
            continue
        before = await count(api)
        answer = await call(
            api.client, method, fill(template, world_for(template, world)), case, world
        )
        found = (await records(api))[before:]
        if answer.status_code >= 400:
            if found:
                wrong.append((method, route, answer.status_code, "records a failure", found))
            continue
        if len(found) != 1:
            wrong.append((method, route, answer.status_code, f"{len(found)} records"))
            continue
        record = found[0]
        expected = _expected_target(method, route, world, answer)
        if expected is not None and record["target_id"] != expected:
            wrong.append((method, route, "target", record["target_id"], expected))
        if record["route"] != f"{method} {route}":
            wrong.append((method, route, "route", record["route"]))
    assert wrong == [], wrong


def _expected_target(method: str, route: str, world: World, answer: httpx.Response) -> str | None:
    what = route_action(method, route)
    assert what is not None
    if what.created_prefix is not None:
        body = answer.json() if answer.content else {}
        created = body.get("id") if isinstance(body, dict) else None
        if what.created_prefix == "principal":
            return None  # a membership: its principal id is not in the response
        return str(created) if created is not None else None
    if what.target_param is None:
        return None
    target = world[what.target_param]
    if what.inner_param:
        target = f"{target}:{world[what.inner_param]}"
    return target


async def test_records_cannot_be_changed_or_deleted_in_the_database(api: Api) -> None:
    await create_agent(api, "kept")
    for statement in ("UPDATE audit_events SET action = 'nothing'", "DELETE FROM audit_events"):
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
            async with api.services.db.write() as conn:
                await conn.execute(text(statement))
    assert await count(api) >= 1
    # Past the retention, a record may be pruned (and only then).
    async with api.services.db.write() as conn:
        await conn.execute(
            audit_events.insert().values(
                id="audit_" + "0" * 31 + "1",
                organization_id=api.org_id,
                actor_principal_id="principal_" + "0" * 32,
                actor_kind="user",
                action="agents.create",
                route="POST /v1/agents",
                target_type="agents",
                outcome="success",
                created_at="2020-01-01T00:00:00.000Z",
            )
        )
    # Without a retention on record, nothing may be deleted, however old.
    async with api.services.db.write() as conn:
        await conn.execute(text("DELETE FROM audit_retention"))
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
        async with api.services.db.write() as conn:
            await conn.execute(text("DELETE FROM audit_events"))
    before = await count(api)
    await api.services.audit.start()  # records the retention, prunes what is past it
    assert await count(api) == before - 1


async def test_admins_read_the_log_with_filters_and_pages(api: Api) -> None:
    agents = [await create_agent(api, f"paged-{n}") for n in range(5)]
    first = await api.client.get("/v1/audit-events", params={"action": "agents.create", "limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [r["target_id"] for r in page["data"]] == [agents[4]["id"], agents[3]["id"]]
    second = await api.client.get(
        "/v1/audit-events",
        params={"action": "agents.create", "limit": 2, "before": page["next_cursor"]},
    )
    assert [r["target_id"] for r in second.json()["data"]] == [agents[2]["id"], agents[1]["id"]]
    one = await api.client.get("/v1/audit-events", params={"target_id": agents[0]["id"]})
    assert [r["action"] for r in one.json()["data"]] == ["agents.create"]
    future = await api.client.get("/v1/audit-events", params={"since": "2999-01-01T00:00:00Z"})
    assert future.json()["data"] == []
    assert_error(
        await api.client.get("/v1/audit-events", params={"since": "soon"}), 422, field="since"
    )
    assert_error(
        await api.client.get("/v1/audit-events", params={"before": "x"}), 422, field="before"
    )
    # A member may not read it.
    added = await api.client.post(f"/v1/orgs/{api.org_id}/members", json={"email": "m@example.com"})
    async with httpx.AsyncClient(
        transport=api.client._transport,
        base_url=str(api.client.base_url),
        headers={"Authorization": f"Bearer {added.json()['token']}"},
    ) as member:
        assert_error(await member.get("/v1/audit-events"), 403, "forbidden")


# The mutating routes without a path id (the cross-org matrix covers the others): a body that
# succeeds, given org A's world.
TOP_LEVEL: dict[tuple[str, str], Any] = {
    ("POST", "/v1/agent-identities"): lambda w: {"name": "audited-identity"},
    ("POST", "/v1/agents"): lambda w: {"name": "audited-agent", "system_prompt": "p"},
    ("POST", "/v1/agents/import"): lambda w: {
        "name": "audited-import",
        "system_prompt": "p",
    },
    ("POST", "/v1/auth/api-keys"): lambda w: {"name": "audited-key"},
    ("POST", "/v1/budgets"): lambda w: {
        "subject_type": "session",
        "subject_id": w["session_id"],
        "currency": "tokens",
        "limit": 5,
    },
    ("POST", "/v1/durable/schedules"): lambda w: {
        "name": "audited-schedule",
        "cron_expression": "0 9 * * *",
        "target": {
            "type": "workflow",
            "name": "session.run",
            "input": {"session_id": w["session_id"], "message": "tick"},
        },
    },
    ("POST", "/v1/harnesses"): lambda w: {"name": "audited-harness"},
    ("POST", "/v1/mcp-servers"): lambda w: {
        "name": "audited-tools",
        "url": "https://mcp.example.com/mcp",
    },
    ("POST", "/v1/memories"): lambda w: {"name": "audited-memory"},
    ("POST", "/v1/orgs"): lambda w: {"name": "Audited"},
    ("POST", "/v1/providers"): lambda w: {"name": "Audited", "driver": "llmsim"},
    ("POST", "/v1/sessions"): lambda w: {"title": "audited"},
    ("POST", "/v1/workspaces"): lambda w: {"name": "audited-workspace"},
    ("PATCH", "/v1/users/me"): lambda w: {"name": "Audited Admin"},
}


async def test_every_top_level_change_leaves_one_record_naming_what_it_made(api: Api) -> None:
    from everloop.api.access import ROUTES

    world: World = await build_world(api)
    mutating = {
        (m, p)
        for (m, p) in ROUTES
        if m != "GET" and "{" not in p and route_action(m, p) is not None
    }
    # Closing the caller's account is checked in test_orgs (it would end this test).
    assert mutating - set(TOP_LEVEL) == {("DELETE", "/v1/users/me")}
    wrong = []
    for (method, route), body in sorted(TOP_LEVEL.items()):
        before = await count(api)
        answer = await api.client.request(
            method, route, json=body(world), headers={"X-Org-Id": api.org_id}
        )
        assert answer.status_code < 300, (route, answer.text)
        found = (await records(api))[before:]
        if len(found) != 1:
            wrong.append((method, route, f"{len(found)} records"))
            continue
        made = answer.json().get("id")
        expected = made if route_action(method, route).created_prefix else None  # type: ignore[union-attr]
        if expected is not None and found[0]["target_id"] != expected:
            wrong.append((method, route, found[0]["target_id"], expected))
    assert wrong == [], wrong
