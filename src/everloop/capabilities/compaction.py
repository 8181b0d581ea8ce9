"""Capability ``compaction``: keeps a long session inside its model's context window.

No tools and no prompt: the engine does the work before a model call
(``engine.compaction``). This module is what the catalogue shows and the config it accepts.
"""

from __future__ import annotations

from everloop.capabilities.base import Capability
from everloop.domain.messages import JsonObject

CONFIG_SCHEMA: JsonObject = {
    "type": "object",
    "properties": {
        "threshold": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "Compact before a model call whose prompt is over this fraction of "
            "the model's context window (default 0.8).",
        },
        "keep_recent": {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "description": "The newest whole turns that fit in this fraction of the window stay "
            "verbatim (default 0.25).",
        },
        "summary_max_tokens": {
            "type": "integer",
            "minimum": 64,
            "maximum": 32000,
            "description": "Longest summary, in tokens (default 2000).",
        },
        "model_id": {
            "type": "string",
            "pattern": "^model_[0-9a-f]{32}$",
            "description": "The id (model_...) of the model that writes summaries (e.g. a "
            "cheaper one); default: the session's model.",
        },
    },
    "additionalProperties": False,
}


def build_compaction_capability() -> Capability:
    return Capability(
        id="compaction",
        name="Compaction",
        description=(
            "Before a model call whose prompt nears the model's context window, older turns "
            "are replaced in the model's view by a summary (a context.compacted checkpoint); "
            "recent turns stay verbatim and the event log keeps everything."
        ),
        category="context",
        config_schema=CONFIG_SCHEMA,
    )
