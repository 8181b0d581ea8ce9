"""What the turn engine needs from the rest of the system, as protocols.

``bootstrap`` passes concrete implementations; the engine never imports services or drivers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import Tool
from everloop.domain.budgets import BudgetBlock
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.runtime_agent import RuntimeAgent
from everloop.domain.usage import TokenUsage
from everloop.llm.base import ModelDriver


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """US dollars per million tokens, by usage bucket."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0

    def cost_usd(self, usage: TokenUsage) -> float:
        """What ``usage`` costs at these prices."""
        return round(
            (
                usage.input_tokens * self.input
                + usage.output_tokens * self.output
                + usage.cache_read_tokens * self.cache_read
                + usage.cache_creation_tokens * self.cache_write
            )
            / 1_000_000,
            10,
        )


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """The model a turn calls, with the driver that speaks its wire API."""

    driver: ModelDriver
    model_name: str
    model_id: str | None = None
    provider_id: str | None = None
    provider_name: str | None = None
    driver_kind: str = "llmsim"
    prices: ModelPrices = field(default_factory=ModelPrices)
    context_window: int | None = None  # tokens; None: the model's profile does not say


class ModelResolver(Protocol):
    async def resolve(self, org_id: str, candidates: Sequence[str | None]) -> ResolvedModel:
        """The first candidate model id that is set, else the org default, else llmsim.

        Raises ``everloop.errors.NotFound`` naming the id when a set id no longer exists.
        """
        ...


class RemoteTools(Protocol):
    """Tools of the remote (MCP) servers a turn's RuntimeAgent names (``capabilities.mcp``).

    ``discover`` lists servers without a fresh cached listing (network; never raises);
    ``listed`` gives the cached tools to offer the model (no network); ``find`` gives the tool
    the model called, connecting if needed (a stand-in reporting an unreachable server, or None).
    """

    async def discover(self, org_id: str, runtime: RuntimeAgent) -> None: ...

    async def listed(self, org_id: str, runtime: RuntimeAgent) -> Mapping[str, Tool]: ...

    async def find(self, org_id: str, runtime: RuntimeAgent, name: str) -> Tool | None: ...


class NoRemoteTools:
    """A process without MCP: no remote tools."""

    async def discover(self, org_id: str, runtime: RuntimeAgent) -> None:
        return None

    async def listed(self, org_id: str, runtime: RuntimeAgent) -> Mapping[str, Tool]:
        return {}

    async def find(self, org_id: str, runtime: RuntimeAgent, name: str) -> Tool | None:
        return None


class SessionSecrets(Protocol):
    """A session's secrets, opened (``services.session_storage.SecretVault``): a turn resolves
    ``{{secret:NAME}}`` placeholders with them and redacts their values from what it records."""

    async def values(
        self, conn: AsyncConnection, org_id: str, session_id: str
    ) -> dict[str, str]: ...


class NoSecrets:
    """A process without session secrets."""

    async def values(self, conn: AsyncConnection, org_id: str, session_id: str) -> dict[str, str]:
        return {}


class TurnRunner(Protocol):
    """What an engine runs a turn with (``engine.runner.TurnRunner``): a port, so this module
    does not import the runner that imports it."""

    async def run_turn(self, session_id: str, turn_id: str) -> str: ...


class TurnEngine(Protocol):
    """What starts turns: DBOS (``engine.durable``, PostgreSQL) or the embedded engine
    (``engine.local``, SQLite). Starting a turn is idempotent by its id."""

    executor_id: str
    application_version: str

    async def launch(self, runner: TurnRunner, *, listen_queue: bool = ...) -> None: ...

    async def connect(self) -> None: ...

    async def enqueue_turn(self, session_id: str, turn_id: str) -> None: ...

    async def ping(self) -> bool: ...

    async def recover(self, executor_ids: list[str]) -> int: ...

    async def close(self) -> None: ...


class BudgetGate(Protocol):
    """Budgets in the loop: checked before each model call, charged with each generation."""

    async def blocked(
        self, session_id: str, conn: AsyncConnection | None = None
    ) -> BudgetBlock | None:
        """The budget that stops the session's next model call, if any (read in ``conn``, a
        transaction the caller has open, when given)."""
        ...

    async def charge(
        self,
        conn: AsyncConnection,
        session_id: str,
        *,
        ref_id: str,
        usage: TokenUsage,
        cost_usd: float | None,
        context: EventContext,
    ) -> list[NewEvent]:
        """Charge a generation inside the step transaction recording it; the budgets'
        events."""
        ...


class NoBudgets:
    """No budgets at all (tests of the loop without them)."""

    async def blocked(
        self, session_id: str, conn: AsyncConnection | None = None
    ) -> BudgetBlock | None:
        return None

    async def charge(
        self,
        conn: AsyncConnection,
        session_id: str,
        *,
        ref_id: str,
        usage: TokenUsage,
        cost_usd: float | None,
        context: EventContext,
    ) -> list[NewEvent]:
        return []
