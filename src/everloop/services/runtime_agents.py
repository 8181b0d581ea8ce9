"""Views of assembled RuntimeAgents: a session's (the context report) and unsaved drafts'
(agent and harness previews). The assembly itself is ``engine.assembly``'s.

The context report also lists the tools of the MCP servers the session can reach, as the next
turn would offer them: a server's cached listing is used without a network call; a server
without one is listed then (``discover``, the default: through the egress-guarded MCP client,
bounded by ``EVERLOOP_MCP_TIMEOUT_SECONDS``, into the cache the next turn reads), or, with
``discover=False``, reported as ``unknown`` until a turn lists it.

Its token split (``services.context_tokens``) is counted for the session's resolved model with
the engine's ``TokenCounter`` when bootstrap shares it (so calibrated by what providers reported
to this process), over the history a new turn would start with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities import agent_instructions
from everloop.capabilities.mcp import McpTool, McpToolset, ServerListing
from everloop.domain.agent_checks import Finding, check_agent
from everloop.domain.resources import Session
from everloop.domain.runtime_agent import Layer, RuntimeAgent
from everloop.engine.assembly import Assembler
from everloop.engine.context import next_history
from everloop.errors import EverloopError
from everloop.llm.tokens import TokenCounter
from everloop.services.auth import Caller
from everloop.services.config_resources import HarnessService
from everloop.services.context_tokens import PromptParts, TokenReport, count_next_call
from everloop.services.models import ModelService
from everloop.services.sessions import SessionService
from everloop.store.db import Database
from everloop.store.event_filters import EventQuery
from everloop.store.event_log import read_events
from everloop.store.runtime_layers import agent_layer, harness_layer, load_harness_chain


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The model a RuntimeAgent would call: the id the layers chose and what it resolves to."""

    id: str | None
    name: str | None
    provider_id: str | None = None
    error: str | None = None
    context_window: int | None = None  # tokens, from the model's profile; None: unknown


@dataclass(frozen=True, slots=True)
class ContextReport:
    """A session's RuntimeAgent, its model, and the MCP tools its next turn would offer."""

    session: Session
    runtime: RuntimeAgent
    model: ModelChoice
    tokens: TokenReport
    mcp_servers: list[ServerListing] = field(default_factory=list)
    # The MCP tools the model would see: by name, first server first, none that shadows one of
    # the RuntimeAgent's own tools (as ``engine.reason`` builds a turn's tool list).
    mcp_tools: list[McpTool] = field(default_factory=list)
    # The session's AGENTS.md part of the system prompt (capability ``agent_instructions``),
    # appended to ``runtime.system_prompt`` by the turn.
    instructions: str | None = None


class RuntimeAgentService:
    def __init__(
        self,
        db: Database,
        assembler: Assembler,
        harnesses: HarnessService,
        sessions: SessionService,
        models: ModelService,
        remote: McpToolset | None = None,
        tokens: TokenCounter | None = None,
    ) -> None:
        self._db = db
        self._assembler = assembler
        self._harnesses = harnesses
        self._sessions = sessions
        self._models = models
        self._remote = remote
        # The engine's counter (calibrated by provider reports), or one of the report's own.
        self._tokens = tokens or TokenCounter()

    async def context_report(
        self, caller: Caller, session_id: str, *, discover: bool = True
    ) -> ContextReport:
        session, runtime = await self._sessions.runtime_agent(caller, session_id)
        model = await self.model_of(caller, runtime)
        instructions = None
        async with self._db.read() as conn:
            if agent_instructions.is_active(c.ref for c in runtime.capabilities):
                instructions = await agent_instructions.load_instructions(conn, session.id)
            history = await next_history(conn, session.id)
            checkpoint_at = None
            if history.checkpoint is not None:
                checkpoint_at = await _checkpoint_at(conn, session.id, history.checkpoint.id)
        listings: list[ServerListing] = []
        offered: list[McpTool] = []
        if self._remote is not None:
            listings = await self._remote.listings(
                caller.organization_id, runtime, connect=discover
            )
            taken = {tool.name for tool in runtime.tools}
            for listing in listings:
                for tool in listing.tools:
                    if tool.name not in taken:
                        taken.add(tool.name)
                        offered.append(tool)
        catalog = self._assembler.catalog()
        parts = PromptParts(
            runtime=runtime,
            instructions=instructions,
            mcp_tools=offered,
            has_mcp=bool(listings),
            additions={
                c.ref: catalog[c.ref].system_prompt_addition
                for c in runtime.capabilities
                if c.ref in catalog
            },
        )
        tokens = count_next_call(
            self._tokens, model.name or "", model.context_window, parts, history, checkpoint_at
        )
        return ContextReport(session, runtime, model, tokens, listings, offered, instructions)

    async def preview_agent(
        self, caller: Caller, fields: dict[str, Any]
    ) -> tuple[RuntimeAgent, ModelChoice]:
        async with self._db.read() as conn:
            harness = await self._harnesses.resolve_for_use(
                conn,
                caller,
                harness_id=fields.pop("harness_id", None),
                harness_name=fields.pop("harness_name", None),
            )
            chain = await load_harness_chain(conn, caller.organization_id, harness.id)
        runtime = self._assembler.assemble(harnesses=chain, agent=agent_layer(fields, "draft"))
        return runtime, await self.model_of(caller, runtime)

    async def analyze_agent(self, caller: Caller, fields: dict[str, Any]) -> list[Finding]:
        """The built-in advisory findings on a draft agent, read from its preview (the final
        shape, capabilities applied)."""
        system_prompt = str(fields.get("system_prompt") or "")
        runtime, model = await self.preview_agent(caller, fields)
        return check_agent(system_prompt, runtime, model_error=model.error)

    async def preview_harness(
        self, caller: Caller, fields: dict[str, Any]
    ) -> tuple[RuntimeAgent, ModelChoice]:
        parent_id = fields.get("parent_harness_id")
        chain: tuple[Layer, ...] = ()
        if parent_id:
            async with self._db.read() as conn:
                parent = await self._harnesses.get(caller, parent_id, conn)
                chain = await load_harness_chain(conn, caller.organization_id, parent.id)
        draft = harness_layer(
            {**fields, "id": "draft", "parent_harness_id": chain[-1].id if chain else None}
        )
        runtime = self._assembler.assemble(harnesses=(*chain, draft))
        return runtime, await self.model_of(caller, runtime)

    async def model_of(self, caller: Caller, runtime: RuntimeAgent) -> ModelChoice:
        try:
            model = await self._models.resolve(caller.organization_id, runtime.model_candidates)
        except EverloopError as exc:
            return ModelChoice(runtime.model_id, None, error=exc.message)
        return ModelChoice(
            model.model_id or runtime.model_id,
            model.model_name,
            model.provider_id,
            context_window=model.context_window,
        )


async def _checkpoint_at(conn: AsyncConnection, session_id: str, checkpoint_id: str) -> str | None:
    """When the checkpoint ``checkpoint_id`` was written (its ``context.compacted`` event)."""
    query = EventQuery(types=("context.compacted",), newest_first=True, limit=20)
    for event in await read_events(conn, session_id, query):
        if event.data.get("checkpoint_id") == checkpoint_id:
            return event.ts
    return None
