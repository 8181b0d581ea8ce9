"""The published ``everruns-sdk``, unchanged, against a real ``everloop serve`` (issue 2)."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from everruns_sdk import Everruns
from everruns_sdk.errors import ApiError
from everruns_sdk.models import (
    AgentCapabilityConfig,
    Budget,
    BudgetCheckResult,
    BudgetPeriod,
    CreateSessionRequest,
    LedgerEntry,
    ResumeSessionResponse,
    Session,
)

from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow

SEED_FIELDS = {
    "id",
    "organization_id",
    "harness_id",
    "agent_id",
    "agent_version_id",
    "agent_identity_id",
    "owner_principal_id",
    "resolved_owner_user_id",
    "owner",
    "effective_owner",
    "title",
    "locale",
    "preview",
    "output_preview",
    "tags",
    "model_id",
    "capabilities",
    "tools",
    "mcpServers",
    "system_prompt",
    "initial_files",
    "hints",
    "network_access",
    "max_iterations",
    "status",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "usage",
    "is_pinned",
    "active_schedule_count",
    "features",
    "parent_session_id",
    "subagent_name",
    "subagent_task",
    "subagent_status",
    "blueprint_id",
    "blueprint_config",
}


def sdk(server: Server) -> Everruns:
    return Everruns(api_key=server.token, base_url=server.api_url)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def test_agents_and_harnesses(server: Server) -> None:
    client = sdk(server)
    try:
        harness_name = unique("e2e-harness")
        harness = await client.harnesses.create(harness_name, "You test things.")
        assert harness.id.startswith("harness_") and harness.name == harness_name
        fetched_harness = await client.harnesses.get(harness.id)
        assert fetched_harness.id == harness.id
        assert fetched_harness.system_prompt == "You test things."

        agent_name = unique("e2e-agent")
        agent = await client.agents.create(
            agent_name, "You are terse.", harness_name=harness_name, tags=["e2e"]
        )
        assert agent.id.startswith("agent_") and agent.harness_id == harness.id
        fetched = await client.agents.get(agent.id)
        assert (fetched.name, fetched.system_prompt) == (agent_name, "You are terse.")
        assert agent.id in [a.id for a in await client.agents.list()]
        assert [a.id for a in await client.agents.list(search=agent_name)] == [agent.id]

        await client.agents.delete(agent.id)
        assert agent.id not in [a.id for a in await client.agents.list()]
    finally:
        await client.close()


async def test_sessions_crud_pin_and_seed_fields(server: Server) -> None:
    client = sdk(server)
    try:
        agent = await client.agents.create(unique("e2e-agent"), "You help.")
        session = await client.sessions.create(
            agent_id=agent.id, title="E2E session", tags=["e2e"], locale="uk-UA"
        )
        assert session.id.startswith("session_")
        fetched = await client.sessions.get(session.id)
        assert fetched.id == session.id and fetched.agent_id == agent.id
        assert fetched.title == "E2E session"
        listed = await client.sessions.list(agent_id=agent.id)
        assert [s.id for s in listed] == [session.id]
        assert session.id in [s.id for s in await client.sessions.list(search="e2e sess")]

        async with httpx.AsyncClient(
            base_url=f"{server.api_url}/v1/", headers=server.headers, timeout=30.0
        ) as raw:
            body = (await raw.get(f"sessions/{session.id}")).json()
            missing = SEED_FIELDS - set(body)
            assert not missing, f"session JSON lacks seed fields: {sorted(missing)}"
            assert body["is_pinned"] is False
            assert set(body["usage"]) >= {
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_creation_tokens",
            }
            for key in ("owner", "effective_owner"):
                assert set(body[key]) >= {"id", "kind", "subject_id"}, body[key]
            assert body["status"] == "started"

            await client.sessions.pin(session.id)
            assert (await raw.get(f"sessions/{session.id}")).json()["is_pinned"] is True
            await client.sessions.unpin(session.id)
            assert (await raw.get(f"sessions/{session.id}")).json()["is_pinned"] is False

            await client.sessions.delete(session.id)
            assert (await raw.get(f"sessions/{session.id}")).status_code == 404
        with pytest.raises(ApiError):
            await client.sessions.get(session.id)
    finally:
        await client.close()


async def test_a_session_with_an_agent_identity(server: Server) -> None:
    """An identity made through the HTTP API; a session naming it, through the SDK, reads back
    with it. ``sessions.create`` takes no ``agent_identity_id``, but its request model has the
    field: the session is posted as ``create`` posts it, with the SDK's own model."""
    async with httpx.AsyncClient(
        base_url=f"{server.api_url}/v1/", headers=server.headers, timeout=30.0
    ) as raw:
        response = await raw.post(
            "agent-identities", json={"name": unique("e2e-identity"), "timezone": "Europe/Vilnius"}
        )
        assert response.status_code == 201, response.text
        identity = response.json()
    client = sdk(server)
    try:
        request = CreateSessionRequest(agent_identity_id=identity["id"], title="Resident")
        session = Session(**await client._post("/sessions", request.model_dump(exclude_none=True)))
        assert session.agent_identity_id == identity["id"]
        fetched = await client.sessions.get(session.id)
        assert fetched.agent_identity_id == identity["id"]
        listed = {s.id: s for s in await client.sessions.list()}
        assert listed[session.id].agent_identity_id == identity["id"]

        unknown = "identity_" + secrets.token_hex(16)
        request = CreateSessionRequest(agent_identity_id=unknown)
        with pytest.raises(ApiError) as refused:
            await client._post("/sessions", request.model_dump(exclude_none=True))
        assert refused.value.status_code == 422
    finally:
        await client.close()


async def test_message_stream_until_turn_completed(server: Server, api: Api) -> None:
    model_id = await asyncio.to_thread(
        api.llmsim_model,
        {
            "response": {"type": "fixed", "text": "The sum is 5."},
            "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
            "latency_ms": 50,
        },
    )
    client = sdk(server)
    try:
        session = await client.sessions.create(
            model_id=model_id, capabilities=[AgentCapabilityConfig(ref="test_math")]
        )
        message = await client.messages.create(session.id, "please add 2 and 3")
        assert message.id.startswith("message_") and message.role == "user"

        seen: list[str] = []
        stream = client.events.stream(session.id)
        try:
            async with asyncio.timeout(60):
                async for event in stream:
                    assert event.session_id == session.id
                    seen.append(event.type)
                    if event.type == "turn.completed":
                        break
        finally:
            stream.stop()
            await stream.aclose()
        assert seen[0] == "session.started"
        assert {"input.message", "tool.completed", "output.message.completed"} <= set(seen)
        assert seen.count("turn.completed") == 1

        messages = await client.messages.list(session.id)
        roles = [m.role for m in messages]
        assert roles[0] == "user" and messages[0].id == message.id
        assert "tool_result" in roles
        assert roles[-1] == "agent"
        assert messages[-1].content[0].text == "The sum is 5."
        events = await client.events.list(session.id, types=["turn.completed"])
        assert len(events) == 1
    finally:
        await client.close()


async def test_a_subagent_session_through_the_sdk(server: Server, api: Api) -> None:
    """A parent spawns a child (llmsim); the SDK reads the child's seed fields, and its session
    list hides the child."""
    model_id = await asyncio.to_thread(
        api.llmsim_model,
        {
            "response": {"type": "echo"},
            "tool_calls": [
                {
                    "when": "delegate",
                    "name": "spawn_subagent",
                    "arguments": {"name": "researcher", "task": "research alpha"},
                }
            ],
        },
    )
    client = sdk(server)
    try:
        parent = await client.sessions.create(
            model_id=model_id, capabilities=[AgentCapabilityConfig(ref="subagents")]
        )
        await client.messages.create(parent.id, "please delegate this")
        stream = client.events.stream(parent.id)
        try:
            async with asyncio.timeout(60):
                async for event in stream:
                    if event.type == "turn.completed":
                        break
        finally:
            stream.stop()
            await stream.aclose()
        [spawned] = await client.events.list(parent.id, types=["subagent.spawned"])
        child_id = spawned.data["session_id"]

        child = await client.sessions.get(child_id)
        assert isinstance(child.parent_session_id, str)
        assert child.parent_session_id == parent.id
        assert (await client.sessions.get(parent.id)).parent_session_id is None
        # Fields the SDK's model does not declare, as the server sends them.
        raw = await client._get(f"/sessions/{child_id}")
        assert (raw["subagent_name"], raw["subagent_task"], raw["subagent_status"]) == (
            "researcher",
            "research alpha",
            "completed",
        )
        assert (await client._get(f"/sessions/{parent.id}"))["subagent_status"] is None
        listed = [s.id for s in await client.sessions.list()]
        assert parent.id in listed and child_id not in listed
        [task] = await client._get(f"/sessions/{parent.id}/tasks")
        assert (task["state"], task["links"]["child_session_id"]) == ("succeeded", child_id)
    finally:
        await client.close()


async def test_every_budget_method_of_the_sdk(server: Server) -> None:
    """``budgets.create/list/get/update/delete/top_up/ledger/check``, ``sessions.budgets``,
    ``sessions.budget_check`` and ``sessions.resume``, each answer parsed by the SDK's own
    models."""
    client = sdk(server)
    try:
        agent = await client.agents.create(unique("e2e-budgeted"), "You help.")
        session = await client.sessions.create(agent_id=agent.id)
        own = await client.budgets.create(
            "session",
            session.id,
            "tokens",
            1000,
            soft_limit=800,
            period={"type": "rolling", "window": "24h"},
            metadata={"team": "e2e"},
        )
        assert isinstance(own, Budget) and own.id.startswith("budget_")
        assert (own.subject_type, own.subject_id, own.status) == ("session", session.id, "active")
        assert (own.limit, own.soft_limit, own.balance) == (1000, 800, 1000)
        assert isinstance(own.period, BudgetPeriod)
        assert (own.period.type, own.period.window, own.period.seconds) == ("rolling", "24h", 86400)
        assert own.period_started_at is not None and own.metadata == {"team": "e2e"}
        org = await client.budgets.create(
            "organization",
            session.organization_id,
            "usd",
            25.0,
            period={"type": "calendar", "unit": "month"},
        )
        assert org.subject_type == "org" and org.period is not None
        assert org.period.unit == "month"
        by_agent = await client.budgets.create(
            "agent", agent.id, "credits", 50, period={"type": "duration", "seconds": 3600}
        )

        listed = await client.budgets.list()
        assert {b.id for b in listed} >= {own.id, org.id, by_agent.id}
        assert all(isinstance(b, Budget) for b in listed)
        filtered = await client.budgets.list(subject_type="session", subject_id=session.id)
        assert [b.id for b in filtered] == [own.id]
        fetched = await client.budgets.get(own.id)
        assert fetched == own

        paused = await client.budgets.update(own.id, limit=1200, status="paused")
        assert (paused.status, paused.limit, paused.balance) == ("paused", 1200, 1200)
        updated = await client.budgets.update(org.id, soft_limit=20.0, metadata={"k": 1})
        assert (updated.soft_limit, updated.metadata) == (20.0, {"k": 1})

        applicable = await client.sessions.budgets(session.id)
        assert {b.id for b in applicable} == {own.id, org.id, by_agent.id}
        verdict = await client.sessions.budget_check(session.id)
        assert isinstance(verdict, BudgetCheckResult)
        assert (verdict.action, verdict.budget_id) == ("pause", own.id)
        assert (verdict.error_code, verdict.currency) == ("budget_paused", "tokens")
        assert verdict.message and verdict.error_fields is not None
        resumed = await client.sessions.resume(session.id)
        assert isinstance(resumed, ResumeSessionResponse)
        assert (resumed.resumed_budgets, resumed.session_id) == (1, session.id)
        assert (await client.sessions.budget_check(session.id)).action == "continue"

        topped = await client.budgets.top_up(own.id, 300, description="e2e top-up")
        assert (topped.status, topped.balance) == ("active", 1500)
        await client.budgets.top_up(own.id, 0.5)
        entries = await client.budgets.ledger(own.id)
        assert all(isinstance(e, LedgerEntry) for e in entries)
        assert [(e.amount, e.meter_source, e.description) for e in entries] == [
            (-0.5, "top_up", None),
            (-300, "top_up", "e2e top-up"),
        ]
        assert [e.id for e in await client.budgets.ledger(own.id, limit=1, offset=1)] == [
            entries[1].id
        ]
        single = await client.budgets.check(own.id)
        assert isinstance(single, BudgetCheckResult)
        assert (single.action, single.budget_id, single.balance) == ("continue", own.id, 1500.5)

        with pytest.raises(ApiError) as refused:
            await client.budgets.create("session", session.id, "eur", 10)
        assert refused.value.status_code == 422
        with pytest.raises(ApiError) as refused:
            await client.budgets.top_up(own.id, -1)
        assert refused.value.status_code == 422

        await client.budgets.delete(by_agent.id)
        with pytest.raises(ApiError) as gone:
            await client.budgets.get(by_agent.id)
        assert gone.value.status_code == 404
        assert {b.id for b in await client.sessions.budgets(session.id)} == {own.id, org.id}
    finally:
        await client.close()
