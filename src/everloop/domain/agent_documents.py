"""An agent as a portable document (``GET /v1/agents/{id}/export``, ``POST /v1/agents/import``).

The document is Markdown with YAML front matter: the configuration in the front matter (the
harness by name, so it reads the same in another organization), the system prompt as the body,
byte for byte. Ids, status and timestamps stay behind, and so do MCP header values (secrets
never leave sealed). ``parse`` also reads a JSON or YAML object of the same fields, or plain
text (all of it the system prompt).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from everloop.errors import InvalidInput

FENCE = "---\n"

# Front matter keys in the order a document shows them; ``harness`` is the harness's name.
DOCUMENT_KEYS = (
    "name",
    "display_name",
    "description",
    "harness",
    "default_model_id",
    "tags",
    "capabilities",
    "tools",
    "initial_files",
    "network_access",
    "mcpServers",
    "max_iterations",
    "parallel_tool_calls",
)


def render(front_matter: Mapping[str, Any], system_prompt: str) -> str:
    """The document: the set (non-null, non-empty) front matter keys, then the prompt."""
    shown = {
        key: front_matter[key]
        for key in DOCUMENT_KEYS
        if front_matter.get(key) not in (None, [], {})
    }
    header = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, width=1_000_000)
    return f"{FENCE}{header}{FENCE}\n{system_prompt}"


def parse(text: str) -> dict[str, Any]:
    """The agent fields a document (or JSON, YAML or plain text) gives, as a create request
    names them (``harness`` becomes ``harness_name``); 422 naming ``body`` when unreadable."""
    if text.startswith(FENCE):
        closing = text.find(f"\n{FENCE}", len(FENCE) - 1)
        if closing < 0:
            raise InvalidInput("the front matter has no closing '---' line", field="body")
        fields = _mapping(_yaml(text[len(FENCE) : closing + 1]))
        body = text[closing + 1 + len(FENCE) :]
        fields["system_prompt"] = body[1:] if body.startswith("\n") else body
    elif text.lstrip().startswith("{"):
        try:
            fields = _mapping(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"the body is not valid JSON: {exc.msg}", field="body") from None
    else:
        loaded = _yaml(text) if text.strip() else None
        if isinstance(loaded, dict) and ("system_prompt" in loaded or "name" in loaded):
            fields = _mapping(loaded)
        else:
            fields = {"system_prompt": text}
    if "harness" in fields:
        fields["harness_name"] = fields.pop("harness")
    return fields


def _yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the front matter is not valid YAML: {exc}", field="body") from None


def _mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("the agent's fields must be a mapping of names to values", field="body")
    return {str(key): item for key, item in value.items()}
