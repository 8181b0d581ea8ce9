"""What the turn engine needs from the rest of the system, as protocols.

``bootstrap`` passes concrete implementations; the engine never imports services or drivers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from everloop.llm.base import ModelDriver


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """US dollars per million tokens, by usage bucket."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0


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


class ModelResolver(Protocol):
    async def resolve(self, org_id: str, candidates: Sequence[str | None]) -> ResolvedModel:
        """The first candidate model id that is set, else the org default, else llmsim.

        Raises ``everloop.errors.NotFound`` naming the id when a set id no longer exists.
        """
        ...
