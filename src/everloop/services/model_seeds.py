"""Providers and models seeded from ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` at start.

When a key is set (read by ``config.Settings``, nowhere else), each org gets a provider named
``openai`` (driver ``openai``, the Responses API) or ``anthropic`` with the key sealed, and the
current models below with their list prices (US dollars per million tokens, as published when
this table was written: edit them with ``PATCH /v1/models/{id}``). Seeding is idempotent: an
existing provider of that name is reused (its key replaced if the environment's differs) and only
missing models are added. Seeded models are not the org default: turns keep running on llmsim
until a model is chosen (``settings.default: true`` on a model makes it the org default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from everloop.domain.providers import Driver


@dataclass(frozen=True, slots=True)
class SeedModel:
    model_id: str
    display_name: str
    context_window: int
    max_output_tokens: int
    prices: dict[str, float]

    def fields(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "display_name": self.display_name,
            "profile": {
                "context_window": self.context_window,
                "max_output_tokens": self.max_output_tokens,
                "prices": dict(self.prices),
            },
        }


@dataclass(frozen=True, slots=True)
class SeedProvider:
    name: str
    driver: Driver
    models: tuple[SeedModel, ...]


OPENAI = SeedProvider(
    "openai",
    "openai",
    (
        SeedModel(
            "gpt-5",
            "GPT-5",
            400_000,
            128_000,
            {"input": 1.25, "output": 10.0, "cache_read": 0.125, "cache_write": 0.0},
        ),
        SeedModel(
            "gpt-5-mini",
            "GPT-5 mini",
            400_000,
            128_000,
            {"input": 0.25, "output": 2.0, "cache_read": 0.025, "cache_write": 0.0},
        ),
        SeedModel(
            "gpt-4.1-mini",
            "GPT-4.1 mini",
            1_047_576,
            32_768,
            {"input": 0.4, "output": 1.6, "cache_read": 0.1, "cache_write": 0.0},
        ),
    ),
)

ANTHROPIC = SeedProvider(
    "anthropic",
    "anthropic",
    (
        SeedModel(
            "claude-sonnet-4-5",
            "Claude Sonnet 4.5",
            200_000,
            64_000,
            {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
        ),
        SeedModel(
            "claude-haiku-4-5",
            "Claude Haiku 4.5",
            200_000,
            64_000,
            {"input": 1.0, "output": 5.0, "cache_read": 0.1, "cache_write": 1.25},
        ),
        SeedModel(
            "claude-opus-4-1",
            "Claude Opus 4.1",
            200_000,
            32_000,
            {"input": 15.0, "output": 75.0, "cache_read": 1.5, "cache_write": 18.75},
        ),
    ),
)
