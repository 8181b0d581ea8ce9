"""LLM providers (an endpoint, a driver and its credentials) and the models they serve.

``settings`` and ``profile`` keep their wire form (JSON objects). A provider's key is never part
of these values: only whether one is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

Driver = Literal["openai", "openai_completions", "anthropic", "llmsim"]
DRIVERS: Final[tuple[Driver, ...]] = ("openai", "openai_completions", "anthropic", "llmsim")
ProviderStatus = Literal["active", "disabled"]


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    organization_id: str
    name: str
    driver: Driver
    base_url: str | None
    credentials_set: bool
    settings: dict[str, Any]
    is_built_in: bool
    status: ProviderStatus
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class LlmModel:
    """A model of a provider; ``model_id`` is the name sent on the wire (``gpt-4o``)."""

    id: str
    organization_id: str
    provider_id: str
    model_id: str
    display_name: str
    settings: dict[str, Any]
    profile: dict[str, Any]
    is_built_in: bool
    created_at: str
    updated_at: str
