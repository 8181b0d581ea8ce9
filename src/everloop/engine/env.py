"""What every phase of a turn shares: the dependencies, each turn's cached context, and the
cancel scope that interrupts a model or tool call when its turn is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities import agent_instructions
from everloop.capabilities.base import CapabilityRegistry, Tool, tools_by_name
from everloop.domain.messages import Message
from everloop.domain.runtime_agent import RuntimeAgent
from everloop.domain.secret_refs import Redactor
from everloop.engine.assembly import Assembler
from everloop.engine.context import Conversation, Transcripts, TurnContext
from everloop.engine.ports import (
    BudgetGate,
    ModelResolver,
    RemoteTools,
    ResolvedModel,
    SessionSecrets,
)
from everloop.engine.signals import Signals
from everloop.engine.steps import TurnHalted
from everloop.errors import EverloopError
from everloop.llm.tokens import TokenCounter
from everloop.store import runtime_layers
from everloop.store import turns as turn_store
from everloop.store.db import Database

CANCEL_POLL_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    default_max_iterations: int = 100
    retry_attempts: int = 4
    retry_base_seconds: float = 0.5
    retry_max_seconds: float = 20.0
    client_tool_timeout_seconds: float = 600.0
    approval_timeout_seconds: float = 300.0
    max_concurrent_model_calls: int = 64


class TurnEnv:
    """The runner's dependencies and the contexts of the turns running in this process."""

    def __init__(
        self,
        db: Database,
        signals: Signals,
        capabilities: CapabilityRegistry,
        models: ModelResolver,
        settings: RunnerSettings,
        assembler: Assembler,
        remote: RemoteTools,
        secrets: SessionSecrets,
        budgets: BudgetGate,
    ) -> None:
        self.db = db
        self.signals = signals
        self.capabilities = capabilities
        self.models = models
        self.settings = settings
        self.assembler = assembler
        self.remote = remote
        self.secrets = secrets
        self.budgets = budgets
        self.transcripts = Transcripts()
        self.tokens = TokenCounter()
        self.model_calls = asyncio.Semaphore(settings.max_concurrent_model_calls)
        self._contexts: dict[str, TurnContext] = {}

    # -- a turn's context --------------------------------------------------------------------

    async def context(self, session_id: str, turn_id: str) -> TurnContext:
        """The turn's context: cached, or read now (the first step of the turn in this
        process, e.g. after a restart). ``TurnHalted`` if the turn or its session is gone."""
        found = self._contexts.get(turn_id)
        if found is not None:
            return found
        runtime: RuntimeAgent | None = None
        instructions: str | None = None
        async with self.db.read() as conn:
            turn = await turn_store.get_turn(conn, turn_id)
            config = await turn_store.session_config(conn, session_id)
            controls = await runtime_layers.turn_controls(conn, turn_id)
            if turn is None or config is None:
                raise TurnHalted("missing" if turn is None else "session deleted")
            # None when it does not assemble: the first step reports the broken configuration.
            with contextlib.suppress(EverloopError):
                runtime = self.assembler.for_session(config, controls)
            if runtime is not None and agent_instructions.is_active(
                c.ref for c in runtime.capabilities
            ):
                # In the same read: the turn's one look at its AGENTS.md.
                instructions = await agent_instructions.load_instructions(conn, session_id)
        context = TurnContext(
            session_id=session_id,
            turn_id=turn_id,
            org_id=config.organization_id,
            input_message_id=turn.input_message_id,
            config=config,
            controls=controls,
            runtime=runtime,
            instructions=instructions,
        )
        if runtime is not None:
            every = tools_by_name(t for c in self.capabilities.all() for t in c.tools)
            context.server_tools = {name: every[name] for name in runtime.server_tool_names}
        self._contexts[turn_id] = context
        return context

    def forget(self, turn_id: str) -> None:
        """The turn ended (or stopped) in this process: drop its context."""
        self._contexts.pop(turn_id, None)

    async def history(self, context: TurnContext, basis: str | None = None) -> tuple[Message, ...]:
        """The session history before the turn as seen from the compaction checkpoint
        ``basis`` (``TurnState.basis``; the turn has claimed its session, so it is final)."""
        if context.history is None or context.history_basis != basis:
            async with self.db.read() as conn:
                found = await self.transcripts.conversation(
                    conn, context.session_id, before_turn=context.turn_id, basis=basis
                )
            context.history, context.history_basis = found.history, basis
        return context.history

    async def conversation(self, conn: AsyncConnection, context: TurnContext) -> Conversation:
        """A starting turn's history, from the newest compaction checkpoint."""
        found = await self.transcripts.conversation(
            conn, context.session_id, before_turn=context.turn_id, latest=True
        )
        context.history, context.history_basis = found.history, found.basis
        return found

    async def model(self, context: TurnContext) -> ResolvedModel:
        """The turn's model, resolved once per turn (``EverloopError`` if it is gone)."""
        if context.model is None:
            candidates = context.runtime.model_candidates if context.runtime else (None,)
            context.model = await self.models.resolve(context.org_id, candidates)
        return context.model

    async def tool(self, context: TurnContext, name: str) -> Tool | None:
        """The server-side tool ``name`` of the turn: a capability's, or an MCP server's
        (connecting if its server is not listed yet)."""
        tool = context.server_tools.get(name)
        if tool is None and context.runtime is not None:
            tool = await self.remote.find(context.org_id, context.runtime, name)
        return tool

    async def redactor(self, context: TurnContext, conn: AsyncConnection | None = None) -> Redactor:
        """The session's secrets, to resolve placeholders and redact values: read once per turn
        (in this process), when first needed, like the rest of the turn's configuration; a
        secret set while a turn runs applies from the next turn. (Reading them in every phase
        cost a transaction more per model call.)"""
        if context.redactor is None:
            if conn is None:
                async with self.db.read() as own:
                    return await self.redactor(context, own)
            values = await self.secrets.values(conn, context.org_id, context.session_id)
            context.redactor = Redactor(values)
        return context.redactor

    def cancellable(self, turn_id: str) -> CancelScope:
        return CancelScope(self.db, self.signals, turn_id)


class CancelScope:
    """Run a block while watching the turn: if it is cancelled, the block is interrupted and
    ``TurnHalted`` is raised. The in-process signal makes this immediate; the database poll
    covers a cancel recorded by another process."""

    def __init__(self, db: Database, signals: Signals, turn_id: str) -> None:
        self._db = db
        self._signals = signals
        self._turn_id = turn_id
        self._watcher: asyncio.Task[None] | None = None
        self._cancelled = False

    async def __aenter__(self) -> CancelScope:
        task = asyncio.current_task()
        assert task is not None

        async def watch() -> None:
            while True:
                await self._signals.wait_for_cancel(self._turn_id, CANCEL_POLL_SECONDS)
                async with self._db.read() as conn:
                    status = await turn_store.turn_status(conn, self._turn_id)
                if status != "running":
                    self._cancelled = True
                    task.cancel()
                    return

        self._watcher = asyncio.create_task(watch())
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        assert self._watcher is not None
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher
        if self._cancelled:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            raise TurnHalted("cancelled")
        return False
