"""Agent routes beside CRUD: copy, stats, analyze, and literal paths under ``/v1/agents/``
that must never be read as an agent id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from everloop import ids
from everloop.store.tables import turns
from tests.api.conftest import OtherOrg, assert_error, create_agent
from tests.conftest import Api
from tests.engine.conftest import send, wait_turns_ended


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


async def priced_model(api: Api, text: str) -> str:
    """An llmsim model answering ``text``, priced so every call has a cost."""
    providers = (await api.client.get("/v1/providers")).json()["data"]
    llmsim = next(p for p in providers if p["driver"] == "llmsim")
    created = await api.client.post(
        f"/v1/providers/{llmsim['id']}/models",
        json={
            "model_id": f"sim-{uuid.uuid4().hex[:8]}",
            "settings": {"llmsim": {"response": {"type": "fixed", "text": text}}},
            "profile": {"prices": {"input": 1.0, "output": 2.0}},
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def stats_of(api: Api, agent_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/agents/{agent_id}/stats")
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- literal paths ---------------------------------------------------------------------------


async def test_literal_paths_are_not_agent_ids(api: Api) -> None:
    analyzed = await api.client.post("/v1/agents/analyze", json={"system_prompt": "You help."})
    assert analyzed.status_code == 200, analyzed.text
    previewed = await api.client.post("/v1/agents/preview", json={"system_prompt": "You help."})
    assert previewed.status_code == 200, previewed.text


# -- analyze ---------------------------------------------------------------------------------


async def test_analyze_a_clean_draft_has_no_findings(api: Api) -> None:
    model = await priced_model(api, "hi")
    response = await api.client.post(
        "/v1/agents/analyze",
        json={
            "system_prompt": "You answer questions about the weather.",
            "default_model_id": model,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"findings": []}


async def test_analyze_reads_the_final_shape(api: Api) -> None:
    prompt = "Be brief.\n\nAnswer in French.\n\nBe brief."
    response = await api.client.post(
        "/v1/agents/analyze",
        json={
            "system_prompt": prompt,
            "capabilities": [{"ref": "current_time"}],
            "tools": [{"name": "lookup", "description": "", "parameters": {"type": "object"}}],
            "default_model_id": ids.new_id("model"),
        },
    )
    assert response.status_code == 200, response.text
    findings = {f["rule_id"]: f for f in response.json()["findings"]}
    assert set(findings) == {
        "prompt.duplicate_paragraphs",
        "tools.missing_description",
        "model.unavailable",
    }
    repeat = findings["prompt.duplicate_paragraphs"]
    start, end = repeat["location"]["start"], repeat["location"]["end"]
    assert prompt.encode()[start:end] == b"Be brief."
    assert (repeat["severity"], repeat["category"], repeat["source"]) == (
        "suggestion",
        "structure",
        "builtin",
    )
    assert "lookup" in findings["tools.missing_description"]["message"]


async def test_analyze_an_empty_prompt_and_bad_input(api: Api) -> None:
    response = await api.client.post("/v1/agents/analyze", json={"system_prompt": "  "})
    assert [f["rule_id"] for f in response.json()["findings"]] == ["prompt.empty"]
    missing = await api.client.post("/v1/agents/analyze", json={})
    assert_error(missing, 422, "validation_error", field="system_prompt")
    unknown = await api.client.post(
        "/v1/agents/analyze", json={"system_prompt": "p", "capabilities": [{"ref": "no_such"}]}
    )
    assert unknown.status_code == 422, unknown.text


# -- copy ------------------------------------------------------------------------------------


async def test_copy_makes_a_new_agent_with_the_same_configuration(api: Api) -> None:
    tool = {"name": "lookup", "description": "Looks up.", "parameters": {"type": "object"}}
    source = await create_agent(
        api,
        "original",
        display_name="Original",
        description="d",
        tags=["x"],
        tools=[tool],
        capabilities=[{"ref": "current_time"}],
        harness_name="base",
        max_iterations=5,
    )
    response = await api.client.post(f"/v1/agents/{source['id']}/copy", json={})
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["id"] != source["id"]
    assert (copy["name"], copy["display_name"]) == ("original-copy", "Original (copy)")
    same = {"id", "name", "display_name", "created_at", "updated_at", "default_version_id"}
    assert {k: v for k, v in copy.items() if k not in same} == {
        k: v for k, v in source.items() if k not in same
    }
    again = await api.client.post(f"/v1/agents/{source['id']}/copy", json={})
    assert again.json()["name"] == "original-copy-2"
    assert (await api.client.get(f"/v1/agents/{copy['id']}")).json() == copy


async def test_copy_keeps_mcp_header_names_sealed(api: Api) -> None:
    servers = {"docs": {"url": "http://127.0.0.1:9/mcp", "headers": {"X-Key": "secret"}}}
    source = await create_agent(api, "with-mcp", mcpServers=servers)
    copy = (await api.client.post(f"/v1/agents/{source['id']}/copy", json={})).json()
    assert copy["mcpServers"] == source["mcpServers"]
    assert "secret" not in str(copy)


async def test_copy_of_another_orgs_agent_is_404(api: Api, other_org: OtherOrg) -> None:
    source = await create_agent(api, "mine")
    response = await other_org.client.post(f"/v1/agents/{source['id']}/copy", json={})
    assert_error(response, 404, "not_found")
    assert_error(
        await api.client.post(f"/v1/agents/{ids.new_id('agent')}/copy", json={}), 404, "not_found"
    )
    listed = (await api.client.get("/v1/agents")).json()
    assert listed["total"] == 1


# -- stats -----------------------------------------------------------------------------------


async def test_stats_of_an_agent_without_sessions(api: Api) -> None:
    agent = await create_agent(api, "unused")
    stats = await stats_of(api, agent["id"])
    assert stats["session_count"] == 0
    assert stats["execution_count"] == 0
    assert stats["avg_session_duration_ms"] is None
    assert stats["first_session_at"] is None
    assert stats["last_execution_at"] is None
    assert stats["total_estimated_cost_usd"] == 0.0


async def test_stats_count_sessions_turns_tokens_and_cost(engine: Api) -> None:
    api = engine
    model = await priced_model(api, "a short answer")
    agent = await create_agent(api, "counted", default_model_id=model)
    other = await create_agent(api, "other", default_model_id=model)
    ran = (await api.client.post("/v1/sessions", json={"agent_id": agent["id"]})).json()
    idle = (await api.client.post("/v1/sessions", json={"agent_id": agent["id"]})).json()
    elsewhere = (await api.client.post("/v1/sessions", json={"agent_id": other["id"]})).json()
    for session_id in (ran["id"], ran["id"], elsewhere["id"]):
        await send(api, session_id, "hello")
    await wait_turns_ended(api, ran["id"], count=2)
    await wait_turns_ended(api, elsewhere["id"])

    stats = await stats_of(api, agent["id"])
    sessions = {s["id"]: s for s in (await api.client.get("/v1/sessions")).json()["data"]}
    generations = [
        e
        for e in (await api.client.get(f"/v1/sessions/{ran['id']}/events")).json()["data"]
        if e["type"] == "llm.generation"
    ]
    usage = sessions[ran["id"]]["usage"]
    assert stats["session_count"] == 2
    assert stats["started_session_count"] == 1
    assert stats["execution_count"] == 2
    statuses = [sessions[ran["id"]]["status"], sessions[idle["id"]]["status"]]
    assert stats["idle_session_count"] == statuses.count("idle")
    assert stats["active_session_count"] == statuses.count("active")
    assert stats["total_input_tokens"] == usage["input_tokens"] > 0
    assert stats["total_output_tokens"] == usage["output_tokens"] > 0
    expected_cost = sum(g["data"]["metadata"]["estimated_cost_usd"] for g in generations)
    assert len(generations) == 2
    assert stats["total_estimated_cost_usd"] == stats["total_cost_usd"] == expected_cost > 0
    assert expected_cost == (usage["input_tokens"] * 1.0 + usage["output_tokens"] * 2.0) / 1e6
    assert stats["first_session_at"] == ran["created_at"]
    assert stats["last_session_at"] == idle["created_at"]
    assert stats["last_execution_at"] is not None
    assert stats["last_execution_at"] >= ran["created_at"]
    assert stats["total_session_duration_ms"] >= 0
    assert stats["avg_session_duration_ms"] == stats["total_session_duration_ms"] // 2

    other_stats = await stats_of(api, other["id"])
    assert (other_stats["session_count"], other_stats["execution_count"]) == (1, 1)


async def test_stats_duration_runs_to_the_last_finished_turn(engine: Api) -> None:
    api = engine
    model = await priced_model(api, "ok")
    agent = await create_agent(api, "timed", default_model_id=model)
    session = (await api.client.post("/v1/sessions", json={"agent_id": agent["id"]})).json()
    await send(api, session["id"], "hello")
    await wait_turns_ended(api, session["id"])
    async with api.services.db.read() as conn:
        finished_at = (
            await conn.execute(
                select(turns.c.finished_at).where(turns.c.session_id == session["id"])
            )
        ).scalar_one()
    stats = await stats_of(api, agent["id"])
    span = datetime.fromisoformat(finished_at) - datetime.fromisoformat(session["created_at"])
    assert stats["total_session_duration_ms"] == int(span.total_seconds() * 1000)
    assert stats["avg_session_duration_ms"] == stats["total_session_duration_ms"]


async def test_stats_of_another_orgs_agent_is_404(api: Api, other_org: OtherOrg) -> None:
    agent = await create_agent(api, "private")
    assert_error(await other_org.client.get(f"/v1/agents/{agent['id']}/stats"), 404, "not_found")
    assert_error(await api.client.get("/v1/agents/agent_bad/stats"), 422, "invalid_id")
