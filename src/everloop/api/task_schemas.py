"""Wire schemas of session tasks (``/v1/sessions/{id}/tasks``, ``/v1/tasks``): Everruns'
``SessionTask``, ``SessionTaskDetail``, ``TaskMessage`` and ``PostTaskMessageBody``.

Every field of the seed's ``SessionTask`` is present, null (or empty) where everloop has no
such thing yet: ``progress``, ``input_request``, ``result_path``, ``artifacts``, ``worker_id``
and ``heartbeat_at`` belong to kinds of task other than ``subagent``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from everloop.api.json_values import JsonObject
from everloop.api.schemas import WireModel
from everloop.domain.session_tasks import SessionTask, TaskMessage, TaskState, WakePolicy

MAX_TASK_TEXT = 100_000  # as the `task` of spawn_subagent


class TaskLinksResponse(BaseModel):
    """Cross-references owned by a task: for a subagent, its child session."""

    child_session_id: str | None = None
    remote_task_id: str | None = None
    resource_ids: list[str] = []


class TaskErrorResponse(BaseModel):
    """Why a task failed or was cancelled (``kind``: ``failed``, ``cancelled``,
    ``max_iterations_reached``, ...)."""

    kind: str
    message: str


class TaskProgressResponse(BaseModel):
    current: int | None = None
    total: int | None = None
    label: str | None = None
    unit: str | None = None


class TaskInputRequestResponse(BaseModel):
    id: str
    prompt: str
    expected: dict[str, Any] | None = None


class TaskArtifactResponse(BaseModel):
    name: str
    type: str
    path: str | None = None
    url: str | None = None


class SessionTaskResponse(BaseModel):
    """A unit of background work owned by a session (a subagent: ``kind`` ``subagent``,
    ``links.child_session_id`` its session)."""

    id: str
    session_id: str
    kind: str
    display_name: str
    spec: dict[str, Any]
    state: TaskState
    state_detail: str | None
    progress: TaskProgressResponse | None
    input_request: TaskInputRequestResponse | None
    cancel_requested_at: str | None
    summary: str | None
    result_path: str | None
    artifacts: list[TaskArtifactResponse]
    error: TaskErrorResponse | None
    attempt: int = Field(description="1 for the task, plus one per follow-up message.")
    worker_id: str | None
    heartbeat_at: str | None
    links: TaskLinksResponse
    wake_policy: WakePolicy
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None


class TextPartResponse(BaseModel):
    type: Literal["text"]
    text: str


class DataPartResponse(BaseModel):
    type: Literal["data"]
    data: dict[str, Any]


TaskMessagePartResponse = Annotated[
    TextPartResponse | DataPartResponse, Field(discriminator="type")
]


class TaskMessageResponse(BaseModel):
    """A message between a session and its task: ``inbound`` session -> task (the task, a
    follow-up), ``outbound`` task -> session (a subagent's answer)."""

    id: str
    task_id: str
    direction: Literal["inbound", "outbound"]
    content: list[TaskMessagePartResponse]
    in_reply_to: str | None
    created_at: str


class SessionTaskDetailResponse(BaseModel):
    """A task and its message thread (a page of it: ``after_id``, ``limit``)."""

    task: SessionTaskResponse
    messages: list[TaskMessageResponse]


class TaskMessagePartIn(WireModel):
    """A part of a posted message; only ``text`` parts can go to a subagent (a ``data`` part
    is refused with a 422 naming it)."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    text: Annotated[str, StringConstraints(max_length=MAX_TASK_TEXT)] | None = None
    data: JsonObject | None = None


class PostTaskMessageBody(WireModel):
    """An inbound message: ``text``, or ``content`` parts (not both). To a subagent it is a
    follow-up: its next user message, a new turn of its session."""

    text: Annotated[str, StringConstraints(max_length=MAX_TASK_TEXT)] | None = None
    content: Annotated[list[TaskMessagePartIn], Field(max_length=100)] | None = None
    in_reply_to: Annotated[str, StringConstraints(max_length=100)] | None = None


def task_out(task: SessionTask) -> SessionTaskResponse:
    return SessionTaskResponse.model_validate(task.to_json())


def message_out(message: TaskMessage) -> TaskMessageResponse:
    return TaskMessageResponse.model_validate(message.to_json())
