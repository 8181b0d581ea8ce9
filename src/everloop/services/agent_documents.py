"""Agents as portable documents: export one, import one (``domain.agent_documents`` is the
format). ``import(export(a))`` is ``a`` again, but for ids, timestamps and MCP header values.
The built-in agent examples (``domain.examples``) are documents too, imported the same way."""

from __future__ import annotations

from typing import Any

from everloop.domain.agent_documents import render
from everloop.domain.examples import AGENT_EXAMPLES, agent_example
from everloop.domain.mcp import public_mcp_servers
from everloop.domain.resources import Agent
from everloop.errors import NotFound
from everloop.services.auth import Caller
from everloop.services.config_resources import AgentService, HarnessService, config_fields
from everloop.store.db import Database

IMPORTED_NAME = "imported-agent"


class AgentDocumentService:
    def __init__(self, db: Database, agents: AgentService, harnesses: HarnessService) -> None:
        self._db = db
        self._agents = agents
        self._harnesses = harnesses

    async def export(self, caller: Caller, agent_id: str) -> str:
        async with self._db.read() as conn:
            agent = await self._agents.get(caller, agent_id, conn)
            harness = await self._harnesses.get(caller, agent.harness_id, conn)
        fields = config_fields(agent)
        system_prompt = fields.pop("system_prompt")
        front_matter = {
            **fields,
            "name": agent.name,
            "harness": harness.name,
            "mcpServers": public_mcp_servers(agent.mcp_servers),
        }
        return render(front_matter, system_prompt)

    async def import_agent(self, caller: Caller, fields: dict[str, Any]) -> Agent:
        """A new agent from a parsed, validated document; a name the org uses is a 409 (an
        import never overwrites), a document without one gets ``imported-agent`` (``-2``...)."""
        if not fields.get("name"):
            fields["name"] = await self._agents.free_name(caller, IMPORTED_NAME)
        return await self._agents.create_new(caller, fields, change_kind="import")

    @staticmethod
    def example_document(name: str) -> str:
        """The document of the built-in agent example ``name``; 404 naming it if none is."""
        example = agent_example(name)
        if example is None:
            known = ", ".join(e.name for e in AGENT_EXAMPLES)
            raise NotFound(
                f"agent example '{name}' not found (the examples: {known})", field="from-example"
            )
        return example.document()
