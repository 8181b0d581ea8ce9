"""Conversation messages and their content parts, with the one JSON serialiser.

Parts are frozen dataclasses tagged by ``kind``; the wire shape follows Everruns' ``ContentPart``
(``{"type": "text", "text": ...}``, ``{"type": "tool_call", "id", "name", "arguments"}``, ...).
The same serialiser is used for the API, the event log and durable turn state, so what goes in
comes back out unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, assert_never

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = dict[str, JsonValue]

Role = Literal["user", "agent", "tool_result"]
ROLES: tuple[Role, ...] = ("user", "agent", "tool_result")


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    kind: Literal["text"] = field(default="text", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class ImagePart:
    url: str
    media_type: str | None = None
    kind: Literal["image"] = field(default="image", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """The model asking for one tool call; ``id`` pairs it with its ``ToolResultPart``."""

    id: str
    name: str
    arguments: JsonObject
    kind: Literal["tool_call"] = field(default="tool_call", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class ToolResultPart:
    """The outcome of one tool call: ``result`` on success, ``error`` (a message) on failure."""

    tool_call_id: str
    name: str | None = None
    result: JsonValue = None
    error: str | None = None
    kind: Literal["tool_result"] = field(default="tool_result", init=False, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.error is None


Part: TypeAlias = TextPart | ImagePart | ToolCallPart | ToolResultPart


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    role: Role
    content: tuple[Part, ...]
    created_at: str | None = None

    @property
    def text(self) -> str:
        """The concatenated text parts (what a person reads)."""
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    @property
    def tool_calls(self) -> tuple[ToolCallPart, ...]:
        return tuple(part for part in self.content if isinstance(part, ToolCallPart))

    @property
    def tool_results(self) -> tuple[ToolResultPart, ...]:
        return tuple(part for part in self.content if isinstance(part, ToolResultPart))


def part_to_json(part: Part) -> JsonObject:
    match part:
        case TextPart(text=text):
            return {"type": "text", "text": text}
        case ImagePart(url=url, media_type=media_type):
            return {"type": "image", "url": url, "media_type": media_type}
        case ToolCallPart(id=call_id, name=name, arguments=arguments):
            return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}
        case ToolResultPart(tool_call_id=call_id, name=name, result=result, error=error):
            data: JsonObject = {"type": "tool_result", "tool_call_id": call_id}
            # `name` is an everloop addition (optional field, so still wire compatible).
            if name is not None:
                data["name"] = name
            data["result"] = result
            data["error"] = error
            return data
        case _:
            assert_never(part)


def part_from_json(data: JsonValue) -> Part:
    """Parse one wire content part; raises ``ValueError`` naming the bad field."""
    obj = _object(data, "part")
    kind = obj.get("type")
    match kind:
        case "text":
            return TextPart(text=_str(obj, "text"))
        case "image":
            return ImagePart(url=_str(obj, "url"), media_type=_opt_str(obj, "media_type"))
        case "tool_call":
            return ToolCallPart(
                id=_str(obj, "id"),
                name=_str(obj, "name"),
                arguments=_object(obj.get("arguments"), "arguments"),
            )
        case "tool_result":
            return ToolResultPart(
                tool_call_id=_str(obj, "tool_call_id"),
                name=_opt_str(obj, "name"),
                result=obj.get("result"),
                error=_opt_str(obj, "error"),
            )
        case _:
            raise ValueError(f"part.type: unsupported content part type {kind!r}")


def message_to_json(message: Message) -> JsonObject:
    return {
        "id": message.id,
        "role": message.role,
        "content": [part_to_json(part) for part in message.content],
        "created_at": message.created_at,
    }


def message_from_json(data: JsonValue) -> Message:
    obj = _object(data, "message")
    role = obj.get("role")
    if role not in ROLES:
        raise ValueError(f"message.role: expected one of {ROLES}, got {role!r}")
    content = obj.get("content")
    if not isinstance(content, list):
        raise ValueError("message.content: expected a list of content parts")
    return Message(
        id=_str(obj, "id"),
        role=role,
        content=tuple(part_from_json(part) for part in content),
        created_at=_opt_str(obj, "created_at"),
    )


def json_text(value: JsonValue) -> str:
    """A JSON value as text for a model or a person: strings as-is, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _object(value: object, where: str) -> JsonObject:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object")
    return dict(value)


def _str(obj: JsonObject, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string")
    return value


def _opt_str(obj: JsonObject, key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key}: expected a string or null")
    return value
