"""Agents with the published ``everruns-sdk`` against a real ``everloop serve``: upsert by name,
copy, stats, analyze, export and import, the agent and harness example galleries; every answer
parsed by the SDK's own models."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from everruns_sdk import Everruns
from everruns_sdk.errors import ApiError
from everruns_sdk.models import (
    Agent,
    AgentAnalysisResponse,
    AgentCapabilityConfig,
    HarnessExample,
    ResourceStats,
    ToolDefinition,
)

from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def test_apply_by_name_creates_then_updates(server: Server) -> None:
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        name = unique("dad-jokes")
        first = await client.agents.apply_by_name(name, "Tell a dad joke.", tags=["fun"])
        second = await client.agents.apply_by_name(name, "Tell two dad jokes.", tags=["fun"])
        assert isinstance(second, Agent)
        assert second.id == first.id
        assert second.system_prompt == "Tell two dad jokes."
        assert [a.id for a in await client.agents.list(search=name)] == [first.id]


async def test_copy_export_import(server: Server) -> None:
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        name = unique("portable")
        tool = ToolDefinition(name="lookup", description="Looks up.", parameters={"type": "object"})
        agent = await client.agents.create(
            name,
            "You are terse.\n\nAnswer in English.",
            description="Exported and back.",
            tags=["e2e"],
            capabilities=[AgentCapabilityConfig(ref="current_time")],
            tools=[tool],
        )
        copy = await client.agents.copy(agent.id)
        assert copy.id != agent.id and copy.name == f"{name}-copy"
        assert (copy.system_prompt, copy.tools, copy.capabilities) == (
            agent.system_prompt,
            agent.tools,
            agent.capabilities,
        )

        document = await client.agents.export(agent.id)
        assert document.startswith("---\n") and f"name: {name}" in document
        with pytest.raises(ApiError) as taken:
            await client.agents.import_agent(document)
        assert taken.value.status_code == 409
        imported = await client.agents.import_agent(document.replace(name, f"{name}-2", 1))
        assert imported.id not in (agent.id, copy.id)
        assert imported.name == f"{name}-2"
        same = {"id", "name", "created_at", "updated_at", "default_version_id"}
        assert imported.model_dump(exclude=same) == agent.model_dump(exclude=same)


async def test_analyze(server: Server) -> None:
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        result = await client.agents.analyze(
            "Be brief.\n\nBe brief.",
            capabilities=[AgentCapabilityConfig(ref="current_time")],
            tools=[{"name": "undocumented", "parameters": {"type": "object"}}],
        )
        assert isinstance(result, AgentAnalysisResponse)
        rules = {f.rule_id for f in result.findings}
        assert {"prompt.duplicate_paragraphs", "tools.missing_description"} <= rules
        assert all(f.source == "builtin" for f in result.findings)


async def test_stats_after_real_turns(server: Server, api: Api) -> None:
    model_id = await asyncio.to_thread(
        api.llmsim_model, {"response": {"type": "fixed", "text": "Hello there."}}
    )
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        agent = await client.agents.create(
            unique("counted"), "You greet.", default_model_id=model_id
        )
        empty = await client.agents.stats(agent.id)
        assert isinstance(empty, ResourceStats)
        assert (empty.session_count, empty.execution_count) == (0, 0)

        session = await client.sessions.create(agent_id=agent.id)
        await client.sessions.create(agent_id=agent.id)
        await client.messages.create(session.id, "hi")
        await asyncio.to_thread(api.wait_event, session.id, lambda e: e["type"] == "turn.completed")
        stats = await client.agents.stats(agent.id)
        usage = (await client.sessions.get(session.id)).usage
        assert usage is not None
        assert (stats.session_count, stats.started_session_count) == (2, 1)
        assert stats.execution_count == 1
        assert stats.total_input_tokens == usage.input_tokens > 0
        assert stats.total_output_tokens == usage.output_tokens > 0
        assert stats.last_execution_at is not None
        assert stats.avg_session_duration_ms == stats.total_session_duration_ms // 2


async def test_import_example_and_list_harness_examples(server: Server) -> None:
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        agent = await client.agents.import_example("research-assistant")
        assert isinstance(agent, Agent)
        assert agent.name == "research-assistant"
        assert [c.ref for c in agent.capabilities] == ["web_fetch", "file_system"]
        (version,) = await client.agents.list_versions(agent.id)
        assert version.change_kind == "import"
        # Through the document path: it exports and imports back under another name.
        document = await client.agents.export(agent.id)
        again = await client.agents.import_agent(
            document.replace("name: research-assistant", "name: research-again", 1)
        )
        assert (again.system_prompt, again.capabilities) == (
            agent.system_prompt,
            agent.capabilities,
        )

        with pytest.raises(ApiError) as taken:
            await client.agents.import_example("research-assistant")
        assert taken.value.status_code == 409
        with pytest.raises(ApiError) as unknown:
            await client.agents.import_example("no-such-example")
        assert unknown.value.status_code == 404
        assert "no-such-example" in str(unknown.value)

        examples = await client.harnesses.list_examples()
        assert all(isinstance(e, HarnessExample) for e in examples)
        by_name = {e.name: e for e in examples}
        assert {"base", "generic", "researcher", "data-analyst"} <= set(by_name)
        assert [c.ref for c in by_name["generic"].capabilities] == ["current_time", "compaction"]
        assert by_name["data-analyst"].parent_name == "generic"
        known = {c.id for c in await client.capabilities.list(limit=100)}
        assert {c.ref for e in examples for c in e.capabilities} <= known
