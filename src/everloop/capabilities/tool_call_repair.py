"""Capability ``tool_call_repair``: a malformed tool call gets an error the model can act on.

It has no tool: the engine asks :func:`repair_error` about each server-side call before running
it (``engine.loop_guard``). A call whose arguments text did not parse (marked by the driver,
``domain.tool_arguments``) is answered with the parser's error, where it happened and what the
tool expects; arguments that break the tool's schema with the path, the expected type and the
schema's outline; a tool name the model was not offered with the names it was. Without the
capability a call with unparsed arguments meets the tool's own validation (its schema usually
refuses the unexpected ``_invalid_json`` property) and an unknown name gets ``unknown tool``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema.exceptions import ValidationError

from everloop.capabilities.base import Capability, argument_error
from everloop.domain.messages import JsonValue, ToolCallPart
from everloop.domain.tool_arguments import UnparsedArguments, unparsed
from everloop.errors import InvalidInput
from everloop.llm.base import ToolSpec

TOOL_CALL_REPAIR = "tool_call_repair"
MAX_LISTED_TOOLS = 40
OUTLINE_CHARS = 600
EXCERPT_CHARS = 40
_CHAR = re.compile(r"\(char (\d+)\)")


def build_tool_call_repair_capability() -> Capability:
    return Capability(
        id=TOOL_CALL_REPAIR,
        name="Tool call repair",
        description=(
            "A tool call with arguments that are not valid JSON, that do not match the tool's "
            "schema, or naming a tool that does not exist gets a precise error result (what is "
            "wrong, where, and what the tool expects) so the model can correct the call."
        ),
        category="behaviour",
        features=("tool_call_repair",),
        config_schema={"type": "object", "properties": {}, "additionalProperties": False},
    )


def repair_error(call: ToolCallPart, spec: ToolSpec | None, offered: Sequence[str]) -> str | None:
    """The error result ``call`` gets instead of running (None: nothing to repair). ``spec`` is
    the tool the model was offered under that name, ``offered`` every offered name."""
    if spec is None:
        return unknown_tool_error(call.name, offered)
    found = unparsed(call.arguments)
    if found is not None:
        return _unparsed_error(call.name, found, spec.parameters)
    try:
        error = argument_error(spec.parameters, call.arguments)
    except InvalidInput:
        return None  # an uncheckable schema: the tool's own validation refuses the call
    if error is None:
        return None
    return (
        f"invalid arguments for {call.name} at {_path(error)}: {_problem(error)}. "
        f"Expected arguments: {schema_outline(spec.parameters)}"
    )


def unknown_tool_error(name: str, offered: Sequence[str]) -> str:
    names = sorted(offered)
    listed = ", ".join(names[:MAX_LISTED_TOOLS])
    more = f" (and {len(names) - MAX_LISTED_TOOLS} more)" if len(names) > MAX_LISTED_TOOLS else ""
    available = f"the available tools are: {listed}{more}" if names else "no tools are available"
    return f"unknown tool '{name}': {available}. Call one of them by its exact name."


def schema_outline(parameters: Mapping[str, Any]) -> str:
    """A short outline of an object schema: ``{city: string (required), days: integer}``."""
    properties = parameters.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return "an object" if parameters.get("additionalProperties") is not False else "{}"
    required = parameters.get("required")
    needed = set(required) if isinstance(required, list) else set()
    fields = [
        f"{name}: {_type_of(schema)}{' (required)' if name in needed else ''}"
        for name, schema in properties.items()
    ]
    outline = "{" + ", ".join(fields) + "}"
    return outline if len(outline) <= OUTLINE_CHARS else outline[: OUTLINE_CHARS - 4] + " ...}"


def _unparsed_error(name: str, found: UnparsedArguments, parameters: Mapping[str, Any]) -> str:
    near = ""
    position = _CHAR.search(found.error)
    if position is not None:
        at = int(position.group(1))
        if at <= len(found.raw):
            before = found.raw[max(0, at - EXCERPT_CHARS) : at]
            after = found.raw[at : at + EXCERPT_CHARS]
            near = f"; near: {before!r} <here> {after!r}"
    cut = " (cut)" if found.truncated else ""
    return (
        f"the arguments of {name} are not valid JSON: {found.error}{near}. "
        f"They were {len(found.raw)} characters{cut}. Send the call again with the arguments "
        f"as one JSON object: {schema_outline(parameters)}"
    )


def _path(error: ValidationError) -> str:
    steps = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in error.path)
    return "$" + steps if steps else "the top level"


def _problem(error: ValidationError) -> str:
    if error.validator == "type":
        return f"expected {_type_name(error.validator_value)}, got {_kind(error.instance)}"
    return error.message


def _type_of(schema: JsonValue) -> str:
    if not isinstance(schema, Mapping):
        return "any"
    enum = schema.get("enum")
    if isinstance(enum, list):
        return " | ".join(repr(value) for value in enum[:8]) + (" | ..." if len(enum) > 8 else "")
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type_of(schema.get('items'))}"
    return _type_name(kind) if kind is not None else "any"


def _type_name(kind: object) -> str:
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    return str(kind)


def _kind(value: object) -> str:
    match value:
        case bool():
            return "a boolean"
        case int() | float():
            return f"a number ({value!r})"
        case str():
            return "a string"
        case list():
            return "an array"
        case dict():
            return "an object"
        case None:
            return "null"
    return type(value).__name__
