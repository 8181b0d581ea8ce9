"""Capability ``loop_detection``: a model that asks for the same call again and again is stopped.

It has no tool and adds nothing to the prompt: the engine reads its config (``LoopLimits``) and
counts, over the turn's own messages, how many times in a row the model asked for the same call
(same tool, same arguments as canonical JSON). Past ``max_repeats`` the call is not run: its
result is an error telling the model to change approach. After ``warnings`` such refusals, one
more repeat fails the turn with ``loop_detected`` (``engine.loop_guard``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from everloop.capabilities.base import Capability
from everloop.domain.messages import JsonObject

LOOP_DETECTION = "loop_detection"
DEFAULT_MAX_REPEATS = 3
DEFAULT_WARNINGS = 1

LOOP_DETECTION_CONFIG_SCHEMA: JsonObject = {
    "type": "object",
    "properties": {
        "max_repeats": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "description": "How many times in a row one call (same tool, same arguments) runs "
            f"in a turn; a further repeat is refused (default {DEFAULT_MAX_REPEATS}).",
        },
        "warnings": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10,
            "description": "How many repeats past max_repeats are refused with an error the "
            "model sees; the next one fails the turn with loop_detected "
            f"(default {DEFAULT_WARNINGS}; 0 fails the turn at the first repeat too many).",
        },
    },
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class LoopLimits:
    """How many identical calls in a row run (``max_repeats``), and how many more are refused
    with a warning (``warnings``) before one fails the turn."""

    max_repeats: int = DEFAULT_MAX_REPEATS
    warnings: int = DEFAULT_WARNINGS

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> LoopLimits:
        """The limits of a config the capability's schema accepted (missing fields: defaults;
        a stored config that no longer fits falls back to the defaults field by field)."""
        config = config or {}
        repeats = config.get("max_repeats")
        warnings = config.get("warnings")
        return cls(
            max_repeats=repeats if _count(repeats, 1) else DEFAULT_MAX_REPEATS,
            warnings=warnings if _count(warnings, 0) else DEFAULT_WARNINGS,
        )


def _count(value: object, minimum: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def build_loop_detection_capability() -> Capability:
    return Capability(
        id=LOOP_DETECTION,
        name="Loop detection",
        description=(
            "Stops a model that repeats itself: the same tool call (same arguments) asked for "
            "more than max_repeats times in a row in a turn is not run but answered with an "
            "error telling the model to change approach; repeating it again after that "
            "warning fails the turn (loop_detected)."
        ),
        category="behaviour",
        features=("loop_detection",),
        config_schema=LOOP_DETECTION_CONFIG_SCHEMA,
    )
