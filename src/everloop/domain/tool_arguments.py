"""Tool-call arguments a model wrote as text: parsed, or kept and marked as unparsed.

A model streams a call's arguments as JSON text. Text that does not parse to a JSON object still
has to travel as a ``ToolCallPart`` (whose ``arguments`` is an object, stored as JSON and sent
back to the provider with the conversation), so it is kept, bounded, under the reserved key
``_invalid_json`` with the parser's complaint beside it under ``_invalid_json_error``. Every
driver marks it the same way (``llm.wire.parse_tool_arguments``); the ``tool_call_repair``
capability reads the mark to tell the model exactly what was wrong. Without that capability the
mark reaches the tool's schema validation like any other argument (README, "Malformed tool
calls").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from everloop.domain.messages import JsonObject

INVALID_JSON_KEY = "_invalid_json"
INVALID_JSON_ERROR_KEY = "_invalid_json_error"
# The raw text kept of an unparsed call: enough to show the model where it went wrong, bounded
# because it is stored in the call's events and sent back with every later model call.
RAW_ARGUMENTS_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class UnparsedArguments:
    """Arguments text that is not a JSON object: ``raw`` (at most ``RAW_ARGUMENTS_LIMIT``
    characters, ``truncated`` if cut) and ``error``, what the parser said and where."""

    raw: str
    error: str
    truncated: bool = False


def parse_arguments_text(raw: str | None) -> JsonObject:
    """The arguments ``raw`` spells; empty text is no arguments; anything that is not a JSON
    object comes back marked (see the module docstring)."""
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return _marked(raw, f"{exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})")
    if not isinstance(value, dict):
        return _marked(raw, f"expected a JSON object, got {_json_kind(value)}")
    return value


def unparsed(arguments: JsonObject) -> UnparsedArguments | None:
    """The mark ``parse_arguments_text`` left on ``arguments``; None for parsed arguments."""
    raw = arguments.get(INVALID_JSON_KEY)
    if not isinstance(raw, str):
        return None
    error = arguments.get(INVALID_JSON_ERROR_KEY)
    truncated = arguments.get("_truncated") is True
    return UnparsedArguments(raw, error if isinstance(error, str) else "not valid JSON", truncated)


def arguments_text(arguments: JsonObject) -> str:
    """The text a model wrote for ``arguments``: the raw text of unparsed ones, else JSON."""
    found = unparsed(arguments)
    return found.raw if found is not None else json.dumps(arguments)


def _marked(raw: str, error: str) -> JsonObject:
    marked: JsonObject = {INVALID_JSON_KEY: raw[:RAW_ARGUMENTS_LIMIT]}
    marked[INVALID_JSON_ERROR_KEY] = error
    if len(raw) > RAW_ARGUMENTS_LIMIT:
        marked["_truncated"] = True
    return marked


def _json_kind(value: object) -> str:
    match value:
        case list():
            return "an array"
        case str():
            return "a string"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case None:
            return "null"
    return type(value).__name__
