"""Session tasks: background work a session owns, and the subagent status of a child session.

A subagent is a child session (``parent_session_id`` set) tracked by its parent as a task of
kind ``subagent`` (``links.child_session_id``). The task's state follows the child's turns:
``running`` while one runs, then ``succeeded``, ``failed`` or ``canceled``; the child's
``subagent_status`` says the same in the seed's words, from the child's terminal turn event
(never from a bare idle): ``completed``, ``failed``, ``cancelled``, ``max_iterations_reached``,
``sealed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from everloop.domain.usage import TokenUsage

TaskState = Literal["queued", "running", "awaiting_input", "succeeded", "failed", "canceled"]
TASK_STATES: Final[tuple[TaskState, ...]] = (
    "queued",
    "running",
    "awaiting_input",
    "succeeded",
    "failed",
    "canceled",
)
ACTIVE_STATES: Final[tuple[TaskState, ...]] = ("queued", "running", "awaiting_input")
TERMINAL_STATES: Final[tuple[TaskState, ...]] = ("succeeded", "failed", "canceled")

SubagentStatus = Literal[
    "spawning",
    "running",
    "completed",
    "failed",
    "cancelled",
    "max_iterations_reached",
    "sealed",
]

WakePolicy = Literal["silent", "on_terminal", "on_activity"]

SUBAGENT: Final = "subagent"


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    """How a child session's turn ended, as its parent's task records it."""

    state: TaskState  # succeeded | failed | canceled
    subagent_status: SubagentStatus
    text: str | None  # the child's last agent message (the result handed to the parent)
    usage: TokenUsage = field(default_factory=TokenUsage)
    error_kind: str | None = None
    error: str | None = None


def outcome_of_turn(
    turn_status: str,
    *,
    text: str | None,
    usage: TokenUsage,
    error_code: str | None = None,
    error: str | None = None,
) -> ChildOutcome:
    """The outcome of a child's turn that ended with ``turn_status`` (completed, failed or
    cancelled); a failure for the iteration limit is ``max_iterations_reached``."""
    if turn_status == "completed":
        return ChildOutcome("succeeded", "completed", text, usage)
    if turn_status == "cancelled":
        return ChildOutcome(
            "canceled", "cancelled", text, usage, "cancelled", error or "the subagent was cancelled"
        )
    status: SubagentStatus = (
        "max_iterations_reached" if error_code == "max_iterations_reached" else "failed"
    )
    return ChildOutcome(
        "failed", status, text, usage, error_code or "failed", error or "the subagent failed"
    )


@dataclass(frozen=True, slots=True)
class SessionTask:
    """One row of ``session_tasks``; ``to_json`` is the wire ``SessionTask``."""

    id: str
    session_id: str
    organization_id: str
    root_session_id: str
    kind: str
    display_name: str
    spec: dict[str, Any]
    state: TaskState
    wake_policy: WakePolicy
    attempt: int
    created_at: str
    updated_at: str
    child_session_id: str | None = None
    state_detail: str | None = None
    summary: str | None = None
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    cancel_requested_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "kind": self.kind,
            "display_name": self.display_name,
            "spec": self.spec,
            "state": self.state,
            "state_detail": self.state_detail,
            "progress": None,
            "input_request": None,
            "cancel_requested_at": self.cancel_requested_at,
            "summary": self.summary,
            "result_path": None,
            "artifacts": [],
            "error": self.error,
            "attempt": self.attempt,
            "worker_id": None,
            "heartbeat_at": None,
            "links": {
                "child_session_id": self.child_session_id,
                "remote_task_id": None,
                "resource_ids": [],
            },
            "wake_policy": self.wake_policy,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True, slots=True)
class TaskMessage:
    """One message between a session and its task: ``inbound`` is session -> task (the task
    text, follow-ups), ``outbound`` task -> session (the child's results)."""

    id: str
    task_id: str
    direction: Literal["inbound", "outbound"]
    content: list[dict[str, Any]]
    created_at: str
    in_reply_to: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "direction": self.direction,
            "content": self.content,
            "in_reply_to": self.in_reply_to,
            "created_at": self.created_at,
        }


def text_content(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]
