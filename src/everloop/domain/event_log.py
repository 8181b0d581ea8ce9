"""The append-only event: the envelope every event of a session shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class EventContext:
    turn_id: str | None = None
    input_message_id: str | None = None
    exec_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "turn_id": self.turn_id,
            "input_message_id": self.input_message_id,
            "exec_id": self.exec_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> EventContext:
        return cls(**{k: value.get(k) for k in cls.__slots__})


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended; the store gives it its id, sequence and timestamp."""

    type: str
    data: dict[str, Any]
    context: EventContext = field(default_factory=EventContext)
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    ts: str
    session_id: str
    sequence: int
    context: EventContext
    data: dict[str, Any]
    metadata: dict[str, Any] | None
    tags: list[str] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "ts": self.ts,
            "session_id": self.session_id,
            "sequence": self.sequence,
            "context": self.context.to_json(),
            "data": self.data,
            "metadata": self.metadata,
            "tags": self.tags,
        }
