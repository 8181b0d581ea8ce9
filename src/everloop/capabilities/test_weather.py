"""Capability ``test_weather``: deterministic demo weather, for trying tools without a network.

The same city always gets the same report (derived from a hash of its normalized name), so
tests and demos can assert on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError
from everloop.domain.messages import JsonObject, JsonValue

CONDITIONS = ("sunny", "partly cloudy", "cloudy", "light rain", "rain", "thunderstorms", "snow")


def weather_report(city: str) -> JsonObject:
    """The demo report of ``city`` (case and surrounding spaces do not matter)."""
    key = " ".join(city.split()).lower()
    digest = hashlib.sha256(key.encode()).digest()
    temperature = digest[0] % 46 - 10  # -10..35 °C
    conditions = CONDITIONS[digest[1] % len(CONDITIONS)]
    if conditions == "snow" and temperature > 2:
        conditions = "cloudy"
    return {
        "city": " ".join(city.split()),
        "temperature_c": temperature,
        "conditions": conditions,
        "humidity_pct": 20 + digest[2] % 75,
        "wind_kph": digest[3] % 50,
        "source": "test_weather (demo data, not a real forecast)",
    }


@dataclass(frozen=True, slots=True)
class GetWeather:
    """Tool ``get_weather``: ``{city} -> {city, temperature_c, conditions, ...}``."""

    name: str = "get_weather"
    side_effect: ClassVar[SideEffect] = SideEffect.PURE
    description: str = "Get the current weather for a city (demo data: deterministic, not real)."
    parameters: JsonObject = field(
        default_factory=lambda: {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 200},
            },
            "required": ["city"],
            "additionalProperties": False,
        }
    )

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        city = arguments["city"]
        assert isinstance(city, str)  # schema-checked
        if not city.strip():
            raise ToolError("city must not be blank")
        return weather_report(city)


def build_test_weather_capability() -> Capability:
    return Capability(
        id="test_weather",
        name="Test weather",
        description="A get_weather tool with deterministic demo data, for testing and demos.",
        category="testing",
        tools=(GetWeather(),),
    )
