"""Capability ``health_check``: where an agent keeps its health-check cases.

It has no tool and adds nothing to the prompt: its config is the agent's test cases (and judge),
read by ``POST /v1/agents/{id}/health-checks`` (``services.health_checks``). Keeping the cases in
the agent's capability list makes them part of the agent's authored config: validated against
this schema on every write, versioned with the agent's other fields, restored by a rollback and
copied by a fork, with no field of the agent wire shape added.
"""

from __future__ import annotations

from everloop.capabilities.base import Capability
from everloop.domain.health_checks import HEALTH_CHECK
from everloop.domain.messages import JsonObject

MAX_CASES = 50

_THRESHOLD: JsonObject = {"type": "number", "minimum": 0, "maximum": 1}

HEALTH_CHECK_CONFIG_SCHEMA: JsonObject = {
    "type": "object",
    "properties": {
        "cases": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_CASES,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "user_message": {"type": "string", "minLength": 1, "maxLength": 20_000},
                    "rubric": {"type": "string", "minLength": 1, "maxLength": 10_000},
                    "max_turns": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 100,
                        "description": "The turn's bound on model calls (its max_iterations); "
                        "a turn that reaches it errors the case (timed out).",
                    },
                    "pass_threshold": {
                        **_THRESHOLD,
                        "description": "The judge's score this case needs to pass.",
                    },
                },
                "required": ["name", "user_message", "rubric"],
                "additionalProperties": False,
            },
        },
        "judge_model_id": {
            "type": "string",
            "description": "The judge model (default: the organization's default model).",
        },
        "pass_threshold": {
            **_THRESHOLD,
            "description": "The judge's score a case needs to pass, unless it sets its own "
            "(default 0.7).",
        },
    },
    "required": ["cases"],
    "additionalProperties": False,
}


def build_health_check_capability() -> Capability:
    return Capability(
        id=HEALTH_CHECK,
        name="Health check",
        description=(
            "Test cases for POST /v1/agents/{id}/health-checks: each a user message, a rubric "
            "and an optional max_turns. A run plays each case as a session of the agent and "
            "scores it (completed, non-empty, within max_turns; and a judge model against "
            "the rubric). Adds no tool and nothing to the prompt."
        ),
        category="behaviour",
        config_schema=HEALTH_CHECK_CONFIG_SCHEMA,
    )
