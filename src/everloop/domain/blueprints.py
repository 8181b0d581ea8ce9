"""Blueprints: named agent definitions a session can be built from instead of a harness and agent.

A blueprint carries a system prompt with ``{{config.<key>}}`` placeholders, capabilities, tools,
an optional model and a JSON Schema for its config. A session created with ``blueprint_id`` and a
``blueprint_config`` that validates against the schema stores both; each turn rebuilds the
RuntimeAgent from the blueprint with the placeholders filled from the config. Built-in blueprints
are defined here; more are loaded from YAML files (``services.blueprints``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from everloop.domain.runtime_agent import Layer

_PLACEHOLDER = re.compile(r"\{\{\s*config\.([A-Za-z0-9_]+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Blueprint:
    id: str
    name: str
    description: str
    system_prompt: str
    capabilities: Sequence[Mapping[str, Any]] = ()
    tools: Sequence[Mapping[str, Any]] = ()
    model_id: str | None = None
    max_iterations: int | None = None
    config_schema: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    is_built_in: bool = False

    def layer(self, config: Mapping[str, Any] | None) -> Layer:
        """The blueprint as the agent layer of a session configured with ``config`` (the
        schema's property defaults fill keys the config leaves out)."""
        properties = self.config_schema.get("properties") or {}
        values = {
            key: spec["default"]
            for key, spec in properties.items()
            if isinstance(spec, Mapping) and "default" in spec
        }
        values.update(config or {})
        return Layer(
            kind="blueprint",
            id=self.id,
            system_prompt=render_prompt(self.system_prompt, values),
            capabilities=self.capabilities,
            tools=self.tools,
            model_id=self.model_id,
            max_iterations=self.max_iterations,
        )


def render_prompt(template: str, config: Mapping[str, Any]) -> str:
    """``template`` with each ``{{config.key}}`` replaced by the config's value (strings as they
    are, other values as JSON; a key the config lacks becomes empty)."""

    def fill(match: re.Match[str]) -> str:
        value = config.get(match.group(1))
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value)

    return _PLACEHOLDER.sub(fill, template)


BUILT_IN_BLUEPRINTS: tuple[Blueprint, ...] = (
    Blueprint(
        id="research_pack",
        name="Research pack",
        description="Researches one topic and answers with a short, sourced brief.",
        system_prompt=(
            "You are a careful research assistant. Your topic: {{config.topic}}.\n"
            "Answer with a brief of at most {{config.max_points}} points; say what you are "
            "unsure of."
        ),
        capabilities=({"ref": "current_time", "config": None},),
        config_schema={
            "type": "object",
            "properties": {
                "topic": {"type": "string", "minLength": 1, "maxLength": 500},
                "max_points": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            },
            "required": ["topic"],
            "additionalProperties": False,
        },
        is_built_in=True,
    ),
    Blueprint(
        id="note_taker",
        name="Note taker",
        description="Keeps notes in the session's files, in the requested style.",
        system_prompt="You keep tidy notes in the workspace. Style: {{config.style}}.",
        capabilities=({"ref": "file_system", "config": None},),
        config_schema={
            "type": "object",
            "properties": {"style": {"type": "string", "enum": ["bullets", "prose"]}},
            "required": ["style"],
            "additionalProperties": False,
        },
        is_built_in=True,
    ),
)
