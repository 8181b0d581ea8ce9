"""Token usage of model calls, in Everruns' disjoint-bucket convention.

``input_tokens`` counts non-cached prompt tokens only; cache reads and cache writes are separate
buckets, so ``input + cache_read + cache_creation`` is the whole prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from everloop.domain.messages import JsonObject, JsonValue

_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_creation_tokens=self.cache_creation_tokens + other.cache_creation_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_creation_tokens
        )

    def to_json(self) -> JsonObject:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_creation_tokens": self.cache_creation_tokens,
        }

    @classmethod
    def from_json(cls, data: JsonValue) -> TokenUsage:
        """Parse the wire shape; absent or null buckets count as 0 (they are optional there)."""
        if not isinstance(data, Mapping):
            raise ValueError("usage: expected an object")
        counts: list[int] = []
        for name in _FIELDS:
            value = data.get(name)
            if value is None:
                value = 0
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"usage.{name}: expected a non-negative integer")
            counts.append(value)
        return cls(*counts)
