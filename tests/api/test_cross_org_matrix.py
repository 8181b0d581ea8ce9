"""Every route with a path id, against another org and against unknown ids (issue 13, item 14).

The routes come from the app itself (``iter_route_contexts(app.routes)``), so a new route with a
path parameter fails ``test_every_route_with_a_path_id_has_a_case`` until it gets a row in
``CASES`` (its request body) and, for a new kind of path parameter, a way to make its object in
``build_world``. For every route and method:

- org B's token on org A's objects gets 404, and nothing is written anywhere (the whole
  database is compared before and after);
- org A's own token with each ``*_id`` replaced by a well-formed unknown id gets 404.

A route that names something in the caller's own namespace (``/v1/user/connections/{provider}``:
a provider of the caller's connections) has no object of org A to aim at: the other org's
``POST`` sets its own connection, and the check is that org A's rows stay as they were.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import select

from everloop.store.tables import metadata
from tests.api.conftest import OtherOrg, assert_error, create_agent
from tests.conftest import Api
from tests.engine.conftest import new_session, scripted_model, send, wait_turns_ended

World = dict[str, str]  # path parameter -> the value naming org A's object
Body = Callable[[World], dict[str, Any]] | None


@dataclass(frozen=True)
class Case:
    """How to call one route: its body (from org A's objects), and whether a PUT to an unknown
    id creates the object instead of answering 404."""

    body: Body = None
    creates_when_unknown: bool = False
    callers_own: bool = False


def fixed(value: dict[str, Any]) -> Body:
    return lambda _world: value


MESSAGE = {"message": {"role": "user", "content": [{"type": "text", "text": "hello"}]}}

# Every (method, path template) of the app that has a path parameter.
CASES: dict[tuple[str, str], Case] = {
    ("GET", "/api/v1/sessions/{session_id}/context-report"): Case(),
    ("GET", "/api/v1/agents/{agent_id}/versions"): Case(),
    ("POST", "/api/v1/agents/{agent_id}/versions"): Case(fixed({"summary": "theirs"})),
    ("POST", "/api/v1/agents/{agent_id}/versions/default"): Case(
        lambda w: {"version_id": w["from_version_id"]}
    ),
    ("GET", "/api/v1/agents/{agent_id}/versions/{from_version_id}/diff/{to_version_id}"): Case(),
    ("POST", "/api/v1/agents/{agent_id}/versions/{version_id}/rollback"): Case(fixed({})),
    ("POST", "/api/v1/agents/{agent_id}/versions/{version_id}/fork"): Case(
        fixed({"name": "stolen-fork"})
    ),
    ("POST", "/api/v1/agents/{agent_id}/health-checks"): Case(fixed({})),
    ("GET", "/api/v1/agents/{agent_id}/health-checks"): Case(),
    ("GET", "/api/v1/agents/{agent_id}/health-checks/latest"): Case(),
    ("GET", "/api/v1/agents/{agent_id}/health-checks/{run_id}"): Case(),
    ("GET", "/api/v1/blueprints/{blueprint_id}"): Case(),
    ("GET", "/api/v1/harnesses/{harness_id}"): Case(),
    ("PATCH", "/api/v1/harnesses/{harness_id}"): Case(fixed({"description": "theirs"})),
    ("DELETE", "/api/v1/harnesses/{harness_id}"): Case(),
    ("GET", "/api/v1/agents/{agent_id}"): Case(),
    ("PUT", "/api/v1/agents/{agent_id}"): Case(
        fixed({"name": "hijack", "system_prompt": "p"}), creates_when_unknown=True
    ),
    ("PATCH", "/api/v1/agents/{agent_id}"): Case(fixed({"description": "theirs"})),
    ("DELETE", "/api/v1/agents/{agent_id}"): Case(),
    ("POST", "/api/v1/agents/{agent_id}/copy"): Case(fixed({})),
    ("GET", "/api/v1/agents/{agent_id}/stats"): Case(),
    ("GET", "/api/v1/agents/{agent_id}/export"): Case(),
    ("GET", "/api/v1/sessions/{session_id}"): Case(),
    ("PATCH", "/api/v1/sessions/{session_id}"): Case(fixed({"title": "theirs"})),
    ("DELETE", "/api/v1/sessions/{session_id}"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/export"): Case(),
    ("POST", "/api/v1/sessions/{session_id}/fork"): Case(fixed({"title": "theirs"})),
    ("PUT", "/api/v1/sessions/{session_id}/pin"): Case(),
    ("DELETE", "/api/v1/sessions/{session_id}/pin"): Case(),
    ("GET", "/api/v1/providers/{provider_id}"): Case(),
    ("PATCH", "/api/v1/providers/{provider_id}"): Case(fixed({"name": "theirs"})),
    ("DELETE", "/api/v1/providers/{provider_id}"): Case(),
    ("GET", "/api/v1/providers/{provider_id}/models"): Case(),
    ("POST", "/api/v1/providers/{provider_id}/models"): Case(fixed({"model_id": "theirs"})),
    ("GET", "/api/v1/models/{model_id}"): Case(),
    ("PATCH", "/api/v1/models/{model_id}"): Case(fixed({"display_name": "theirs"})),
    ("DELETE", "/api/v1/models/{model_id}"): Case(),
    ("POST", "/api/v1/sessions/{session_id}/messages"): Case(fixed(MESSAGE)),
    ("GET", "/api/v1/sessions/{session_id}/messages"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/events"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/sse"): Case(),
    ("POST", "/api/v1/sessions/{session_id}/tool-results"): Case(
        fixed({"tool_results": [{"tool_call_id": "call_1", "result": "x"}]})
    ),
    ("POST", "/api/v1/sessions/{session_id}/cancel"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/pending-input"): Case(),
    ("POST", "/api/v1/sessions/{session_id}/question-answers"): Case(
        fixed({"tool_call_id": "call_1", "answers": [{"question_id": "q1", "answer": "x"}]})
    ),
    ("POST", "/api/v1/sessions/{session_id}/tool-approvals"): Case(
        fixed({"decisions": [{"tool_call_id": "call_1", "approved": True}]})
    ),
    ("GET", "/api/v1/sessions/{session_id}/tasks"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/tasks/{task_id}"): Case(),
    ("POST", "/api/v1/sessions/{session_id}/tasks/{task_id}/cancel"): Case(),
    ("POST", "/api/v1/sessions/{session_id}/tasks/{task_id}/messages"): Case(
        fixed({"text": "theirs"})
    ),
    ("GET", "/api/v1/capabilities/{capability_id}"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/databases"): Case(),
    ("POST", "/api/v1/sessions/{session_id}/databases"): Case(fixed({"name": "theirs"})),
    ("GET", "/api/v1/sessions/{session_id}/databases/{name}"): Case(),
    ("DELETE", "/api/v1/sessions/{session_id}/databases/{name}"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/databases/{name}/schema"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/fs"): Case(),
    ("POST", "/api/v1/sessions/{session_id}/fs/_/stat"): Case(fixed({"path": "/notes.txt"})),
    ("POST", "/api/v1/sessions/{session_id}/fs/_/grep"): Case(fixed({"pattern": "hi"})),
    ("POST", "/api/v1/sessions/{session_id}/fs/_/move"): Case(
        fixed({"src_path": "/notes.txt", "dst_path": "/moved.txt"})
    ),
    ("POST", "/api/v1/sessions/{session_id}/fs/_/copy"): Case(
        fixed({"src_path": "/notes.txt", "dst_path": "/copied.txt"})
    ),
    ("GET", "/api/v1/sessions/{session_id}/fs/_/download/{path:path}"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/fs/_/preview/{path:path}"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/fs/{path:path}"): Case(),
    ("POST", "/api/v1/sessions/{session_id}/fs/{path:path}"): Case(fixed({"content": "theirs"})),
    ("PUT", "/api/v1/sessions/{session_id}/fs/{path:path}"): Case(fixed({"content": "theirs"})),
    ("DELETE", "/api/v1/sessions/{session_id}/fs/{path:path}"): Case(),
    ("GET", "/api/v1/memories/{memory_id}"): Case(),
    ("PATCH", "/api/v1/memories/{memory_id}"): Case(fixed({"description": "theirs"})),
    ("DELETE", "/api/v1/memories/{memory_id}"): Case(),
    ("POST", "/api/v1/memories/{memory_id}/sync"): Case(fixed({})),
    ("GET", "/api/v1/memories/{memory_id}/fs"): Case(),
    ("GET", "/api/v1/memories/{memory_id}/fs/_/download/{path:path}"): Case(),
    ("POST", "/api/v1/memories/{memory_id}/fs/_/grep"): Case(fixed({"pattern": "hi"})),
    ("POST", "/api/v1/memories/{memory_id}/fs/_/stat"): Case(fixed({"path": "/notes.txt"})),
    ("GET", "/api/v1/memories/{memory_id}/fs/{path:path}"): Case(),
    ("POST", "/api/v1/memories/{memory_id}/fs/{path:path}"): Case(fixed({"content": "theirs"})),
    ("PUT", "/api/v1/memories/{memory_id}/fs/{path:path}"): Case(fixed({"content": "theirs"})),
    ("DELETE", "/api/v1/memories/{memory_id}/fs/{path:path}"): Case(),
    ("GET", "/api/v1/workspaces/{workspace_id}"): Case(),
    ("PATCH", "/api/v1/workspaces/{workspace_id}"): Case(fixed({"description": "theirs"})),
    ("DELETE", "/api/v1/workspaces/{workspace_id}"): Case(),
    ("GET", "/api/v1/workspaces/{workspace_id}/fs"): Case(),
    ("POST", "/api/v1/workspaces/{workspace_id}/fs/_/stat"): Case(fixed({"path": "/notes.txt"})),
    ("POST", "/api/v1/workspaces/{workspace_id}/fs/_/grep"): Case(fixed({"pattern": "hi"})),
    ("POST", "/api/v1/workspaces/{workspace_id}/fs/_/move"): Case(
        fixed({"src_path": "/notes.txt", "dst_path": "/moved.txt"})
    ),
    ("POST", "/api/v1/workspaces/{workspace_id}/fs/_/copy"): Case(
        fixed({"src_path": "/notes.txt", "dst_path": "/copied.txt"})
    ),
    ("GET", "/api/v1/workspaces/{workspace_id}/fs/_/download/{path:path}"): Case(),
    ("GET", "/api/v1/workspaces/{workspace_id}/fs/_/preview/{path:path}"): Case(),
    ("GET", "/api/v1/workspaces/{workspace_id}/fs/{path:path}"): Case(),
    ("POST", "/api/v1/workspaces/{workspace_id}/fs/{path:path}"): Case(
        fixed({"content": "theirs"})
    ),
    ("PUT", "/api/v1/workspaces/{workspace_id}/fs/{path:path}"): Case(fixed({"content": "theirs"})),
    ("DELETE", "/api/v1/workspaces/{workspace_id}/fs/{path:path}"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/storage/keys"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/storage/secrets"): Case(),
    ("PUT", "/api/v1/sessions/{session_id}/storage/secrets"): Case(
        fixed({"secrets": {"THEIRS": "x"}})
    ),
    ("GET", "/api/v1/sessions/{session_id}/resources"): Case(),
    ("GET", "/api/v1/mcp-servers/{server_id}"): Case(),
    ("PATCH", "/api/v1/mcp-servers/{server_id}"): Case(fixed({"description": "theirs"})),
    ("DELETE", "/api/v1/mcp-servers/{server_id}"): Case(),
    ("GET", "/api/v1/agent-identities/{identity_id}"): Case(),
    ("PATCH", "/api/v1/agent-identities/{identity_id}"): Case(fixed({"display_name": "theirs"})),
    ("DELETE", "/api/v1/agent-identities/{identity_id}"): Case(),
    ("GET", "/api/v1/durable/schedules/{schedule_id}"): Case(),
    ("PATCH", "/api/v1/durable/schedules/{schedule_id}"): Case(fixed({"description": "theirs"})),
    ("DELETE", "/api/v1/durable/schedules/{schedule_id}"): Case(),
    ("POST", "/api/v1/durable/schedules/{schedule_id}/pause"): Case(),
    ("POST", "/api/v1/durable/schedules/{schedule_id}/resume"): Case(),
    ("POST", "/api/v1/durable/schedules/{schedule_id}/trigger"): Case(),
    ("GET", "/api/v1/durable/schedules/{schedule_id}/executions"): Case(),
    ("GET", "/api/v1/durable/schedules/{schedule_id}/stats"): Case(),
    ("GET", "/api/v1/budgets/{budget_id}"): Case(),
    ("PATCH", "/api/v1/budgets/{budget_id}"): Case(fixed({"metadata": {"theirs": True}})),
    ("DELETE", "/api/v1/budgets/{budget_id}"): Case(),
    ("POST", "/api/v1/budgets/{budget_id}/top-up"): Case(fixed({"amount": 5})),
    ("GET", "/api/v1/budgets/{budget_id}/ledger"): Case(),
    ("GET", "/api/v1/budgets/{budget_id}/check"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/budgets"): Case(),
    ("GET", "/api/v1/sessions/{session_id}/budget-check"): Case(),
    ("POST", "/api/v1/sessions/{session_id}/resume"): Case(fixed({})),
    ("DELETE", "/api/v1/auth/api-keys/{key_id}"): Case(),
    ("POST", "/api/v1/agents/{agent_id}/channels"): Case(fixed({})),
    ("GET", "/api/v1/agents/{agent_id}/channels"): Case(),
    ("GET", "/api/v1/agents/{agent_id}/channels/{channel_id}"): Case(),
    ("DELETE", "/api/v1/agents/{agent_id}/channels/{channel_id}"): Case(),
    ("POST", "/api/v1/agents/{agent_id}/keys"): Case(fixed({"name": "theirs"})),
    ("GET", "/api/v1/agents/{agent_id}/keys"): Case(),
    ("DELETE", "/api/v1/agents/{agent_id}/keys/{agent_key_id}"): Case(),
    # The Agent Execution API, with a member's token (the world's channel allows members); its
    # {session_id} is the world's session made through the channel (``world_for``).
    ("GET", "/api/v1/channels/{channel_id}"): Case(),
    ("POST", "/api/v1/channels/{channel_id}/sessions"): Case(fixed({})),
    ("GET", "/api/v1/channels/{channel_id}/sessions"): Case(),
    ("GET", "/api/v1/channels/{channel_id}/sessions/{session_id}"): Case(),
    ("POST", "/api/v1/channels/{channel_id}/sessions/{session_id}/messages"): Case(fixed(MESSAGE)),
    ("POST", "/api/v1/channels/{channel_id}/sessions/{session_id}/cancel"): Case(),
    ("GET", "/api/v1/channels/{channel_id}/sessions/{session_id}/events"): Case(),
    ("GET", "/api/v1/channels/{channel_id}/sessions/{session_id}/sse"): Case(),
    ("POST", "/api/v1/channels/{channel_id}/sessions/{session_id}/question-answers"): Case(
        fixed({"tool_call_id": "call_1", "answers": [{"question_id": "q1", "answer": "x"}]})
    ),
    ("POST", "/api/v1/channels/{channel_id}/sessions/{session_id}/tool-approvals"): Case(
        fixed({"decisions": [{"tool_call_id": "call_1", "approved": True}]})
    ),
    ("POST", "/api/v1/channels/{channel_id}/runtime-auth"): Case(),
    ("DELETE", "/api/v1/admin/api-keys/{key_id}"): Case(),
    ("GET", "/api/v1/orgs/{org_id}"): Case(),
    ("PATCH", "/api/v1/orgs/{org_id}"): Case(fixed({"name": "theirs"})),
    ("GET", "/api/v1/orgs/{org_id}/members"): Case(),
    ("POST", "/api/v1/orgs/{org_id}/members"): Case(fixed({"email": "thief@example.com"})),
    ("PATCH", "/api/v1/orgs/{org_id}/members/{user_id}"): Case(fixed({"role": "admin"})),
    ("DELETE", "/api/v1/orgs/{org_id}/members/{user_id}"): Case(),
    ("POST", "/api/v1/user/connections/{provider}"): Case(
        fixed({"api_key": "theirs-key"}), creates_when_unknown=True, callers_own=True
    ),
    ("DELETE", "/api/v1/user/connections/{provider}"): Case(),
}

# Catalogs every org shares (built in, or loaded from the blueprints dir): no org owns their
# entries, so only the unknown-id half applies to them.
SHARED = {"blueprint_id", "capability_id"}
# Path parameters that name something inside an object (a database, a file): unknown values of
# these are a matter of the route (a PUT creates a file); the owning id is what the matrix varies.
INNER = {"name", "path"}

_PARAM = re.compile(r"{([a-z_]+)(?::path)?}")
_TYPED_ID = re.compile(r"^([a-z]+)_([0-9a-f]{32})$")


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path template) of the app with a path parameter."""
    found = set()
    for route in iter_route_contexts(app.routes):
        path = route.path
        if path and "{" in path:
            found.update((method, path) for method in route.methods or () if method != "HEAD")
    return found


def params_of(path: str) -> list[str]:
    return _PARAM.findall(path)


def world_for(template: str, world: World) -> World:
    """The world as a route sees it: a channel's sessions are the channel's own."""
    if template.startswith("/api/v1/channels/"):
        return {**world, "session_id": world["channel_session_id"]}
    if "/fs/_/preview/" in template:  # previews serve HTML files only
        return {**world, "path": "page.html"}
    return world


def fill(path: str, world: World) -> str:
    return _PARAM.sub(lambda m: world[m.group(1)], path).removeprefix("/api")


def unknown(value: str) -> str:
    """A well-formed id (or name) that names nothing."""
    typed = _TYPED_ID.match(value)
    if typed:
        prefix, hex_ = typed.groups()
        return f"{prefix}_{hex_[:-6]}{'0' if hex_[-6] != '0' else '1'}{hex_[-5:]}"
    return f"no-such-{value}"


async def build_world(api: Api) -> World:
    """Org A's objects: one of each kind a path parameter can name, and a finished turn that
    spawned a subagent (the session's task)."""
    client = api.client
    await api.services.start_engine()
    spawn = {"name": "spawn_subagent", "arguments": {"name": "helper", "task": "research"}}
    model = await scripted_model(
        api,
        {"response": {"type": "fixed", "text": "hi"}, "tool_calls": [{"when": "hello", **spawn}]},
    )
    session = await new_session(api, model_id=model, capabilities=[{"ref": "subagents"}])
    await send(api, session, "hello")
    await wait_turns_ended(api, session)
    [task] = (await client.get(f"/v1/sessions/{session}/tasks")).json()

    async def created(response: Any) -> Any:
        answer = await response
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    health_check = {
        "ref": "health_check",
        "config": {"cases": [{"name": "hi", "user_message": "hello", "rubric": "Greets."}]},
    }
    agent = await create_agent(api, "matrix-agent", capabilities=[health_check])
    # A finished health-check run: nothing of it is still writing when the matrix compares.
    run = await created(client.post(f"/v1/agents/{agent['id']}/health-checks", json={}))
    await asyncio.wait_for(api.services.health_check_runner.settled(run["id"]), 60)
    await created(client.patch(f"/v1/agents/{agent['id']}", json={"description": "v2"}))
    versions = await created(client.get(f"/v1/agents/{agent['id']}/versions"))
    assert len(versions) >= 2, versions
    harness = await created(client.post("/v1/harnesses", json={"name": "matrix-harness"}))
    provider = await created(
        client.post("/v1/providers", json={"name": "Matrix", "driver": "llmsim"})
    )
    server = await created(
        client.post("/v1/mcp-servers", json={"name": "tools", "url": "https://mcp.example.com/mcp"})
    )
    key = await created(client.post("/v1/auth/api-keys", json={"name": "matrix"}))
    identity = await created(client.post("/v1/agent-identities", json={"name": "matrix"}))
    schedule = await created(
        client.post(
            "/v1/durable/schedules",
            json={
                "name": "matrix",
                "cron_expression": "0 9 * * *",
                "target": {
                    "type": "workflow",
                    "name": "session.run",
                    "input": {"session_id": session, "message": "tick"},
                },
            },
        )
    )
    budget = await created(
        client.post(
            "/v1/budgets",
            json={"subject_type": "session", "subject_id": session, "currency": "usd", "limit": 5},
        )
    )
    await created(client.post(f"/v1/sessions/{session}/databases", json={"name": "notes"}))
    await created(client.post(f"/v1/sessions/{session}/fs/notes.txt", json={"content": "hi"}))
    await created(client.post(f"/v1/sessions/{session}/fs/page.html", json={"content": "<p>"}))
    workspace = await created(client.post("/v1/workspaces", json={"name": "matrix"}))
    for name, content in (("notes.txt", "hi"), ("page.html", "<p>")):
        await created(
            client.post(f"/v1/workspaces/{workspace['id']}/fs/{name}", json={"content": content})
        )
    await created(
        client.put(f"/v1/sessions/{session}/storage/secrets", json={"secrets": {"MINE": "x"}})
    )
    await created(client.post("/v1/user/connections/daytona", json={"api_key": "mine-key"}))
    blueprint = (await created(client.get("/v1/blueprints")))["data"][0]["id"]
    channel = await created(
        client.post(f"/v1/agents/{agent['id']}/channels", json={"allow_member_tokens": True})
    )
    agent_key = await created(client.post(f"/v1/agents/{agent['id']}/keys", json={"name": "m"}))
    channel_session = await created(client.post(f"/v1/channels/{channel['id']}/sessions", json={}))
    member = await created(
        client.post(f"/v1/orgs/{api.org_id}/members", json={"email": "matrix@example.com"})
    )
    memory = await created(client.post("/v1/memories", json={"name": "matrix-memory"}))
    await created(client.post(f"/v1/memories/{memory['id']}/fs/notes.txt", json={"content": "hi"}))
    return {
        "session_id": session,
        "task_id": task["id"],
        "agent_id": agent["id"],
        "version_id": versions[-1]["id"],
        "from_version_id": versions[-1]["id"],
        "to_version_id": versions[0]["id"],
        "harness_id": harness["id"],
        "provider_id": provider["id"],
        "model_id": model,
        "server_id": server["id"],
        "key_id": key["id"],
        "identity_id": identity["id"],
        "schedule_id": schedule["id"],
        "budget_id": budget["id"],
        "blueprint_id": blueprint,
        "capability_id": "current_time",
        "name": "notes",
        "path": "notes.txt",
        "provider": "daytona",
        "channel_id": channel["id"],
        "agent_key_id": agent_key["id"],
        "channel_session_id": channel_session["id"],
        "memory_id": memory["id"],
        "workspace_id": workspace["id"],
        "run_id": run["id"],
        "org_id": api.org_id,
        "user_id": member["user_id"],
    }


async def snapshot(api: Api) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the executors' heartbeats, in a stable order."""
    rows = {}
    async with api.services.db.read() as conn:
        for table in metadata.sorted_tables:
            if table.name == "workers":
                continue
            found = await conn.execute(select(table))
            rows[table.name] = sorted((tuple(r) for r in found), key=repr)
    return rows


async def call(
    client: httpx.AsyncClient, method: str, path: str, case: Case, world: World
) -> httpx.Response:
    body = case.body(world) if case.body is not None else None
    # A stream answered with 200 would never end: that is a leak too, and fails here.
    return await asyncio.wait_for(client.request(method, path, json=body), timeout=15)


@pytest.fixture
async def world(api: Api) -> AsyncIterator[World]:
    yield await build_world(api)


def test_every_route_with_a_path_id_has_a_case(api: Api) -> None:
    routes = app_routes(_app(api))
    missing = sorted(routes - set(CASES))
    assert missing == [], (
        f"routes without a cross-org case: {missing}. Add each to CASES in {__file__} (with a "
        "valid request body), and teach build_world to create the object of any new path "
        "parameter: every route must answer 404 to another org and to unknown ids."
    )
    stale = sorted(set(CASES) - routes)
    assert stale == [], f"CASES names routes the app does not have: {stale}"
    for _method, path in routes:
        for param in params_of(path):
            assert param in WORLD_PARAMS, f"build_world makes nothing for {{{param}}} of {path}"


WORLD_PARAMS = {
    "workspace_id",
    "session_id",
    "task_id",
    "agent_id",
    "version_id",
    "from_version_id",
    "to_version_id",
    "harness_id",
    "provider_id",
    "model_id",
    "server_id",
    "key_id",
    "identity_id",
    "schedule_id",
    "budget_id",
    "blueprint_id",
    "capability_id",
    "name",
    "path",
    "provider",
    "channel_id",
    "agent_key_id",
    "memory_id",
    "run_id",
    "org_id",
    "user_id",
}


def _app(api: Api) -> FastAPI:
    app = api.client._transport.app  # type: ignore[attr-defined]
    assert isinstance(app, FastAPI)
    return app


def _not_found(response: httpx.Response) -> bool:
    """A 404 of the route itself: not the router's 'no such route' (a wrong path here)."""
    if response.status_code != 404:
        return False
    assert "no such route" not in assert_error(response, 404, "not_found")["message"]
    return True


async def test_another_org_gets_404_on_every_route_and_writes_nothing(
    api: Api, other_org: OtherOrg, world: World
) -> None:
    # Control: org A itself reads every object the matrix names (streams aside).
    for (method, template), case in sorted(CASES.items()):
        if method == "GET" and not template.endswith("/sse"):
            path = fill(template, world_for(template, world))
            mine = await call(api.client, method, path, case, world)
            assert mine.status_code == 200, f"{template}: {mine.status_code} {mine.text}"
    before = await snapshot(api)
    leaks = []
    for (method, template), case in sorted(CASES.items()):
        if SHARED & set(params_of(template)) or case.callers_own:
            continue
        path = fill(template, world_for(template, world))
        response = await call(other_org.client, method, path, case, world)
        if not _not_found(response):
            leaks.append(f"{method} {template}: {response.status_code} {response.text[:200]}")
    assert leaks == []
    assert await snapshot(api) == before
    # The caller's own namespace: org B writes its own rows only.
    for (method, template), case in sorted(CASES.items()):
        if case.callers_own:
            response = await call(other_org.client, method, fill(template, world), case, world)
            assert response.status_code < 300, f"{template}: {response.text}"
    after = await snapshot(api)
    own = ("user_connections", "audit_events")  # org B's connection, and its audit record
    assert {t: r for t, r in after.items() if t not in own} == {
        t: r for t, r in before.items() if t not in own
    }
    mine = [r for r in after["user_connections"] if r[0] == api.org_id]
    assert mine == before["user_connections"] and len(mine) == 1
    assert [r for r in after["audit_events"] if r[1] == api.org_id] == before["audit_events"]
    theirs = [r for r in after["audit_events"] if r[1] == other_org.organization_id]
    assert len(theirs) == sum(1 for case in CASES.values() if case.callers_own)


async def test_unknown_ids_are_404_on_every_route(api: Api, world: World) -> None:
    wrong = []
    for (method, template), case in sorted(CASES.items()):
        for param in params_of(template):
            if param in INNER:
                continue
            if case.creates_when_unknown and param == params_of(template)[-1]:
                continue
            before = await snapshot(api)
            seen = world_for(template, world)
            path = fill(template, {**seen, param: unknown(seen[param])})
            response = await call(api.client, method, path, case, world)
            if not _not_found(response):
                wrong.append(
                    f"{method} {template} with unknown {param}: "
                    f"{response.status_code} {response.text[:200]}"
                )
            elif await snapshot(api) != before:
                wrong.append(f"{method} {template} with unknown {param}: 404 but wrote")
    assert wrong == []
